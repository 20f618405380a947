"""Blending: masks, colour matching and paste-back through the inverse affine."""

from __future__ import annotations

import numpy as np
import pytest

from ops.align import estimate_affine, template_landmarks, warp_face
from ops.blend import (
    COLOR_CHOICES,
    blend_mask,
    match_color,
    paste_back,
    template_oval,
    warp_to_frame,
)
from ops.label import draw_label
from ops.smooth import smooth_faces
from ops.types import Detection

LANDMARKS = np.array([[90, 100], [150, 100], [120, 135], [95, 165], [145, 165]], np.float32)


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (240, 256, 3), dtype=np.uint8)


def test_template_oval_covers_landmarks_and_stays_inside_crop() -> None:
    oval = template_oval(64, 1.5)
    points = template_landmarks(64, 1.5).round().astype(int)
    assert all(oval[y, x] == 1.0 for x, y in points)
    assert oval[0].max() == 0 and oval[-1].max() == 0 and oval[:, 0].max() == 0


def test_blend_mask_is_learned_mask_within_oval_eroded_and_feathered() -> None:
    oval = template_oval(64, 1.5)
    learned = np.ones((64, 64), np.float32)
    learned[:, :32] = 0.0  # the model masks out the left half
    mask = blend_mask(learned, oval, erode=0.05, feather=0.03)
    assert mask.dtype == np.float32 and 0.0 <= mask.min() and mask.max() <= 1.0
    assert mask[:, :28].max() == 0.0  # intersection, then erosion
    assert mask.sum() < (learned * oval).sum()
    assert 0.0 < mask[32, 33] < 1.0  # feathered edge


def test_paste_back_zero_mask_leaves_frame_unchanged() -> None:
    frame = _frame()
    affine = estimate_affine(LANDMARKS, 64, 1.5)
    crop = np.zeros((64, 64, 3), np.uint8)
    out = paste_back(frame, crop, np.zeros((64, 64), np.float32), affine)
    assert np.array_equal(out, frame)


def test_paste_back_full_mask_recovers_the_warped_crop() -> None:
    frame = _frame()
    affine = estimate_affine(LANDMARKS, 128, 1.5)
    crop = warp_face(frame, affine, 128)
    flat = np.full_like(crop, 77)
    out = paste_back(frame, flat, template_oval(128, 1.5), affine)
    x, y = LANDMARKS[2].astype(int)
    assert (out[y, x] == 77).all()  # inside the face
    assert np.array_equal(out[:, :40], frame[:, :40])  # far from it: untouched


def test_warp_to_frame_places_the_crop_at_its_frame_position() -> None:
    crop = _frame()[:64, :64]
    affine = np.array([[1, 0, -10], [0, 1, -20]], np.float32)  # crop px = frame px - (10, 20)
    assert np.array_equal(warp_to_frame(crop, affine, (10, 20, 74, 84)), crop)
    assert np.array_equal(warp_to_frame(crop, affine, (12, 25, 30, 40)), crop[5:20, 2:20])
    outside = warp_to_frame(crop[..., 0].astype(np.float32), affine, (70, 80, 80, 90))
    assert outside.shape == (10, 10) and outside[5:, 5:].max() == 0.0  # constant border: 0


def test_match_color_lab_and_hist_move_statistics_towards_reference() -> None:
    rng = np.random.default_rng(1)
    src = rng.integers(20, 90, (64, 64, 3), dtype=np.uint8)
    ref = rng.integers(140, 230, (64, 64, 3), dtype=np.uint8)
    weight = template_oval(64, 1.5)
    for method in ("lab", "hist"):
        out = match_color(src, ref, weight, method)
        assert abs(out.mean() - ref.mean()) < 0.25 * abs(src.mean() - ref.mean())
    assert np.array_equal(match_color(src, ref, weight, "none"), src)
    for method in COLOR_CHOICES:
        assert match_color(src, ref, weight, method).shape == src.shape
    with pytest.raises(ValueError, match="color method"):
        match_color(src, ref, weight, "rgb")


def test_smooth_faces_averages_jitter_and_drops_one_frame_detections() -> None:
    rng = np.random.default_rng(2)
    window = []
    for _ in range(7):
        noisy = LANDMARKS + rng.normal(0, 2.0, LANDMARKS.shape).astype(np.float32)
        window.append([Detection(np.zeros(4, np.float32), noisy, 0.9)])
    flash = Detection(np.zeros(4, np.float32), LANDMARKS + 150, 0.9)  # elsewhere, one frame
    window[3] = window[3] + [flash]
    kept = smooth_faces(window, 3, radius=3, min_support=1)
    assert len(kept) == 1
    raw_error = np.abs(window[3][0].landmarks - LANDMARKS).mean()
    assert np.abs(kept[0][1] - LANDMARKS).mean() < raw_error


def test_draw_label_changes_only_the_corner() -> None:
    frame = np.full((360, 640, 3), 128, np.uint8)
    out = draw_label(frame)
    changed = np.argwhere((out != frame).any(-1))
    assert len(changed) > 0
    assert changed[:, 0].min() > 360 * 0.75 and changed[:, 1].max() < 640 * 0.5
