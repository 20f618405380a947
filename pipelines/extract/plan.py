"""Extract planning: output layout, resume bookkeeping and splitting videos into segments.

Ray-free helpers of pipelines/extract/driver.py (pipelines/segments.py describes the stage's
shape). `plan_segments` runs as a Ray Data flat_map task (one input video -> its segment
rows); the rest runs on the driver before Ray starts.
"""

from __future__ import annotations

import json

from ops import schema, storage
from ops.sources import VideoSource, expand_inputs, video_id
from ops.video import every_n_for_fps
from pipelines.config import ExtractConfig
from pipelines.config.flags import check_same_settings
from pipelines.runtime.checks import check_gpu
from pipelines.segments import SEGMENT_DONE, name_file, report_row, split_video

REPORT_KEYS = ("video", "video_id", "identity", "start", "stop")  # + segments.STATUS_KEYS
# counts of a segment; rejected: faces farther than --max-distance from the --reference person
COUNT_KEYS = ("frames", "faces", "filtered", "rejected")


def faces_dir(out: str, identity: str) -> str:
    return storage.join(out, "faces", identity)


def segment_name(video_key: str, start: int) -> str:
    return f"{video_key}-{max(start, 0):09d}.parquet"


def segment_path(out: str, identity: str, video_key: str, start: int) -> str:
    return storage.join(faces_dir(out, identity), segment_name(video_key, start))


def list_done_segments(out: str) -> frozenset[str]:
    """Relative names "<identity>/<file>" of the segments already committed under OUT/faces."""
    root = storage.join(out, "faces")
    prefix = storage.strip_query(root).rstrip("/") + "/"
    done = set()
    for path in storage.list_files(root):
        relative = (
            storage.strip_query(path)[len(prefix) :]
            if storage.is_uri(path)
            else path[len(storage.resolve(root)[1]) + 1 :]
        )
        if relative.endswith(".parquet") and "/" in relative:
            done.add(relative)
    return frozenset(done)


def segment_report(row: dict, **fields) -> dict:
    """An extract report row (`segments.report_row`), updated by `fields`."""
    return report_row(row, REPORT_KEYS, COUNT_KEYS, **fields)


def plan_segments(row: dict, cfg: dict, done: frozenset[str]) -> list[dict]:
    """flat_map: one input video -> its segment rows (or one error row). Never raises."""
    uri, identity = row["video"], row["identity"]
    key = video_id(uri)
    base = {"video": uri, "identity": identity, "video_id": key, "start": 0, "stop": -1}
    reader = {"every_n": 1, "seek_frame": -1, "seek_pts": -1}  # how the actor reads a segment
    try:
        info, ranges = split_video(uri, cfg["segment_frames"])
    except Exception as exc:  # noqa: BLE001 - recorded by the actor, in the errors dataset
        return [segment_report(base, error_step="probe", error=name_file(uri, exc)) | reader]
    reader["every_n"] = every_n_for_fps(info.fps, cfg["fps"], cfg["every_n"])
    rows = []
    for frames in ranges:  # the last runs to the end (stop -1)
        name = f"{identity}/{segment_name(key, frames.start)}"
        status = SEGMENT_DONE if name in done else ""
        seek = {"seek_frame": frames.seek_frame, "seek_pts": frames.seek_pts}
        report = segment_report(base, start=frames.start, stop=frames.stop, status=status)
        rows.append(report | reader | seek)
    return rows


def check_resume(cfg: ExtractConfig) -> None:
    """Refuse to add to an output written with settings that change what a row holds."""
    path = storage.join(cfg.out, schema.CONFIG_FILE)
    if not storage.exists(path):
        return
    previous = json.loads(storage.read_bytes(path)).get("config", {})
    check_same_settings(cfg, previous, cfg.out)


def prepare_extract(cfg: ExtractConfig) -> list[VideoSource]:
    """Checks that need no Ray: the inputs expand to videos and OUT can be resumed.

    Raises ValueError naming the problem; the CLI turns it into exit code 2.
    """
    check_resume(cfg)
    check_gpu(cfg.gpu, cfg.address)
    sources = expand_inputs(cfg.inputs, cfg.identity)
    if not sources:
        raise ValueError(f"no videos found in {list(cfg.inputs)}")
    return sources
