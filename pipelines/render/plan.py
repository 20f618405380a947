"""Render planning: output names, resume bookkeeping, the pinned checkpoint, segment rows.

Ray-free helpers of pipelines/render/driver.py (pipelines/segments.py describes the stage's
shape). `plan_render_segments` runs as a Ray Data flat_map task (one input video -> its
segment rows); the rest runs on the driver before Ray starts.

Resume works like extract's. What is finished is recorded on disk as it finishes:
    OUT/_parts/<video_id>/<start>.mp4   a rendered segment (written atomically)
    OUT/_parts/<video_id>/<start>.json  its counts, written after the part: "segment done"
    OUT/_done/<video_id>.json           the video's manifest row, written after its output
A rerun of the same command plans only what is not recorded. `video_id` hashes the input's
URI, size and mtime, so a changed input is rendered again. Settings that change the pixels
(RenderConfig.OUTPUT_FIELDS) and the checkpoint must stay the same, or the rerun is refused.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass
from functools import partial

from ops import schema, storage
from ops.checkpoint import check_weights_present, find_latest_checkpoint, read_checkpoint_config
from ops.sources import VideoSource, video_id
from pipelines.config import RenderConfig
from pipelines.config.flags import check_same_settings
from pipelines.segments import (
    SEGMENT_DONE,
    VIDEO_FINISHED,
    name_file,
    report_row,
    split_video,
)

REPORT_KEYS = ("video", "video_id", "output", "start", "stop", "segments", "part", "frame_rate")
COUNT_KEYS = ("frames", "swapped_frames", "faces_missed", "seconds")
NAME_MAX = 120
PARTS, DONE = "_parts", "_done"


@dataclass(frozen=True)
class CheckpointPin:
    """The one checkpoint every actor of a render loads: an exact directory and its step."""

    path: str
    step: int


@dataclass(frozen=True)
class RenderPlan:
    """What the driver resolved before Ray starts: the inputs and the pinned checkpoint."""

    sources: list[VideoSource]
    checkpoint: CheckpointPin


# -- names and paths -----------------------------------------------------------------------
def output_name(uri: str) -> str:
    """A safe file name for a video's output: its stem with only [A-Za-z0-9._-], + .mp4.

    The name never contains a path separator or starts with a dot, so it stays in --out.
    """
    stem = os.path.splitext(os.path.basename(storage.strip_query(uri).rstrip("/")))[0]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:NAME_MAX] or "video"
    return f"{safe}.mp4"


def output_names(sources: list[VideoSource]) -> dict[str, str]:
    """Input URI -> output file name; clashing names get the video id appended."""
    names = {s.uri: output_name(s.uri) for s in sources}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    for uri, name in names.items():
        if counts[name] > 1:
            names[uri] = f"{name[:-4]}-{video_id(uri)[:8]}.mp4"
    return names


def part_path(out: str, key: str, start: int, suffix: str = ".mp4") -> str:
    """OUT/_parts/<video_id>/<start>.mp4 (the segment) or .json (its record)."""
    return storage.join(out, PARTS, key, f"{start:09d}{suffix}")


def video_record_path(out: str, key: str) -> str:
    return storage.join(out, DONE, f"{key}.json")


def list_finished(out: str) -> frozenset[str]:
    """Names of the records under OUT/_parts ("<video_id>/<file>") and OUT/_done ("<file>")."""
    names = set()
    for folder, depth in ((PARTS, 2), (DONE, 1)):
        for path in storage.list_files(storage.join(out, folder)):
            tail = storage.strip_query(path).replace(os.sep, "/").rsplit("/", depth)[1:]
            names.add(f"{folder}/{'/'.join(tail)}")
    return frozenset(names)


def read_json(path: str) -> dict | None:
    """A record written by an earlier run, or None when it is missing or unreadable."""
    try:
        record = json.loads(storage.read_bytes(path))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


# -- planning (flat_map) ---------------------------------------------------------------------
def report(row: dict, **fields: object) -> dict:
    """A render report row (`segments.report_row`), updated by `fields`."""
    return report_row(row, REPORT_KEYS, COUNT_KEYS, **fields)


def video_row(uri: str, name: str, out: str) -> dict:
    """The planned row of a whole video, before it is probed and split."""
    base = {"video": uri, "video_id": video_id(uri), "output": storage.join(out, name)}
    return base | {"start": 0, "stop": -1, "segments": 1, "part": "", "error": "", "frame_rate": ""}


def finished_video(base: dict, out: str, finished: frozenset[str]) -> dict | None:
    """The report of a video whose output an earlier run completed, or None.

    `base` is the video's planned row (video, video_id, ...); `finished` is `list_finished`.
    """
    key = base["video_id"]
    if f"{DONE}/{key}.json" not in finished:
        return None
    record = read_json(video_record_path(out, key))
    if not record or not record.get(schema.OUTPUT):
        return None
    output = storage.join(out, posixpath.basename(record[schema.OUTPUT]))
    if not storage.exists(output):  # removed since: render it again
        return None
    counts = {name: record.get(name) or 0 for name in COUNT_KEYS}
    return report(base, output=output, status=VIDEO_FINISHED, **counts)


def done_segment(row: dict, out: str, finished: frozenset[str]) -> dict:
    """A segment row as planned, or its report with the counts an earlier run recorded."""
    name = f"{PARTS}/{row['video_id']}/{row['start']:09d}"
    if f"{name}.json" not in finished:
        return row
    record = read_json(part_path(out, row["video_id"], row["start"], ".json"))
    if record is None or (record.get("frames") and f"{name}.mp4" not in finished):
        return row
    return report(row, status=SEGMENT_DONE, **{k: record.get(k) or 0 for k in COUNT_KEYS})


def segment_record(counts: dict[str, float]) -> bytes:
    """What OUT/_parts/<video_id>/<start>.json holds: the segment's counts and seconds."""
    return json.dumps({key: counts.get(key, 0) for key in COUNT_KEYS}).encode()


# -- how finely videos are split --------------------------------------------------------------
MIN_SEGMENT_FRAMES = 30  # below this, a segment's context frames and encoder start dominate


def segments_per_video(videos: int, workers: int) -> int:
    """Fewer videos than actors: split each into at least this many segments."""
    return max(1, -(-workers // max(videos, 1)))


def segment_length(frame_count: int, segment_frames: int, per_video: int) -> int:
    """Frames per segment of one video: --segment-frames, shrunk so the video makes at
    least `per_video` segments (never below MIN_SEGMENT_FRAMES)."""
    if per_video <= 1 or frame_count <= 0:
        return segment_frames
    return min(segment_frames, max(MIN_SEGMENT_FRAMES, -(-frame_count // per_video)))


def recorded_split(out: str) -> int | None:
    """The segments-per-video an earlier run into OUT used (a rerun keeps its segments)."""
    previous = read_json(storage.join(out, schema.CONFIG_FILE)) or {}
    value = previous.get("segments_per_video")
    return int(value) if value is not None else None


def plan_render_segments(
    row: dict,
    segment_frames: int,
    out: str,
    context: int = 0,
    finished: frozenset[str] = frozenset(),
    per_video: int = 1,
) -> list[dict]:
    """flat_map: one input video -> its segment rows, or one error row. Never raises.

    `context` is the smoothing radius: each segment also decodes that many frames before
    its start, so its seek point (`seek_frame`, `seek_pts`) is that far back. What an
    earlier run recorded (`finished`, from `list_finished`) comes back as reports with
    status "finished" (the whole video) or "done" (a segment) and is not rendered again.
    `per_video`: split the video into at least this many segments (few videos, many actors).
    """
    uri = row["video"]
    base = video_row(uri, row["output"], out)
    key = base["video_id"]
    seek = {"seek_frame": -1, "seek_pts": -1}
    done = finished_video(base, out, finished)
    if done is not None:
        return [done | seek]
    try:
        length = partial(segment_length, segment_frames=segment_frames, per_video=per_video)
        info, ranges = split_video(uri, segment_frames, context, length)
    except Exception as exc:  # noqa: BLE001 - recorded by the actor, and in the manifest
        return [report(base, error=name_file(uri, exc), error_step="probe", **seek)]
    base["frame_rate"] = info.frame_rate  # the probe's exact rate: actors and join use it
    rows = []
    for frames in ranges:  # the last runs to the end (stop -1)
        part = part_path(out, key, frames.start)
        seek = {"seek_frame": frames.seek_frame, "seek_pts": frames.seek_pts}
        fields = {"start": frames.start, "stop": frames.stop, "segments": len(ranges)}
        rows.append(done_segment(report(base, part=part, **fields, **seek), out, finished))
    return rows


# -- resume checks (driver, before Ray) --------------------------------------------------------
def _read_pin(path: str) -> CheckpointPin:
    """The pin of the checkpoint at `path`: its config is read and checked, its weights
    must be there (they are loaded by the actors only)."""
    step = int(read_checkpoint_config(path)["step"])
    check_weights_present(path)
    return CheckpointPin(path, step)


def pin_checkpoint(cfg: RenderConfig) -> CheckpointPin:
    """Resolve CHECKPOINT once (a training folder -> its latest checkpoint) and check resume.

    A rerun into an OUT that a previous run wrote keeps that run's checkpoint when it is
    given the same CHECKPOINT argument (even if training has written a newer one since),
    and refuses any settings or checkpoint that would render different pixels.
    Raises ValueError naming the flag (or CHECKPOINT), FileNotFoundError if it is missing.
    """
    path = storage.join(cfg.out, schema.CONFIG_FILE)
    previous = read_json(path) or {}
    check_same_settings(cfg, previous.get("config") or {}, cfg.out, secret=("watermark_key",))
    pinned = previous.get("checkpoint")
    if not isinstance(pinned, dict) or "path" not in pinned:
        return _read_pin(find_latest_checkpoint(cfg.checkpoint) or cfg.checkpoint)
    was = CheckpointPin(pinned["path"], int(pinned.get("step", -1)))
    described = f"{cfg.out} was rendered with checkpoint {was.path} (step {was.step})"
    if (previous.get("config") or {}).get("checkpoint") == cfg.checkpoint:
        try:
            now = _read_pin(was.path)  # same argument: resume with the same checkpoint
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"CHECKPOINT: {described}, which can no longer be read ({exc}); "
                "render into a new --out"
            ) from exc
    else:
        now = _read_pin(find_latest_checkpoint(cfg.checkpoint) or cfg.checkpoint)
    if now != was:
        raise ValueError(
            f"CHECKPOINT: {described}; this run resolves {cfg.checkpoint} to {now.path} "
            f"(step {now.step}). Pass {was.path} to resume, or use a new --out"
        )
    return now
