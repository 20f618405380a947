"""Swap quality at a fixed training budget: recipes compared in one run, on held-out clips.

    python -m benchmarks quality --budget-s 1200 [--recipes today,df,liae] [--out DIR]
    python -m benchmarks quality --tiny --out DIR        # the same chain in seconds (tests)

1. Faces of person_a and person_b from six emotions each of ../shared/data (angry,
   contempt, disgusted, happy, neutral, sad) through one real `rayswap extract --size 128`.
   Only these two people are trained on; the public figures of the media set never are.
2. Every recipe (a named set of `rayswap train` flags, RECIPES) trains from scratch on
   them for the same wall-clock budget (`--budget-s`, the train command's own
   `--max-train-s`), one after the other in this process, on one Ray.
3. The held-out emotions (fear, surprised) are rendered in both directions: person_a's
   clips with b's face (a2b), person_b's with a's (b2a), then scored by `rayswap evaluate`
   against the training faces (identity retrieval and margin, pose error, jitter, seam).
4. DIR/quality.json, DIR/quality.md (the table, with steps reached and s/step) and
   DIR/side_by_side.png: frame 50 of each render, source | one column per recipe.

Quality is judged on both directions: a recipe that swaps a2b but not b2a has not learnt
the swap. `--tiny` trains a few seconds on one clip per person at reduced size and
renders trimmed held-out clips, so a test runs the whole chain.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.media import DEFAULT_DATA, one_ray, run_rayswap, shared_clips

TRAIN_EMOTIONS = ("angry", "contempt", "disgusted", "happy", "neutral", "sad")
HELD_OUT = ("fear", "surprised")
PEOPLE = {"a": "person_a__mead_M030_front", "b": "person_b__mead_W009_front"}
FRAME = 50  # the frame shown side by side
METRICS = ("id_retrieval", "id_margin", "pose_error", "jitter", "seam")

# The phases of a recipe (warm-up, decay, warp off for the last share) follow --steps, so
# each recipe first trains CALIBRATE_STEPS steps to measure its s/step; --steps is then
# the budget's worth of steps, and --max-train-s the budget itself.
PHASES = ["--warmup-steps", "100", "--lr-decay", "cosine", "--warp-off-share", "0.2"]
DFL = ["--loss", "dfl", *PHASES, "--ema-decay", "0.999", "--coverage", "1.1", "--lr", "3e-4"]
# name -> `rayswap train` flags; "today" is the model and recipe before the model family
RECIPES: dict[str, list[str]] = {
    "today": ["--model", "original"],
    "original+recipe": ["--model", "original", *DFL],
    "df": ["--model", "df", *DFL],
    "liae": ["--model", "liae", *DFL],
    "df-classic": ["--model", "df", "--coverage", "1.1"],
}
DEFAULT_RECIPES = ("today", "original+recipe", "df", "liae")
TINY_RECIPES = ("today", "df")  # --tiny without --recipes: one of each model family
CALIBRATE_STEPS = 30
TINY_MODEL = {"original": ["--width", "8", "--latent-dim", "32"]}
TINY_DFL = ["--encoder-dims", "4", "--decoder-dims", "4", "--mask-dims", "2"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks quality")
    parser.add_argument("--out", default="quality-benchmark", help="folder for the results")
    parser.add_argument("--budget-s", type=float, default=1200.0, help="training s per recipe")
    parser.add_argument(
        "--recipes",
        help=f"comma-separated, of {', '.join(RECIPES)} (default: {','.join(DEFAULT_RECIPES)}; "
        f"with --tiny: {','.join(TINY_RECIPES)})",
    )
    parser.add_argument("--resolution", type=int, default=64, help="model input side, px")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gpu", action="store_true", help="train and render on the GPU")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared media set")
    parser.add_argument("--tiny", action="store_true", help="seconds-long version (tests)")
    parser.add_argument(
        "--work",
        type=Path,
        help="keep the faces, checkpoints and renders here (default: a temporary folder); "
        "a rerun with the same --work skips what is already done",
    )
    args = parser.parse_args(argv)
    given = args.recipes or ",".join(TINY_RECIPES if args.tiny else DEFAULT_RECIPES)
    args.recipes = [name.strip() for name in given.split(",") if name.strip()]
    unknown = [name for name in args.recipes if name not in RECIPES]
    if unknown or not args.recipes:
        parser.error(f"--recipes: unknown {unknown}; choose from {', '.join(RECIPES)}")
    return args


def _clip(data: Path, side: str, emotion: str) -> str:
    return shared_clips(data, [f"{PEOPLE[side]}_{emotion}.mp4"])[0]


def trimmed(path: str, frames: int, folder: Path) -> str:
    """The first `frames` frames of a clip, as a new clip in `folder` (tiny mode)."""
    from ops.video import iter_frames, write_video
    from ops.video_out import frame_rate_of

    out = folder / Path(path).name
    if not out.exists():
        kept = [frame for _, _, frame in iter_frames(path, 0, frames)]
        write_video(kept, str(out), float(frame_rate_of(path)))
    return str(out)


def extract(args: argparse.Namespace, work: Path) -> dict[str, str]:
    """Faces of both people from the training emotions: {"a": faces folder, "b": ...}."""
    emotions = TRAIN_EMOTIONS[:1] if args.tiny else TRAIN_EMOTIONS
    rows = [f"{_clip(args.data, s, e)},{s}" for s in PEOPLE for e in emotions]
    faces = {side: str(work / "faces" / "faces" / side) for side in PEOPLE}
    if (work / "faces" / "extract_done.json").exists():
        return faces
    manifest = work / "train_clips.csv"
    manifest.write_text("uri,identity\n" + "\n".join(rows) + "\n")
    flags = ["extract", str(manifest), "--out", str(work / "faces"), "--size", "128"]
    run_rayswap([*flags, *(["--every-n", "2"] if args.tiny else [])], timeout_s=3600)
    (work / "faces" / "extract_done.json").write_text("{}")
    return faces


def _train_flags(args: argparse.Namespace, recipe: str, faces: dict[str, str], out: Path) -> list:
    flags = ["train", "--a", faces["a"], "--b", faces["b"], "--out", str(out)]
    flags += ["--resolution", str(args.resolution), "--batch-size", str(args.batch_size)]
    flags += ["--cpus-per-worker", str(os.cpu_count() or 1), *RECIPES[recipe]]
    flags += ["--holdout-videos", "0"]  # all six training emotions train; fear, surprised test
    if args.tiny:
        model = RECIPES[recipe][RECIPES[recipe].index("--model") + 1]
        flags += TINY_MODEL.get(model, TINY_DFL)
    return [*flags, *(["--gpu"] if args.gpu else [])]


def _seconds_per_step(lines: list[dict]) -> float | None:
    """Training seconds per step between the first and the last metrics line."""
    if len(lines) < 2 or lines[-1]["step"] == lines[0]["step"]:
        return None
    return (lines[-1]["time"] - lines[0]["time"]) / (lines[-1]["step"] - lines[0]["step"])


def calibrate(args: argparse.Namespace, recipe: str, faces: dict[str, str], work: Path) -> int:
    """Steps of `recipe` that fit the budget, from CALIBRATE_STEPS steps timed alone."""
    out = work / "calibrate" / recipe
    flags = _train_flags(args, recipe, faces, out)
    steps = ["--steps", str(CALIBRATE_STEPS), "--log-every", "5", "--save-every", "1000"]
    run_rayswap([*flags, *steps], timeout_s=1800)
    per_step = _seconds_per_step([json.loads(line) for line in open(out / "metrics.jsonl")])
    return max(CALIBRATE_STEPS, int(args.budget_s / per_step)) if per_step else 1000


def train(args: argparse.Namespace, recipe: str, faces: dict[str, str], work: Path) -> dict:
    """One recipe for the budget; its checkpoint folder, steps reached and s/step."""
    out = work / "train" / recipe
    record = work / "train" / f"{recipe}.json"
    if record.exists():
        return json.loads(record.read_text())
    planned = 12 if args.tiny else calibrate(args, recipe, faces, work)
    flags = _train_flags(args, recipe, faces, out)
    flags += ["--steps", str(planned), "--max-train-s", f"{args.budget_s:g}", "--log-every"]
    flags += ["4" if args.tiny else "20", "--save-every", str(planned)]
    _, seconds = run_rayswap(flags, timeout_s=args.budget_s + 1800)
    lines = [json.loads(line) for line in open(out / "metrics.jsonl")]
    run = {
        "checkpoint": str(out),
        "planned_steps": planned,
        "steps": int(lines[-1]["step"]) if lines else 0,
        "s_per_step": _seconds_per_step(lines),
        "command_s": seconds,
        "loss": (lines[-1]["loss_a"] + lines[-1]["loss_b"]) / 2 if lines else None,
    }
    record.write_text(json.dumps(run))
    return run


def render_and_evaluate(
    args: argparse.Namespace, recipe: str, faces: dict[str, str], clips: dict, work: Path
) -> list[dict]:
    """Render the held-out clips both ways and score them; one row per render."""
    rows = []
    for direction, side in (("a2b", "a"), ("b2a", "b")):
        out = work / "render" / recipe / direction
        inputs = [clips[side][e] for e in clips[side]]
        if (out / "evaluation.parquet").exists():
            rows += _evaluation_rows(out, recipe, direction)
            continue
        flags = ["render", str(work / "train" / recipe), *inputs, "--out", str(out)]
        run_rayswap([*flags, "--direction", direction, *(["--gpu"] if args.gpu else [])])
        evaluate = ["evaluate", str(out), "--a", faces["a"], "--b", faces["b"]]
        run_rayswap([*evaluate, *(["--gallery-size", "32"] if args.tiny else [])])
        rows += _evaluation_rows(out, recipe, direction)
    return rows


def _evaluation_rows(out: Path, recipe: str, direction: str) -> list[dict]:
    import pyarrow.parquet as pq

    found = []
    for row in pq.read_table(out / "evaluation.parquet").to_pylist():
        name = Path(row["video"]).stem.rsplit("_", 1)[-1]  # the emotion
        kept = {key: row[key] for key in METRICS}
        found.append({"recipe": recipe, "direction": direction, "clip": name, **kept})
        found[-1]["source"], found[-1]["output"] = row["video"], row["output"]
        found[-1]["error"] = row["error"]
    return found


def side_by_side(rows: list[dict], recipes: list[str], path: Path) -> None:
    """Frame FRAME of each render: one line per (direction, clip), source | recipes."""
    import cv2

    from ops.video import iter_frames

    def frame_of(video: str) -> np.ndarray:
        found = [frame for _, _, frame in iter_frames(video, FRAME, FRAME + 1)]
        return found[0] if found else np.zeros((256, 256, 3), np.uint8)

    def tile(frame: np.ndarray, text: str) -> np.ndarray:
        frame = cv2.resize(frame, (256, 256), interpolation=cv2.INTER_AREA)
        frame = np.ascontiguousarray(frame)
        cv2.putText(frame, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        return frame

    lines = []
    for direction, clip in sorted({(r["direction"], r["clip"]) for r in rows}):
        by_recipe = {
            r["recipe"]: r for r in rows if (r["direction"], r["clip"]) == (direction, clip)
        }
        source = next(iter(by_recipe.values()))["source"]
        tiles = [tile(frame_of(source), f"source {clip}")]
        for recipe in recipes:
            output = by_recipe.get(recipe, {}).get("output")
            frame = frame_of(output) if output else np.zeros((256, 256, 3), np.uint8)
            tiles.append(tile(frame, f"{recipe} {direction}"))
        lines.append(np.concatenate(tiles, axis=1))
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(lines, axis=0), cv2.COLOR_RGB2BGR))


def table(rows: list[dict], runs: dict[str, dict]) -> list[str]:
    head = "| recipe | render | " + " | ".join(METRICS) + " | steps | s/step |"
    lines = [head, "|" + "---|" * (len(METRICS) + 4)]
    for row in rows:
        run = runs[row["recipe"]]
        values = [
            "-"
            if row[key] is None
            else f"{row[key]:+.3f}"
            if key == "id_margin"
            else f"{row[key]:.3f}"
            for key in METRICS
        ]
        per_step = "-" if run["s_per_step"] is None else f"{run['s_per_step']:.3f}"
        render = f"{row['direction']} {row['clip']}"
        lines.append(
            f"| {row['recipe']} | {render} | "
            + " | ".join(values)
            + f" | {run['steps']} | {per_step} |"
        )
    return lines


def write_results(args: argparse.Namespace, runs: dict, rows: list[dict], out: Path) -> None:
    """quality.md and quality.json for what has run so far (written after every recipe)."""
    settings = (
        f"budget {args.budget_s:g} s per recipe, {args.resolution} px, batch {args.batch_size}"
    )
    lines = table(rows, runs)
    (out / "quality.md").write_text(f"{settings}\n\n" + "\n".join(lines) + "\n")
    result = {"settings": vars(args) | {"data": str(args.data)}, "runs": runs, "renders": rows}
    (out / "quality.json").write_text(json.dumps(result, indent=2, default=str))
    print(settings)
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.tiny:
        args.budget_s, args.resolution, args.batch_size = min(args.budget_s, 6.0), 64, 8
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if args.work is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="rayswap-quality-"))
            work = Path(folder)
        else:
            work = args.work
            work.mkdir(parents=True, exist_ok=True)
        stack.enter_context(one_ray())
        faces = extract(args, work)
        held_out = HELD_OUT[:1] if args.tiny else HELD_OUT
        clips = {s: {e: _clip(args.data, s, e) for e in held_out} for s in PEOPLE}
        if args.tiny:
            (work / "short").mkdir(exist_ok=True)
            clips = {
                s: {e: trimmed(p, FRAME + 4, work / "short") for e, p in c.items()}
                for s, c in clips.items()
            }
        runs, rows = {}, []
        for recipe in args.recipes:
            runs[recipe] = train(args, recipe, faces, work)
            rows += render_and_evaluate(args, recipe, faces, clips, work)
            write_results(args, runs, rows, out)
        side_by_side(rows, args.recipes, out / "side_by_side.png")
    print(f"side by side: {out / 'side_by_side.png'}")
