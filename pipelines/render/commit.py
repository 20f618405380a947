"""Render commit: a video's parts joined into OUT/<name>.mp4 with its provenance, and the
manifest.

When all parts of a video are rendered, `join_video` remuxes them in order (no re-encode),
carries the source audio over and writes the provenance metadata, under a temporary name
renamed when complete, then records the video's manifest row (OUT/_done/<id>.json) and
deletes its parts. One manifest row per input video says what happened.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import tempfile
import time
from fractions import Fraction

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from ops import schema, storage
from ops.video_out import join_segments
from pipelines.config import RenderConfig, versions
from pipelines.render.plan import PARTS, CheckpointPin


def provenance_metadata(cfg: RenderConfig, swapped_frames: int) -> dict[str, str]:
    """Container tags: synthetic and made by rayswap, or, with no swapped frame, no claim.

    A video in which no face was swapped is the source re-encoded (no label, no mark):
    its tags say so, and never that it is synthetic.
    """
    version = versions().get("rayswap", "unknown")
    if not swapped_frames:
        return {
            "comment": "No face was found to swap: every frame is the source's, re-encoded.",
            "synthetic": "false",
            "encoded_by": f"rayswap {version}",
        }
    return {
        "comment": "SYNTHETIC: faces in this video were swapped by rayswap (deepfake).",
        "description": f"Synthetic video made by rayswap {version}; face swap {cfg.direction}; "
        "carries an invisible rayswap watermark (check with `rayswap verify`).",
        "synthetic": "true",
        "generator": f"rayswap {version}",
        "encoded_by": "rayswap",
    }


@ray.remote(num_cpus=0.5, max_retries=2)
def join_video(
    video: str,
    output: str,
    parts: list[tuple[str, int]],
    frame_rate: str,
    tags: dict,
    row: dict,
    record: str,
    error: str,
) -> dict:
    """Remux a video's parts into OUT/<name>.mp4 with the source audio; return its row.

    frame_rate: the exact rate the planning probe found ("num/den"), which the parts
    were written at.

    The manifest `row` (its seconds now counting the join) is written to `record`
    (OUT/_done/<video_id>.json) after the output and before the parts are deleted: a
    rerun that finds the record skips the video.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        local_parts = []
        for i, (part, start) in enumerate(parts):
            local = os.path.join(tmp, f"{i:06d}.mp4")
            with open(local, "wb") as handle:
                handle.write(storage.read_bytes(part))
            local_parts.append((local, start))
        joined = os.path.join(tmp, "joined.mp4")
        with storage.local_copy(video) as source:
            join_segments(local_parts, Fraction(frame_rate), joined, source, tags)
        storage.upload_file_atomic(joined, output)  # temp name + rename, or one PUT
    row = {**row, schema.SECONDS: row[schema.SECONDS] + time.perf_counter() - started}
    storage.write_bytes_atomic(record, json.dumps(row).encode())
    storage.delete_file(error)  # the error row of an earlier run's failed join
    for part, _ in parts:
        storage.delete_file(part)
    if parts:  # the video's folder under _parts (only segment records are left in it)
        _delete_dir(posixpath.dirname(storage.resolve(parts[0][0])[1]), parts[0][0])
    return row


def _delete_dir(inner: str, like: str) -> None:
    """Delete a folder (and what is in it) on the filesystem of the path or URI `like`."""
    filesystem, _ = storage.resolve(like)  # keeps a URI's endpoint query
    with contextlib.suppress(OSError):
        filesystem.delete_dir(inner)


class VideoState:
    """Segments of one video collected on the driver until its join can start."""

    def __init__(self, report: dict) -> None:
        self.video, self.output = report["video"], report["output"]
        self.key, self.status = report["video_id"], report["status"]
        self.frame_rate = report["frame_rate"]
        self.expected = int(report["segments"])
        self.reports: list[dict] = []

    def add(self, report: dict) -> bool:
        self.reports.append(report)
        return len(self.reports) == self.expected

    @property
    def error(self) -> str:
        return next((r["error"] for r in self.reports if r["error"]), "")

    def total(self, key: str) -> float:
        return sum(r[key] for r in self.reports)

    def parts(self) -> list[tuple[str, int]]:
        done = sorted((r["start"], r["part"]) for r in self.reports if r["frames"] > 0)
        return [(part, start) for start, part in done]


def manifest_row(state: VideoState, checkpoint: CheckpointPin, join_error: str = "") -> dict:
    """The video's manifest row: its counts, output (None on error) and pinned checkpoint."""
    error = state.error or join_error
    return {
        schema.VIDEO: storage.strip_query(state.video),
        schema.OUTPUT: None if error else storage.strip_query(state.output),
        schema.FRAMES: int(state.total("frames")),
        schema.SWAPPED_FRAMES: int(state.total("swapped_frames")),
        schema.FACES_MISSED: int(state.total("faces_missed")),
        schema.SECONDS: float(state.total("seconds")),
        schema.ERROR: error or None,
        schema.CHECKPOINT: storage.strip_query(checkpoint.path),
        schema.CHECKPOINT_STEP: checkpoint.step,
    }


def write_manifest(out: str, rows: list[dict]) -> str:
    path = storage.join(out, "manifest.parquet")
    table = pa.Table.from_pylist(rows, schema=schema.RENDER_MANIFEST_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    storage.write_bytes_atomic(path, sink.getvalue())
    return path


def delete_parts(out: str, key: str | None = None) -> None:
    """Delete OUT/_parts/<key>, or OUT/_parts itself (when `key` is None)."""
    parts = storage.join(out, PARTS, key) if key else storage.join(out, PARTS)
    _delete_dir(storage.resolve(parts)[1], parts)
