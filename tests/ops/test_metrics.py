"""Swap metrics on made-up landmarks and frames: no Ray, no embedder, no media."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ops import metrics, schema
from ops.align import align_face
from ops.blend import blend_mask, paste_back, template_oval
from ops.types import Detection

FACE = np.array([[100, 100], [140, 100], [120, 125], [105, 150], [135, 150]], np.float32)


def _walk(frames: int, seed: int = 0, noise: float = 0.0) -> np.ndarray:
    """(frames, 5, 2) landmarks of a face moving smoothly, plus Gaussian noise in px."""
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    path = FACE[None] + np.concatenate([10 * np.sin(t / 8), 4 * np.cos(t / 11)], axis=2)
    return path + np.random.default_rng(seed).normal(0, noise, path.shape)


def test_pose_errors_are_in_eye_distances() -> None:
    assert metrics.pose_errors(FACE[None], FACE[None])[0] == pytest.approx(0.0)
    shifted = FACE + np.array([4.0, 0.0], np.float32)  # 4 px = 0.1 of the 40 px eye distance
    assert metrics.pose_errors(shifted[None], FACE[None])[0] == pytest.approx(0.1)
    assert metrics.inter_ocular_px(FACE.reshape(1, 10))[0] == pytest.approx(40.0)


def test_shape_errors_ignore_where_and_how_large_the_face_is_drawn() -> None:
    turn = np.deg2rad(7.0)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    placed = (0.9 * (FACE - FACE.mean(0)) @ rotation.T + FACE.mean(0) + [6.0, -3.0])[None]
    assert metrics.pose_errors(placed, FACE[None])[0] > 0.1  # moved, smaller, turned...
    assert metrics.shape_errors(placed, FACE[None])[0] == pytest.approx(0.0, abs=1e-6)
    opened = FACE.copy()
    opened[3:, 1] += 4.0  # the mouth 0.1 eye distances lower: another expression
    moved = opened + [5.0, 5.0]
    shape = metrics.shape_errors(np.stack([opened, moved]), np.stack([FACE, FACE]))
    assert shape[0] == pytest.approx(shape[1]) and 0.02 < shape[0] < 0.1  # wherever drawn


def test_landmark_motion_is_one_for_a_faithful_copy_and_grows_with_shake() -> None:
    source = _walk(40, noise=0.3)
    frames = np.arange(40)
    jitter, motion = metrics.landmark_motion(source, source, frames)
    assert jitter == pytest.approx(1.0) and motion == pytest.approx(1.0)
    shaky = source + np.random.default_rng(1).normal(0, 1.5, source.shape)
    jitter, motion = metrics.landmark_motion(shaky, source, frames)
    assert jitter > 2.0 and motion > 1.0 and jitter > motion  # acceleration sees shake first
    steady = _walk(40)  # the same motion without the source's detector noise
    assert metrics.landmark_motion(steady, source, frames)[0] < 0.5


def test_landmark_motion_only_differences_consecutive_frames() -> None:
    source = _walk(6)
    output = source.copy()
    output[3:] += 50.0  # a jump across a gap in the frames is not motion
    frames = np.array([0, 1, 2, 10, 11, 12])
    assert metrics.landmark_motion(output, source, frames) == pytest.approx((1.0, 1.0))
    assert all(math.isnan(v) for v in metrics.landmark_motion(source[:1], source[:1], [0]))


def test_seam_rings_lie_either_side_of_the_pasted_region() -> None:
    rings = metrics.seam_rings(1.5, 0.03, 0.05, size=128)
    mask = blend_mask(None, template_oval(128, 1.5), 0.03, 0.05)
    assert rings.inner.sum() > 100 and rings.outer.sum() > 100
    assert not (rings.inner & rings.outer).any()
    assert (mask[rings.inner] >= 0.95).all() and (mask[rings.outer] == 0).all()


def _face_frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.full((240, 240, 3), (90, 110, 130), np.uint8)
    frame[60:200, 70:170] = (200, 150, 120)  # a skin-coloured block around the face
    return np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)


def test_seam_delta_e_is_zero_untouched_and_large_for_a_tinted_paste() -> None:
    rings = metrics.seam_rings()
    frame = _face_frame()
    assert metrics.seam_delta_e(frame, frame, FACE, rings) == pytest.approx(0.0)
    crop, affine = align_face(frame, FACE, 128, 1.5)
    mask = blend_mask(None, template_oval(128, 1.5), 0.03, 0.05)
    tinted = np.clip(crop.astype(np.int16) + (40, -20, -20), 0, 255).astype(np.uint8)
    pasted = paste_back(frame, tinted, mask, affine)
    same = paste_back(frame, crop, mask, affine)  # pasting the face back as it was
    assert metrics.seam_delta_e(frame, pasted, FACE, rings) > 10.0
    assert metrics.seam_delta_e(frame, same, FACE, rings) < 1.0
    corner = FACE - 100.0  # rings mostly outside the frame: undefined
    assert math.isnan(metrics.seam_delta_e(frame, frame, corner, rings))


def _frame_table(distance_a: list, distance_b: list, faces: list[bool]) -> object:
    records = []
    for index, (d_a, d_b, face) in enumerate(zip(distance_a, distance_b, faces, strict=True)):
        face = bool(face)
        record = {schema.VIDEO: "v", schema.FRAME: index, metrics.SOURCE_FACE: face}
        record[metrics.OUTPUT_FACE] = face
        if face:
            points = (FACE + index).reshape(-1).tolist()
            record |= {metrics.LANDMARKS_SOURCE: points, metrics.LANDMARKS_OUTPUT: points}
            record |= {metrics.DISTANCE_A: d_a, metrics.DISTANCE_B: d_b}
            record |= {metrics.POSE_ERROR: 0.0, metrics.SEAM: 1.0}
        records.append(record)
    return metrics.frames_table(records[::-1])  # any order: summaries sort by frame


def test_summarize_frames_follows_the_direction() -> None:
    table = _frame_table([0.6, 0.6, 0.3, 0.6, 0.0], [0.3, 0.4, 0.5, 0.3, 0.0], [1, 1, 1, 1, 0])
    a2b = metrics.summarize_frames(table, "a2b")
    assert a2b[metrics.SWAPPED_FRAMES] == 4 and a2b[schema.FRAMES] == 5
    assert a2b[metrics.ID_RETRIEVAL] == pytest.approx(0.75)  # 3 of 4 nearer B
    assert a2b[metrics.ID_MARGIN] == pytest.approx((0.3 + 0.2 - 0.2 + 0.3) / 4)
    b2a = metrics.summarize_frames(table, "b2a")
    assert b2a[metrics.ID_RETRIEVAL] == pytest.approx(0.25)
    assert b2a[metrics.ID_MARGIN] == pytest.approx(-a2b[metrics.ID_MARGIN])
    assert a2b[metrics.JITTER] is None  # the source moves at constant speed: no acceleration
    assert a2b[metrics.MOTION] == pytest.approx(1.0)
    empty = metrics.summarize_frames(metrics.frames_table([]), "a2b")
    assert empty[metrics.ID_RETRIEVAL] is None and empty[schema.FRAMES] == 0


class _FakeEmbedder:
    """Embeds a face as its mean colour around the nose (enough to tell two tints apart)."""

    def embed_frame(self, frame, landmarks_frame):
        x, y = np.asarray(landmarks_frame)[2].round().astype(int)
        return frame[y - 5 : y + 5, x - 5 : x + 5].reshape(-1, 3).mean(0).astype(np.float32)


def _distances(embeddings: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    return np.linalg.norm(embeddings[:, None] - gallery[None], axis=2).min(1)


def test_swap_scorer_records_every_frame() -> None:
    source = _face_frame()
    output = source.copy()
    output[110:140, 105:135] = (60, 60, 200)  # the "target" colour where the nose is
    gallery_a = np.array([[200, 150, 120]], np.float32)
    gallery_b = np.array([[60, 60, 200]], np.float32)
    moved = Detection(np.zeros(4, np.float32), FACE + 2.0, 0.99)

    def detect(frames):
        return [[moved] for _ in frames[:-1]] + [[]]  # no face found on the last output

    scorer = metrics.SwapScorer(
        detect, _FakeEmbedder(), gallery_a, gallery_b, metrics.seam_rings(), _distances
    )
    items = [(0, source, FACE, output), (1, source, None, source), (2, source, FACE, output)]
    records = scorer.score(items, "clip.mp4")
    assert [r[metrics.SOURCE_FACE] for r in records] == [True, False, True]
    assert [r[metrics.OUTPUT_FACE] for r in records] == [True, False, False]
    first, _, last = records
    assert first[metrics.DISTANCE_B] < first[metrics.DISTANCE_A]  # looks like B
    assert first[metrics.POSE_ERROR] == pytest.approx(2.0 * math.sqrt(2) / 40.0, rel=1e-4)
    assert last[metrics.POSE_ERROR] is None and last[metrics.LANDMARKS_OUTPUT] is None
    assert last[metrics.DISTANCE_B] < last[metrics.DISTANCE_A]  # embedded at the source's face
    table = metrics.frames_table(records)
    assert table.num_rows == 3
    assert metrics.read_table_bytes(metrics.table_bytes(table)).equals(table)
