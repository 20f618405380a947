"""Pose floor: how much of a swap's pose_error is the swap.

    python -m benchmarks pose --checkpoint RUN_OR_CHECKPOINT [...] [--out DIR]

A render's pose_error (the detector's 5 landmarks on the output face against those on its
source face, over the eye distance) is not all the swap's doing: the watermark's grain and
the detector's own noise move landmarks on any face, and a 64 px model redraws a blurred
face even of its own person. For each checkpoint of a run trained with held-out videos
(the quality benchmark's runs are), this scores the run's held-out faces as training
scores them (`ops.holdout`: pasted into their context crops as render pastes, marked as
render marks, detected again at the face's size in its frame), three ways per source side:

- source: the source's own face, untouched: the mark and the detector alone;
- own: the face redrawn by its own decoder (A by A's): adding the model's resolution;
- swap: the swap itself (A by B's decoder, a2b; B by A's, b2a).

Each cell is pose_error / shape_error: the shape error is what is left once each face's
points are moved, scaled and turned as one onto its source's (`ops.metrics.shape_errors`),
so pose - shape is where and how large the face is drawn, shape its expression and its
person's proportions. swap - own is what changing the person costs; own - source what the
model's redrawing costs. Prints the table and writes pose.json to --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DIRECTIONS = {"a": "a2b", "b": "b2a"}
KINDS = ("source", "own", "swap")


def floors_of(checkpoint: str) -> dict:
    """The pose floors of one checkpoint (a checkpoint directory or a run's folder: its
    latest), on the held-out faces of the run that wrote it."""
    import torch

    from ops.checkpoint import load_checkpoint
    from pipelines.config import TrainConfig
    from pipelines.train.data import inspect_faces
    from pipelines.train.holdout import build_scorer, held_out_of

    loaded = load_checkpoint(checkpoint)
    cfg, coverage = TrainConfig(**loaded.config["train"]), loaded.coverage
    infos = {side: inspect_faces(getattr(cfg, side), side, cfg) for side in ("a", "b")}
    if not all(info.held_out for info in infos.values()):
        raise SystemExit(f"{checkpoint}: its run held no videos out (--holdout-videos 0)")
    held, galleries = held_out_of(cfg, infos, coverage)
    threads = torch.get_num_threads()  # the scorer takes one, as training's does
    try:
        floors = build_scorer(held, galleries).pose_floors(loaded.model)
    finally:
        torch.set_num_threads(threads)
    return {
        "checkpoint": str(loaded.path),
        "step": loaded.step,
        "faces": {"a": len(held.a), "b": len(held.b)},
        **{
            DIRECTIONS[side]: {
                **{kind: floors[f"{kind}_{side}"] for kind in KINDS},
                **{f"{kind}_shape": floors[f"{kind}_shape_{side}"] for kind in KINDS},
            }
            for side in ("a", "b")
        },
    }


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(results: list[dict]) -> str:
    """pose_error / shape_error per kind, and what the swap adds to its own decoder's."""
    lines = [
        "| checkpoint | direction | pose / shape: source (mark + detector) | own decoder | swap "
        "| swap - own (pose) |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        name = f"{Path(result['checkpoint']).parent.parent.name} @ {result['step']}"
        for direction in DIRECTIONS.values():
            row = result[direction]
            gap = None if None in (row["swap"], row["own"]) else row["swap"] - row["own"]
            cells = [f"{_cell(row[kind])} / {_cell(row[f'{kind}_shape'])}" for kind in KINDS]
            lines.append(f"| {name} | {direction} | " + " | ".join([*cells, _cell(gap)]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks pose", description=__doc__)
    parser.add_argument("--checkpoint", nargs="+", required=True, help="checkpoints or runs")
    parser.add_argument("--out", default="/tmp/rayswap-bench/pose", help="where pose.json goes")
    args = parser.parse_args(argv)
    results = [floors_of(checkpoint) for checkpoint in args.checkpoint]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pose.json").write_text(json.dumps(results, indent=1))
    print(table(results))
    print(f"-> {out / 'pose.json'}")
