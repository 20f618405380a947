"""The quality benchmark's check of `rayswap train`'s own held-out scores.

Training runs score the swap of held-out faces at every checkpoint. Here the held-out
faces are the very clips the benchmark renders (fear, surprised), so the scores training
reports can be set beside `rayswap evaluate`'s on a render from the same checkpoint:

- scored_faces(): both people's faces from the training AND held-out emotions, extracted
  from links named so that the held-out clips come last by name (`--holdout-videos N`
  holds out the last N videos by name). Training still sees only the six training
  emotions. The benchmark's one extraction.
- gallery_faces(): the training emotions' rows of those (evaluate's gallery, and what
  calibration trains on), written as faces datasets of their own.
- final_score() / scoring_cost(): the last checkpoint's held-out score and what scoring
  cost, per checkpoint, against the training seconds between two checkpoints.
- agreement(): the table of training's scores against evaluate's (mean of the clips).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from benchmarks.media import run_rayswap

DIRECTIONS = ("a2b", "b2a")


def scored_faces(args: argparse.Namespace, work: Path, train: tuple, held_out: tuple) -> dict:
    """{"a": faces folder, "b": ...} of the `train` then `held_out` emotions, extracted once."""
    from benchmarks.quality import PEOPLE, _clip

    out = work / "scored_faces"
    faces = {side: str(out / "faces" / side) for side in PEOPLE}
    if (out / "extract_done.json").exists():
        return faces
    links = work / "scored_clips"
    links.mkdir(parents=True, exist_ok=True)
    rows = []
    for side in PEOPLE:
        for order, emotion in enumerate((*train, *held_out)):
            link = links / f"{PEOPLE[side]}_{order}_{emotion}.mp4"
            if not link.exists():
                os.symlink(_clip(args.data, side, emotion), link)
            rows.append(f"{link},{side}")
    manifest = work / "scored_clips.csv"
    manifest.write_text("uri,identity\n" + "\n".join(rows) + "\n")
    flags = ["extract", str(manifest), "--out", str(out)]  # extract's 256 px crops
    run_rayswap([*flags, *(["--every-n", "2"] if args.tiny else [])], timeout_s=3600)
    (out / "extract_done.json").write_text("{}")
    return faces


def gallery_faces(scored: dict[str, str], work: Path, held_out: tuple) -> dict[str, str]:
    """{"a": faces folder, "b": ...}: the rows of `scored` from no held-out clip (Parquet
    files filtered row by row, never re-extracted)."""
    import shutil

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ops import schema

    out = work / "gallery"
    faces = {side: str(out / "faces" / side) for side in scored}
    if (out / "done.json").exists():
        return faces
    held = pa.array(list(held_out), pa.string())
    for side, folder in scored.items():
        Path(faces[side]).mkdir(parents=True, exist_ok=True)
        for path in sorted(Path(folder).glob("*.parquet")):
            table = pq.read_table(path)
            emotion = [Path(v).stem.rsplit("_", 1)[-1] for v in table[schema.VIDEO].to_pylist()]
            keep = pc.invert(pc.is_in(pa.array(emotion, pa.string()), value_set=held))
            if table.num_rows and pc.any(keep).as_py():
                pq.write_table(table.filter(keep), Path(faces[side]) / path.name)
    config = Path(scored["a"]).parents[1] / "_config.json"
    if config.exists():
        shutil.copy(config, out / "_config.json")
    (out / "done.json").write_text("{}")
    return faces


def final_score(lines: list[dict]) -> dict | None:
    """The held-out score of the run's last scored checkpoint."""
    scores = [line["holdout"] for line in lines if "holdout" in line]
    return max(scores, key=lambda score: score["step"]) if scores else None


def scoring_cost(lines: list[dict], save_every: int, s_per_step: float | None) -> dict | None:
    """Seconds one checkpoint's scoring took, against the training seconds between two
    checkpoints at `save_every` (the share training would pay if it waited)."""
    seconds = sorted(
        {
            line["holdout"]["step"]: line["holdout"]["holdout_seconds"]
            for line in lines
            if "holdout_seconds" in line.get("holdout", {})
        }.values()
    )
    if not seconds or not s_per_step:
        return None
    mean = sum(seconds) / len(seconds)
    interval = save_every * s_per_step
    return {
        "checkpoints": len(seconds),
        "seconds": mean,
        "interval_s": interval,
        "share": mean / interval,
    }


def agreement(runs: dict[str, dict], rows: list[dict]) -> list[str]:
    """Training's held-out scores beside evaluate's on the renders, per run and direction."""
    head = "| run | direction | id_retrieval train / evaluate | pose_error train / evaluate |"
    lines = [head + " scoring s per checkpoint / interval s |", "|---|---|---|---|---|"]
    for label, run in runs.items():
        score = run.get("holdout")
        if not score:
            continue
        cost = run.get("holdout_cost")
        spent = "-" if not cost else f"{cost['seconds']:.1f} / {cost['interval_s']:.0f}"
        for direction in DIRECTIONS:
            mine = [r for r in rows if (r["recipe"], r["direction"]) == (label, direction)]
            cells = []
            for key in ("id_retrieval", "pose_error"):
                found = [r[key] for r in mine if r[key] is not None]
                trained = score.get(f"holdout_{key}_{direction}")
                mean = sum(found) / len(found) if found else None
                cells.append(f"{_num(trained)} / {_num(mean)}")
            lines.append(f"| {label} | {direction} | {cells[0]} | {cells[1]} | {spent} |")
    return lines if len(lines) > 2 else []


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
