"""The per-item failure contract both segment stages share (pipelines/segments.py), no Ray."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from ops import schema
from pipelines.segments import SEGMENT_DONE, SegmentActor, error_path, report_row


class _Counter(SegmentActor):
    """Counts a segment's frames; fails on the videos it is told are broken."""

    keys, counts = ("video", "video_id", "start", "stop"), ("frames",)
    work_step, action = "count", "skipped (rerun retries it)"

    def __init__(self, out: str, broken: set[str]) -> None:
        self.out, self.broken = out, broken

    def work(self, row: dict) -> dict:
        if row["video"] in self.broken:
            raise ValueError(f"{row['video']}: moov atom not found")
        return {"frames": row["stop"] - row["start"]}


def _batch(rows: list[dict]) -> dict[str, np.ndarray]:
    return {key: np.array([r[key] for r in rows]) for key in rows[0]}


def _row(video: str, start: int, **fields) -> dict:
    base = {"video": video, "video_id": video.split(".")[0], "start": start, "stop": start + 10}
    return report_row(base, _Counter.keys, _Counter.counts, **fields)


def test_a_failed_segment_is_recorded_and_a_rerun_that_succeeds_removes_its_row(tmp_path):
    out = str(tmp_path)
    (report,) = _rows(_Counter(out, {"bad.mp4"})(_batch([_row("bad.mp4", 20)])))
    assert report["error"] == "ValueError: bad.mp4: moov atom not found"
    assert report["error_step"] == "count" and report["frames"] == 0
    (record,) = pq.read_table(error_path(out, "bad", 20)).to_pylist()
    assert record[schema.VIDEO] == "bad.mp4" and record[schema.SEGMENT_START] == 20
    assert record[schema.STAGE] == "count" and record[schema.ERROR] == report["error"]
    assert record[schema.ACTION] == "skipped (rerun retries it)"

    (report,) = _rows(_Counter(out, set())(_batch([_row("bad.mp4", 20)])))
    assert report["error"] == "" and report["frames"] == 10
    assert not (tmp_path / "errors" / "bad-000000020.parquet").exists()


def test_planning_errors_are_recorded_by_the_actor_and_done_segments_pass_through(tmp_path):
    out = str(tmp_path)
    planned = _row("gone.mp4", 0, error="FileNotFoundError: gone.mp4: no such file")
    planned["error_step"] = "probe"
    done = _row("ok.mp4", 10, status=SEGMENT_DONE, frames=7)
    reports = _rows(_Counter(out, {"ok.mp4"})(_batch([planned, done])))
    assert [r["error_step"] for r in reports] == ["probe", ""]
    assert reports[1]["frames"] == 7  # what the earlier run recorded; not worked on again
    (record,) = pq.read_table(error_path(out, "gone", 0)).to_pylist()
    assert record[schema.STAGE] == "probe" and "no such file" in record[schema.ERROR]


def _rows(columns: dict[str, list]) -> list[dict]:
    return [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
