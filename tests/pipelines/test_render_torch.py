"""The renderer's torch paste-back path (the CUDA default) run on CPU against the cv2 path.

Tolerance, on real frames of render targets through the real `SegmentRenderer`: over the
pixels either path changed, the mean absolute difference is under 0.05 grey levels and no
pixel differs by more than 2. Measured on 12 frames of person_d..g: mean 0.0001 to 0.02,
max 1 (2 with "lab", where a LAB value the two paths compute in a different float order
lands on the other side of an integer). The watermark the torch path embeds verifies.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ops.detect import RetinaFaceDetector, select_faces
from ops.smooth import smooth_faces
from ops.video import iter_frames
from ops.video_out import SegmentWriter, frame_rate_of
from ops.watermark import WatermarkVerdict, correlate_face, decide_watermark
from pipelines.config import RenderConfig
from pipelines.render.composite import DeviceCompositor, Pending
from pipelines.render.segment import SegmentRenderer
from tests.conftest import shared_video
from tests.pipelines.test_render import checkpoint  # noqa: F401 - fixture

TARGETS = ("person_e__liveportrait_s18.mp4", "person_d__liveportrait_d18.mp4")  # SOURCES.md


def _frames(path: str, count: int) -> list[np.ndarray]:
    return [frame for _, _, frame in iter_frames(path, 0, count)]


def _pending(renderer: SegmentRenderer, frames: list[np.ndarray]) -> list[Pending]:
    found = renderer.detect(frames)
    return [Pending(i, f, smooth_faces(found, i, 3, 1)) for i, f in enumerate(frames)]


def _verdict(frames: list[np.ndarray], detector: RetinaFaceDetector) -> WatermarkVerdict:
    """What `rayswap verify` decides: correlations of the largest face of every frame."""
    found = []
    for begin in range(0, len(frames), 8):
        found += [
            select_faces(f, 16, 0.8, "largest")
            for f in detector.detect_batch(frames[begin : begin + 8])
        ]
    rows = [
        correlate_face(frame, faces[0][1])
        for frame, faces in ((f, smooth_faces(found, i, 3, 1)) for i, f in enumerate(frames))
        if faces
    ]
    return decide_watermark(np.stack(rows))


def test_paste_choice_follows_the_device(checkpoint) -> None:  # noqa: F811
    cfg = RenderConfig(checkpoint, ("x",), "out")
    assert not isinstance(SegmentRenderer(cfg).compositor, DeviceCompositor)  # CPU: cv2
    assert isinstance(SegmentRenderer(cfg, paste="torch").compositor, DeviceCompositor)
    with pytest.raises(ValueError, match="paste must be one of"):
        SegmentRenderer(cfg, paste="gpu")


@pytest.mark.parametrize(
    "target, color", [(TARGETS[0], "lab"), (TARGETS[1], "hist"), (TARGETS[1], "none")]
)
def test_torch_paste_gives_the_frames_of_the_cv2_path(checkpoint, target, color) -> None:  # noqa: F811
    cfg = RenderConfig(checkpoint, ("x",), "out", color=color)
    host, device = SegmentRenderer(cfg, paste="cv2"), SegmentRenderer(cfg, paste="torch")
    frames = _frames(str(shared_video(target)), 4)
    pending = _pending(host, frames)
    pending[2] = Pending(2, frames[2], [])  # a frame without a face stays as it is
    want = np.stack(host.compositor.composite(pending)).astype(int)
    got = device.compositor.composite(pending)
    assert got[2] is frames[2]
    got = np.stack(got).astype(int)
    changed = (want != np.stack(frames)).any(-1) | (got != np.stack(frames)).any(-1)
    assert changed.sum() > 6000 * (len(frames) - 1)  # a face, its mark and the label
    diff = np.abs(got - want)[changed]
    assert diff.mean() < 0.05 and diff.max() <= 2, (diff.mean(), diff.max())


def test_torch_paste_output_carries_a_verifiable_watermark(checkpoint, tmp_path) -> None:  # noqa: F811
    """The whole CUDA path on CPU: RetinaFace in torch, torch paste-back and watermark."""
    source = str(shared_video(TARGETS[1]))
    cfg = RenderConfig(checkpoint, (source,), str(tmp_path), detector="torch")
    fps = frame_rate_of(source)
    part = str(tmp_path / "part.mp4")
    renderer = SegmentRenderer(cfg, paste="torch")
    assert not isinstance(renderer.detector, RetinaFaceDetector)  # the torch network
    counts = renderer.render(source, 0, 12, part, fps)
    assert counts.frames == counts.swapped_frames == 12
    rendered = _frames(part, 12)
    small = str(tmp_path / "small.mp4")  # half size, then H.264 at CRF 28
    with SegmentWriter(small, fps, 240, 240, crf=28) as writer:
        for frame in rendered:
            writer.write(cv2.resize(frame, (240, 240), interpolation=cv2.INTER_AREA))
    detector = RetinaFaceDetector(threads=1)
    for frames in (rendered, _frames(small, 12)):
        verdict = _verdict(frames, detector)
        assert verdict.marked and verdict.frames == 12, verdict
    assert not _verdict(_frames(source, 12), detector).marked
