"""CLI of verify: verdict lines, JSON records and exit codes (no media, no detector)."""

from __future__ import annotations

from ops.watermark import MARKED, NOT_MARKED, UNDECIDED
from pipelines.cli.verify import EXIT_CODES, exit_code, verdict_line, verdict_record
from pipelines.verify import ERROR, VerifyResult


def _result(verdict: str, frames: int = 1, score: float = 0.4) -> VerifyResult:
    error = "ValueError: bad.mp4: not a readable video" if verdict == ERROR else ""
    return VerifyResult("v.mp4", verdict, score, frames, frames, 6.0, error)


def test_exit_codes_cover_every_verdict_and_rank_them() -> None:
    assert set(EXIT_CODES) == {MARKED, NOT_MARKED, UNDECIDED, ERROR}
    assert exit_code([MARKED, MARKED]) == 0
    assert exit_code([MARKED, UNDECIDED]) == 3
    assert exit_code([UNDECIDED, NOT_MARKED, MARKED]) == 1
    assert exit_code([NOT_MARKED, ERROR]) == 4
    assert 2 not in EXIT_CODES.values()  # kept for bad invocation


def test_verdict_line_says_undecided_with_the_frame_count() -> None:
    line = verdict_line(_result(UNDECIDED))
    assert line.startswith("v.mp4: undecided: 1 frame with a face") and "threshold 6" in line
    assert "not marked" in verdict_line(_result(NOT_MARKED, frames=40))
    assert "MARKED" in verdict_line(_result(MARKED, score=30.8))
    assert verdict_line(_result(ERROR)).startswith("v.mp4: error: ValueError")


def test_verdict_record_is_plain_json_data() -> None:
    record = verdict_record(_result(UNDECIDED))
    assert record["verdict"] == "undecided" and record["frames_with_face"] == 1
    assert record["error"] is None and record["threshold"] == 6.0
