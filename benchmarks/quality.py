"""Swap quality at a fixed training budget: recipes compared in one run, on held-out clips.

    python -m benchmarks quality --budget-s 1200 [--recipes today,df,liae] [--out DIR]
    python -m benchmarks quality --recipes df --init pretrain --init-budget-s 400
    python -m benchmarks quality --tiny --out DIR        # the same chain in seconds (tests)

1. Faces of person_a and person_b from six emotions each of ../shared/data (angry,
   contempt, disgusted, happy, neutral, sad) and the two held-out ones, through one real
   `rayswap extract` at its 256 px crops (benchmarks/quality_scores.py; training's held-out
   scorer pastes swaps into them). Only these two people are trained on; the public
   figures of the media set never are.
2. Every recipe (a named set of `rayswap train` flags, RECIPES) trains from scratch on
   them for the same wall-clock budget (`--budget-s`, the train command's own
   `--max-train-s`), one after the other in this process, on one Ray.
3. The held-out emotions (fear, surprised) are rendered in both directions: person_a's
   clips with b's face (a2b), person_b's with a's (b2a), then scored by `rayswap evaluate`
   against the training faces (identity retrieval and margin, pose error, jitter, seam).
4. With `--init`, each recipe also fine-tunes the pair from a pretrained model for
   `--init-budget-s` (the `+init` column), beside a run from scratch at that same budget:
   `--init pretrain` first pretrains one here (`rayswap pretrain`, `--pretrain-s`, its time
   stated and not counted) on the people who are neither the pair nor public figures
   (benchmarks/pretrained.py); `--init PATH` takes an existing one.
5. DIR/quality.json, DIR/quality.md (the table, with steps reached and s/step) and
   DIR/side_by_side.png: frame 50 of each render, source | one column per run.
   Training holds the held-out clips' faces out and scores them at every checkpoint
   (benchmarks/quality_scores.py); quality.md sets the last checkpoint's scores beside
   evaluate's, with what scoring cost per checkpoint, and the last checkpoint's pose
   floors (benchmarks/pose.py: the pose_error of the source face itself, marked, and of its
   redrawing by its own decoder, beside the swap's).

Quality is judged on both directions: a recipe that swaps a2b but not b2a has not learnt
the swap. `--tiny` trains a few seconds on one clip per person at reduced size and
renders trimmed held-out clips, so a test runs the whole chain; it trains a fixed few
steps, not for a time, so what it checks does not depend on this machine's speed. Without
--recipes it pretrains a tiny df on two permitted people and fine-tunes the pair from it
(the longest chain); with --init, tiny trains only the fine-tuned run of each recipe.
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
from benchmarks.pose import floors_of
from benchmarks.pose import table as pose_table
from benchmarks.pretrained import described, pretrain
from benchmarks.quality_scores import (
    agreement,
    final_score,
    gallery_faces,
    scored_faces,
    scoring_cost,
)
from ops.checkpoint import find_latest_checkpoint, read_checkpoint_config

TRAIN_EMOTIONS = ("angry", "contempt", "disgusted", "happy", "neutral", "sad")
HELD_OUT = ("fear", "surprised")
PEOPLE = {"a": "person_a__mead_M030_front", "b": "person_b__mead_W009_front"}
FRAME = 50  # the frame shown side by side
TINY_FRAME, TINY_FRAMES = 10, 14  # tiny: that frame, of held-out clips trimmed to 14 frames
METRICS = ("id_retrieval", "id_margin", "pose_error", "jitter", "seam")

# The phases of a recipe (warm-up, decay, warp off for the last share) follow --steps, so
# each run first trains CALIBRATE_STEPS steps, just before it, to measure its s/step (this
# machine's speed drifts within a session); --steps is then the budget's worth of steps,
# and --max-train-s the budget itself.
PHASES = ["--warmup-steps", "100", "--lr-decay", "cosine", "--warp-off-share", "0.2"]
DFL = ["--loss", "dfl", *PHASES, "--ema-decay", "0.999", "--coverage", "1.1", "--lr", "3e-4"]
# the recipe before the model family: classic loss, constant 1e-4, warp throughout, no weight
# average, the faces' own crop (extract's 1.5)
CLASSIC = ["--loss", "classic", "--lr", "1e-4", "--warmup-steps", "0", "--lr-decay", "constant"]
CLASSIC += ["--warp-off-share", "0", "--ema-decay", "0"]


def replaced(flags: list[str], flag: str, value: str) -> list[str]:
    """`flags` with `flag`'s value set to `value` (the flag must be there)."""
    at = flags.index(flag)
    return [*flags[: at + 1], value, *flags[at + 2 :]]


# name -> `rayswap train` flags, all given (so a recipe stays what it was when defaults move);
# "today" is the model and recipe before the model family, "original+recipe" the defaults
# with the warm-up and cosine decay they had before "recipe-constant-lr" (today's defaults)
RECIPES: dict[str, list[str]] = {
    "today": ["--model", "original", *CLASSIC, "--coverage", "1.5"],
    "original+recipe": ["--model", "original", *DFL],
    "df": ["--model", "df", *DFL],
    "liae": ["--model", "liae", *DFL],
    "df-classic": ["--model", "df", *CLASSIC, "--coverage", "1.1"],
    # df with twice the decoder's channels (where each identity lives)
    "df-d32": ["--model", "df", *DFL, "--decoder-dims", "32"],
    # the default with the encoder held for its first 200 steps (for --init: the fresh
    # bottleneck and the decoders settle on the pair first)
    "original+freeze": ["--model", "original", *DFL, "--freeze-encoder-steps", "200"],
    # the default recipe less one of its parts each: what every part is worth
    "recipe-no-ema": ["--model", "original", *replaced(DFL, "--ema-decay", "0")],
    "recipe-warp-on": ["--model", "original", *replaced(DFL, "--warp-off-share", "0")],
    "recipe-classic-loss": ["--model", "original", *replaced(DFL, "--loss", "classic")],
    "recipe-constant-lr": [
        "--model",
        "original",
        *replaced(replaced(DFL, "--warmup-steps", "0"), "--lr-decay", "constant"),
    ],
}
# the default at twice its rate, from scratch ("lr-6e-4") and, for `--init-only`, from the
# default's pretrained model (the fine-tuning variants)
RECIPES["lr-6e-4"] = replaced(RECIPES["recipe-constant-lr"], "--lr", "6e-4")
RECIPES["fine-tune-lr-6e-4"] = RECIPES["lr-6e-4"]
# the default (6e-4) with warp off for the last half of its steps (warp off gave the lowest
# a2b pose_error when fine-tuning), and at a higher rate still
RECIPES["lr-6e-4-warp-off-half"] = replaced(RECIPES["lr-6e-4"], "--warp-off-share", "0.5")
RECIPES["lr-1e-3"] = replaced(RECIPES["lr-6e-4"], "--lr", "1e-3")
# the default with three times the weight on the eyes and mouth (the features the swaps blur
# most), and with half the batch: twice the updates in the same time (the recipe's
# --batch-size comes after the benchmark's, and the last one given wins)
RECIPES["lr-6e-4-eyes-x3"] = [*RECIPES["lr-6e-4"], "--eye-mouth-weight", "90"]
RECIPES["lr-6e-4-batch-8"] = [*RECIPES["lr-6e-4"], "--batch-size", "8"]
# the default at twice the resolution: sharper faces, a quarter of the steps (it diverges
# near step 100 at 6e-4), and at half that rate
RECIPES["lr-6e-4-128px"] = [*RECIPES["lr-6e-4"], "--resolution", "128"]
RECIPES["lr-3e-4-128px"] = [*RECIPES["recipe-constant-lr"], "--resolution", "128"]
RECIPES["fine-tune-warp-off-half"] = replaced(
    RECIPES["recipe-constant-lr"], "--warp-off-share", "0.5"
)
# recipe -> the recipe whose pretrained model it fine-tunes from (the same model and dims)
PRETRAINED_AS = {name: "recipe-constant-lr" for name in RECIPES if name.startswith("fine-tune")}
DEFAULT_RECIPES = ("today", "original+recipe", "recipe-constant-lr", "df", "liae")
TINY_RECIPES = ("df",)  # --tiny without --recipes (and, without --init, from a tiny pretrain)
CALIBRATE_STEPS = 30
# Calibration times steps alone; a timed run also scores held-out faces at every
# checkpoint, in an actor beside training on the same CPUs (up to 10% of its time). Its
# steps are planned for the budget less that share, so --max-train-s never cuts the
# recipe's last phases (warp off, the end of the decay) short.
SCORING_SHARE = 0.1
TINY_STEPS = 12
SAVE_EVERY = {False: 250, True: 6}  # rayswap train's default; tiny: twice in its 12 steps
TINY_MODEL = {"original": ["--width", "8", "--latent-dim", "32"]}
TINY_DFL = ["--encoder-dims", "4", "--decoder-dims", "4", "--mask-dims", "2"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks quality")
    parser.add_argument("--out", default="quality-benchmark", help="folder for the results")
    parser.add_argument("--budget-s", type=float, default=1200.0, help="training s per recipe")
    parser.add_argument(
        "--recipes",
        help=f"comma-separated, of {', '.join(RECIPES)} (default: {','.join(DEFAULT_RECIPES)}; "
        f"with --tiny: {','.join(TINY_RECIPES)} from a tiny pretrain)",
    )
    parser.add_argument("--resolution", type=int, default=64, help="model input side, px")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gpu", action="store_true", help="train and render on the GPU")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared media set")
    parser.add_argument(
        "--init",
        help="also fine-tune each recipe from a pretrained model: 'pretrain' to pretrain "
        "one here, or the path of a `rayswap pretrain` run of the same model",
    )
    parser.add_argument(
        "--init-budget-s", type=float, default=400.0, help="fine-tuning s per recipe (--init)"
    )
    parser.add_argument(
        "--pretrain-s", type=float, default=900.0, help="pretraining s per model (--init pretrain)"
    )
    parser.add_argument(
        "--init-only",
        default="",
        help="comma-separated recipes trained only from the pretrained model (--init), "
        "beside the others' runs: fine-tuning variants, e.g. fine-tune-lr-6e-4",
    )
    parser.add_argument("--tiny", action="store_true", help="seconds-long version (tests)")
    parser.add_argument(
        "--work",
        type=Path,
        help="keep the faces, checkpoints and renders here (default: a temporary folder); "
        "a rerun with the same --work skips what is already done",
    )
    args = parser.parse_args(argv)
    default_recipes = args.recipes is None
    given = args.recipes or ",".join(TINY_RECIPES if args.tiny else DEFAULT_RECIPES)
    args.recipes = [name.strip() for name in given.split(",") if name.strip()]
    if args.tiny and default_recipes and args.init is None:
        args.init = "pretrain"
    unknown = [name for name in args.recipes if name not in RECIPES]
    if unknown or not args.recipes:
        parser.error(f"--recipes: unknown {unknown}; choose from {', '.join(RECIPES)}")
    args.init_only = [name.strip() for name in args.init_only.split(",") if name.strip()]
    unknown = [name for name in args.init_only if name not in RECIPES]
    if unknown:
        parser.error(f"--init-only: unknown {unknown}; choose from {', '.join(RECIPES)}")
    if args.init_only and args.init is None:
        parser.error("--init-only needs --init (a pretrained model to fine-tune from)")
    if args.init not in (None, "pretrain") and not Path(args.init).exists():
        parser.error(f"--init: {args.init} not found (a `rayswap pretrain` run, or 'pretrain')")
    return args


def runs_of(args: argparse.Namespace) -> list[dict]:
    """What trains, in order: every recipe at the budget and, with --init, from scratch and
    from the pretrained model at the fine-tuning budget, then each --init-only recipe from
    the pretrained model alone. "label" names the run's column."""
    seconds = "" if args.tiny else f" {args.init_budget_s:g}s"

    def fine_tuned(recipe: str) -> dict:
        return {"label": f"{recipe}+init{seconds}", "recipe": recipe, "init": True} | {
            "budget_s": args.init_budget_s
        }

    found = []
    for recipe in args.recipes:
        if not (args.tiny and args.init):  # tiny with --init: only the fine-tuned run
            found.append({"label": recipe, "recipe": recipe, "budget_s": args.budget_s})
            found[-1]["init"] = False
        if args.init is None:
            continue
        if args.init_budget_s != args.budget_s and not args.tiny:  # tiny: steps, not seconds
            found.append(
                {"label": f"{recipe}{seconds}", "recipe": recipe, "init": False}
                | {"budget_s": args.init_budget_s}
            )
        found.append(fine_tuned(recipe))
    found += [fine_tuned(recipe) for recipe in args.init_only]
    return list({run["label"]: run for run in found}.values())  # a recipe named twice, once


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


def model_flags(args: argparse.Namespace, recipe: str) -> list[str]:
    """The recipe's flags at the benchmark's size (what a pretrained model must share)."""
    flags = ["--resolution", str(args.resolution), "--batch-size", str(args.batch_size)]
    flags += ["--cpus-per-worker", str(os.cpu_count() or 1), *RECIPES[recipe]]
    if args.tiny:
        model = RECIPES[recipe][RECIPES[recipe].index("--model") + 1]
        flags += TINY_MODEL.get(model, TINY_DFL)
    return [*flags, *(["--gpu"] if args.gpu else [])]


def _train_flags(
    args: argparse.Namespace, recipe: str, faces: dict[str, str], out: Path, held: int = 0
) -> list:
    """`held`: the last videos of each side held out (scored_faces()); 0: none."""
    flags = ["train", "--a", faces["a"], "--b", faces["b"], "--out", str(out)]
    return [*flags, *model_flags(args, recipe), "--holdout-videos", str(held)]


def _seconds_per_step(lines: list[dict]) -> float | None:
    """Training seconds per step between the first and the last metrics line."""
    if len(lines) < 2 or lines[-1]["step"] == lines[0]["step"]:
        return None
    return (lines[-1]["time"] - lines[0]["time"]) / (lines[-1]["step"] - lines[0]["step"])


def _metrics(out: Path) -> list[dict]:
    path = out / "metrics.jsonl"
    return [json.loads(line) for line in open(path)] if path.exists() else []


def calibrate(
    args: argparse.Namespace, recipe: str, faces: dict[str, str], work: Path, name: str = ""
) -> float:
    """Seconds per step of `recipe`, from CALIBRATE_STEPS steps timed alone (once per
    `name`: a run's label, so each run is timed just before it; default the recipe)."""
    out = work / "calibrate" / (name or recipe)
    lines = _metrics(out)
    if not lines or lines[-1]["step"] < CALIBRATE_STEPS:
        flags = _train_flags(args, recipe, faces, out)
        steps = ["--steps", str(CALIBRATE_STEPS), "--log-every", "5", "--save-every", "1000"]
        run_rayswap([*flags, *steps], timeout_s=1800)
        lines = _metrics(out)
    return _seconds_per_step(lines) or args.budget_s / 1000


def train(
    args: argparse.Namespace, run: dict, faces: dict[str, str], scored: dict, work: Path
) -> dict:
    """One run for its budget; its checkpoint folder, steps reached, s/step, and the
    held-out score training gave its last checkpoint (faces: the six training emotions;
    scored: those and the held-out ones, which training holds out and scores).

    Outside tiny mode the phases (warm-up, decay, warp off) are planned over the steps the
    budget less SCORING_SHARE holds at the calibrated s/step, and --max-train-s stops it at
    the budget if it is slower still."""
    name = run["label"].replace(" ", "_")
    out, record = work / "train" / name, work / "train" / f"{name}.json"
    if record.exists():
        done = json.loads(record.read_text())
        if "pose_floor" not in done:  # a run recorded before the pose floor was
            done["pose_floor"] = floors_of(done["checkpoint"])
            record.write_text(json.dumps(done))
        return done
    recipe, init = run["recipe"], []
    made = PRETRAINED_AS.get(recipe, recipe)  # the recipe whose pretrained model it starts from
    if run["init"]:  # pretrained first: the calibration below times this run, not that
        init = [pretrain(args, made, work, faces) if args.init == "pretrain" else args.init]
    if args.tiny:
        planned, timing = TINY_STEPS, []
    else:
        per_step = calibrate(args, recipe, faces, work, name)
        planned = max(CALIBRATE_STEPS, int(run["budget_s"] * (1 - SCORING_SHARE) / per_step))
        timing = ["--max-train-s", f"{run['budget_s']:g}"]
    held = len(HELD_OUT[:1] if args.tiny else HELD_OUT)
    flags = [*_train_flags(args, recipe, scored, out, held), "--steps", str(planned), *timing]
    flags += ["--log-every", "4" if args.tiny else "20"]
    flags += ["--save-every", str(SAVE_EVERY[args.tiny])]
    if init:
        flags += ["--init", *init]
    _, seconds = run_rayswap(flags, timeout_s=run["budget_s"] + 1800)
    lines = _metrics(out)
    done = {
        "checkpoint": str(out),
        "recipe": recipe,
        "budget_s": None if args.tiny else run["budget_s"],
        "init": run["init"],
        "planned_steps": planned,
        "steps": int(lines[-1]["step"]) if lines else 0,
        "s_per_step": _seconds_per_step(lines),
        "command_s": seconds,
        "loss": (lines[-1]["loss_a"] + lines[-1]["loss_b"]) / 2 if lines else None,
        "holdout": final_score(lines),
    }
    done["holdout_cost"] = scoring_cost(lines, SAVE_EVERY[args.tiny], done["s_per_step"])
    done["pose_floor"] = floors_of(str(out))
    if run["init"]:
        done["pretrain"] = described(work, made) if args.init == "pretrain" else args.init
        done["init_plan"] = read_checkpoint_config(find_latest_checkpoint(f"{out}/train"))["init"]
    record.write_text(json.dumps(done))
    return done


def render_and_evaluate(
    args: argparse.Namespace, run: dict, faces: dict[str, str], clips: dict, work: Path
) -> list[dict]:
    """Render the held-out clips both ways and score them; one row per render."""
    rows, recipe, name = [], run["label"], run["label"].replace(" ", "_")
    for direction, side in (("a2b", "a"), ("b2a", "b")):
        out = work / "render" / name / direction
        inputs = [clips[side][e] for e in clips[side]]
        if (out / "evaluation.parquet").exists():
            rows += _evaluation_rows(out, recipe, direction)
            continue
        flags = ["render", str(work / "train" / name), *inputs, "--out", str(out)]
        run_rayswap([*flags, "--direction", direction, *(["--gpu"] if args.gpu else [])])
        evaluate = ["evaluate", str(out), "--a", faces["a"], "--b", faces["b"]]
        run_rayswap([*evaluate, *(["--gallery-size", "16"] if args.tiny else [])])
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


def side_by_side(rows: list[dict], recipes: list[str], path: Path, shown: int = FRAME) -> None:
    """Frame `shown` of each render: one line per (direction, clip), source | recipes."""
    import cv2

    from ops.video import iter_frames

    def frame_of(video: str) -> np.ndarray:
        found = [frame for _, _, frame in iter_frames(video, shown, shown + 1)]
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
    """quality.md and quality.json for what has run so far (written after every run)."""
    budget = f"{TINY_STEPS} steps" if args.tiny else f"budget {args.budget_s:g} s"
    settings = f"{budget} per recipe, {args.resolution} px, batch {args.batch_size}"
    if args.init is not None and not args.tiny:
        settings += f"; fine-tuning and its scratch twin {args.init_budget_s:g} s"
    pretrained = [run["pretrain"] for run in runs.values() if run.get("pretrain")]
    settings += "".join(f"\npretrained: {p}" for p in dict.fromkeys(pretrained))
    lines = table(rows, runs)
    scores = agreement(runs, rows)
    if scores:
        lines += ["", "Held-out scores from training's last checkpoint against evaluate:", ""]
        lines += scores
    floors = [run["pose_floor"] for run in runs.values() if run.get("pose_floor")]
    if floors:
        lines += ["", "How much of pose_error is the swap (held-out faces, last checkpoint):", ""]
        lines += pose_table(floors).splitlines()
    (out / "quality.md").write_text(f"{settings}\n\n" + "\n".join(lines) + "\n")
    result = {"settings": vars(args) | {"data": str(args.data)}, "runs": runs, "renders": rows}
    (out / "quality.json").write_text(json.dumps(result, indent=2, default=str))
    print(settings)
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.tiny:
        args.resolution, args.batch_size = 64, 8
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
        held_out = HELD_OUT[:1] if args.tiny else HELD_OUT
        emotions = TRAIN_EMOTIONS[:1] if args.tiny else TRAIN_EMOTIONS
        scored = scored_faces(args, work, emotions, held_out)  # the one extraction
        faces = gallery_faces(scored, work, held_out)  # its training emotions
        clips = {s: {e: _clip(args.data, s, e) for e in held_out} for s in PEOPLE}
        if args.tiny:
            (work / "short").mkdir(exist_ok=True)
            clips = {
                s: {e: trimmed(p, TINY_FRAMES, work / "short") for e, p in c.items()}
                for s, c in clips.items()
            }
        runs, rows = {}, []
        for run in runs_of(args):
            runs[run["label"]] = train(args, run, faces, scored, work)
            rows += render_and_evaluate(args, run, faces, clips, work)
            write_results(args, runs, rows, out)
        shown = TINY_FRAME if args.tiny else FRAME
        side_by_side(rows, list(runs), out / "side_by_side.png", shown)
    print(f"side by side: {out / 'side_by_side.png'}")
