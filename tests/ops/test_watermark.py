"""Watermark: keyed patterns, embedding cost, survival of re-encoding, resizing and cropping."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest

from ops.align import transform_points
from ops.detect import RetinaFaceDetector, select_faces
from ops.smooth import smooth_faces
from ops.video import iter_frames
from ops.video_out import SegmentWriter, frame_rate_of
from ops.watermark import (
    DEFAULT_THRESHOLD,
    MARKED,
    N_DECOYS,
    NOT_MARKED,
    UNDECIDED,
    WM_SIZE,
    correlate_watermark,
    crop_residual,
    decide_watermark,
    embed_watermark,
    size_factor,
    threshold_for_frames,
    watermark_affine,
    watermark_patterns,
    watermark_region,
)
from pipelines.config import VerifyConfig
from pipelines.verify import verify_video
from tests.conftest import shared_video


def watermark_residual(frame: np.ndarray, landmarks_frame: np.ndarray) -> np.ndarray:
    """`crop_residual` at a face's landmark alignment; (S, S) float32."""
    return crop_residual(frame, watermark_affine(landmarks_frame))


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    return RetinaFaceDetector(threads=1)


def _landmarks(frames: list[np.ndarray], detector: RetinaFaceDetector) -> list:
    found = []
    for begin in range(0, len(frames), 8):
        batch = detector.detect_batch(frames[begin : begin + 8])
        found += [select_faces(f, 16, 0.8, "largest") for f in batch]
    smoothed = [smooth_faces(found, i, 3, 1) for i in range(len(found))]
    return [faces[0][1] if faces else None for faces in smoothed]


def _mark(frames: list[np.ndarray], detector: RetinaFaceDetector) -> list[np.ndarray]:
    return [
        embed_watermark(frame, points) if points is not None else frame
        for frame, points in zip(frames, _landmarks(frames, detector), strict=True)
    ]


def _encode(frames: list[np.ndarray], path: str, fps: Fraction, crf: int) -> str:
    height, width = frames[0].shape[:2]
    with SegmentWriter(path, fps, width, height, crf) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def _attack(frames: list[np.ndarray], path: str, fps: Fraction) -> str:
    """Half size, then a 10% crop (5% off each side), then H.264 at CRF 28."""
    attacked = []
    for frame in frames:
        height, width = frame.shape[:2]
        half = cv2.resize(frame, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        dy, dx = half.shape[0] // 20, half.shape[1] // 20
        attacked.append(
            np.ascontiguousarray(half[dy : half.shape[0] - dy, dx : half.shape[1] - dx])
        )
    return _encode(attacked, path, fps, crf=28)


def test_patterns_are_keyed_and_decoys_orthogonal() -> None:
    own = watermark_patterns("rayswap")
    other = watermark_patterns("another key")
    assert own.shape == (1 + N_DECOYS, 128, 128)
    assert not np.allclose(own[0], other[0])
    dots = own[1:].reshape(N_DECOYS, -1) @ own[0].reshape(-1)
    assert np.abs(dots).max() < 1e-2 * float((own[0] ** 2).sum())


def test_decide_watermark_scores_decoy_like_rows_low() -> None:
    rng = np.random.default_rng(0)
    verdict = decide_watermark(rng.normal(0, 0.05, (40, 1 + N_DECOYS)))
    assert verdict.verdict == NOT_MARKED and abs(verdict.score) < 4
    assert decide_watermark(np.zeros((0, 1 + N_DECOYS))).verdict == UNDECIDED


def test_decide_watermark_with_one_or_two_frames_is_marked_or_undecided() -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(0, 0.05, (2, 1 + N_DECOYS))
    strong = rows.copy()
    strong[:, 0] = 0.05 * 12  # a key correlation far above every decoy's
    for frames in (1, 2):
        marked = decide_watermark(strong[:frames])
        assert marked.verdict == MARKED and marked.marked, marked
        thin = decide_watermark(rows[:frames])  # a decoy-like frame rules nothing out
        assert thin.verdict == UNDECIDED and not thin.marked, thin
        assert thin.threshold == threshold_for_frames(frames) > DEFAULT_THRESHOLD
    assert threshold_for_frames(3) == threshold_for_frames(120) == DEFAULT_THRESHOLD


def test_watermark_survives_crf28_half_size_and_crop(detector, tmp_path) -> None:
    source = str(shared_video("person_d__liveportrait_d18.mp4"))  # allowed render target
    fps = frame_rate_of(source)
    # 24 frames: the attacked copy still scores about 8 where the threshold is 4.5
    frames = [frame for _, _, frame in iter_frames(source, stop=24)]
    marked = _mark(frames, detector)
    mse = np.mean(
        [np.mean((a.astype(float) - b) ** 2) for a, b in zip(frames, marked, strict=True)]
    )
    assert 10 * np.log10(255**2 / mse) > 45.0  # PSNR of the mark alone, in dB
    cfg = VerifyConfig(videos=("x",), max_frames=24)
    reencoded = verify_video(_encode(marked, str(tmp_path / "crf28.mp4"), fps, 28), detector, cfg)
    attacked = verify_video(_attack(marked, str(tmp_path / "attacked.mp4"), fps), detector, cfg)
    original = verify_video(_attack(frames, str(tmp_path / "original.mp4"), fps), detector, cfg)
    assert reencoded.marked and attacked.marked, (reencoded, attacked)
    assert not original.marked and original.score < 3.0


def test_residual_correlation_finds_the_mark_in_one_frame(astronaut, detector) -> None:
    frame = np.ascontiguousarray(astronaut)
    points = select_faces(detector.detect_batch([frame])[0], 16, 0.8, "largest")[0].landmarks
    plain = correlate_watermark(watermark_residual(frame, points))
    marked = correlate_watermark(watermark_residual(embed_watermark(frame, points), points))
    assert marked[0] > plain[0] + 0.1
    assert marked[0] > np.abs(marked[1:]).max()


def test_mark_stays_inside_the_face_oval(astronaut, detector) -> None:
    frame = np.ascontiguousarray(astronaut)
    points = select_faces(detector.detect_batch([frame])[0], 16, 0.8, "largest")[0].landmarks
    changed = np.argwhere((embed_watermark(frame, points) != frame).any(-1))  # (N, 2) y, x
    assert len(changed) > 1000
    canonical = transform_points(changed[:, ::-1].astype(np.float32), watermark_affine(points))
    inside = np.clip(np.rint(canonical).astype(int), 0, WM_SIZE - 1)
    region = watermark_region()
    assert region[inside[:, 1], inside[:, 0]].min() > 0.0  # every changed pixel is in the oval
    assert region[0].max() == 0.0 and region[:, 0].max() == 0.0  # background stays untouched


def test_host_compensation_evens_out_the_key_correlation(astronaut, detector) -> None:
    """Two faces that correlate differently with the key by chance get the same boost."""
    frame = np.ascontiguousarray(astronaut)
    points = select_faces(detector.detect_batch([frame])[0], 16, 0.8, "largest")[0].landmarks
    mirrored = np.ascontiguousarray(frame[:, ::-1])
    mirrored_points = select_faces(detector.detect_batch([mirrored])[0], 16, 0.8, "largest")[0]
    values = []
    for host, where in ((frame, points), (mirrored, mirrored_points.landmarks)):
        before = correlate_watermark(watermark_residual(host, where), max_shift=0)[0]
        after = correlate_watermark(
            watermark_residual(embed_watermark(host, where), where), max_shift=0
        )[0]
        values.append((before, after))
    (before_a, after_a), (before_b, after_b) = values
    assert abs(before_a - before_b) > 0.005  # the hosts differ in their chance correlation
    assert abs(after_a - after_b) < 0.5 * abs(before_a - before_b)


def test_correlation_in_the_support_box_equals_the_full_crop() -> None:
    patterns = watermark_patterns("rayswap")
    rng = np.random.default_rng(1)
    residual = rng.standard_normal((WM_SIZE, WM_SIZE)).astype(np.float32) * watermark_region()
    residual += 0.3 * np.roll(patterns[0], (1, -2), (0, 1))  # the mark, 1 px down, 2 px left
    spectra = np.conj(np.fft.rfft2(patterns))
    maps = np.fft.irfft2(np.fft.rfft2(residual)[None] * spectra, s=residual.shape)
    offsets = np.r_[0:3, -2:0]
    full = maps[:, offsets][:, :, offsets].reshape(len(patterns), -1).max(1)
    full /= np.linalg.norm(residual) * np.linalg.norm(patterns[0])
    assert np.allclose(correlate_watermark(residual), full, atol=1e-6)
    assert full[0] > 3 * np.abs(full[1:]).max()  # the shifted mark is found


def test_small_faces_get_a_stronger_mark_than_large_ones() -> None:
    from ops.align import template_landmarks

    template = template_landmarks(128, 1.5)  # a face whose eyes are 27 px apart
    factors = [size_factor(watermark_affine(template * zoom + 50)) for zoom in (2, 4, 16)]
    assert factors[0] > factors[1] > factors[2]
    assert factors[0] == 1.4 and factors[2] == 0.7  # clipped at the ends of the range
    small = embed_watermark(np.full((400, 400, 3), 128, np.uint8), template * 1.2 + 100)
    large = embed_watermark(np.full((1600, 1600, 3), 128, np.uint8), template * 6 + 100)
    spread = [float(np.std(m[m != 128])) for m in (small, large)]
    assert spread[0] > spread[1]  # grey levels RMS where the mark landed
