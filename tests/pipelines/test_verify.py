"""Verify: rendered videos are reported as marked, unmarked real clips are not."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from ops.detect import RetinaFaceDetector
from ops.video import iter_frames
from ops.video_out import SegmentWriter, frame_rate_of, join_segments
from ops.watermark import MARKED, UNDECIDED
from pipelines.cli import app
from pipelines.config import RenderConfig, VerifyConfig
from pipelines.render.segment import SegmentRenderer
from pipelines.verify import run_verify, verify_video
from tests.conftest import shared_video
from tests.pipelines.test_render import checkpoint  # noqa: F401 - fixture

# Unmarked originals: the false-positive check. Public-figure clips appear here only as
# untouched inputs to detection, never as render targets (../shared/data/SOURCES.md).
UNMARKED = (
    "person_e__liveportrait_s18.mp4",
    "obama__styletalk_Obama_clip1.mp4",
    "person_b__mead_W009_front_neutral.mp4",
    "hard_noface_short__imageio_realshort.mp4",  # no face at all
    "hard_noface_animal__imageio_cockatoo.mp4",  # detector false positives on a bird
)


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    return RetinaFaceDetector(threads=1)


def test_unmarked_real_clips_are_not_reported_marked() -> None:
    videos = tuple(str(shared_video(name)) for name in UNMARKED)
    results = run_verify(VerifyConfig(videos=videos, max_frames=60))
    assert [r.error for r in results] == [""] * len(videos)
    for result in results:
        assert not result.marked and result.score < 3.5, result
    assert results[3].frames == 0  # the no-face clip has nothing to correlate
    assert results[3].verdict == UNDECIDED  # ... so nothing is ruled out


def test_rendered_clip_is_marked_after_half_size_crf28(checkpoint, detector, tmp_path) -> None:  # noqa: F811
    source = str(shared_video("person_d__liveportrait_d18.mp4"))  # allowed render target
    cfg = RenderConfig(checkpoint, (source,), str(tmp_path))
    fps = frame_rate_of(source)
    part = str(tmp_path / "part.mp4")
    SegmentRenderer(cfg).render(source, 0, 24, part, fps)  # small.mp4 still scores ~10 > 4.5
    rendered = str(tmp_path / "rendered.mp4")
    join_segments([(part, 0)], fps, rendered, source)
    small = str(tmp_path / "small.mp4")
    with SegmentWriter(small, fps, 240, 240, crf=28) as writer:
        for _, _, frame in iter_frames(rendered):
            writer.write(cv2.resize(frame, (240, 240), interpolation=cv2.INTER_AREA))
    verify_cfg = VerifyConfig(videos=("x",), max_frames=48)  # the source: 48 of its frames
    for path in (rendered, small):
        result = verify_video(path, detector, verify_cfg)
        assert result.marked, (path, result)
    assert not verify_video(source, detector, verify_cfg).marked


def test_verify_reports_unreadable_files(tmp_path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 64)
    (result,) = run_verify(VerifyConfig(videos=(str(bad),)))
    assert result.error and not result.marked
    assert np.isfinite(result.score)


@pytest.fixture(scope="module")
def one_frame_clips(checkpoint, tmp_path_factory) -> dict[str, str]:  # noqa: F811
    """A one-frame render of an allowed target, and that frame unmarked."""
    folder = tmp_path_factory.mktemp("one_frame")
    source = str(shared_video("person_d__liveportrait_d18.mp4"))
    fps = frame_rate_of(source)
    rendered, plain = str(folder / "rendered.mp4"), str(folder / "plain.mp4")
    SegmentRenderer(RenderConfig(checkpoint, (source,), str(folder))).render(
        source, 0, 1, rendered, fps
    )
    _, _, frame = next(iter_frames(source))
    with SegmentWriter(plain, fps, frame.shape[1], frame.shape[0]) as writer:
        writer.write(frame)
    return {"rendered": rendered, "plain": plain}


def test_one_frame_render_is_marked_and_its_source_undecided(detector, one_frame_clips) -> None:
    cfg = VerifyConfig(videos=("x",))
    rendered = verify_video(one_frame_clips["rendered"], detector, cfg)
    assert rendered.frames == 1 and rendered.verdict == MARKED, rendered
    assert rendered.score >= rendered.threshold > cfg.threshold  # one frame must score more
    plain = verify_video(one_frame_clips["plain"], detector, cfg)
    assert plain.frames == 1 and plain.verdict == UNDECIDED, plain


def test_verify_cli_json_and_exit_codes(one_frame_clips, tmp_path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 64)
    rendered, plain = one_frame_clips["rendered"], one_frame_clips["plain"]
    result = runner.invoke(app, ["verify", "--json", rendered, plain, str(bad)])
    records = json.loads(result.output)
    assert [r["verdict"] for r in records] == ["marked", "undecided", "error"]
    assert records[1]["frames_with_face"] == 1 and records[2]["error"]
    assert result.exit_code == 4  # an unreadable video outranks the rest
    assert runner.invoke(app, ["verify", rendered]).exit_code == 0
    result = runner.invoke(app, ["verify", plain])
    assert result.exit_code == 3 and "undecided: 1 frame with a face" in result.output
