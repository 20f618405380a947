"""Pose proxies, near-duplicate search, robust centre and cutoff, contact sheet (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from ops.align import template_landmarks
from ops.contact_sheet import CAPTION_PX, MARK_RGB, contact_sheet
from ops.face_stats import (
    find_near_duplicates,
    geometric_median,
    pose_proxies,
    robust_cutoff,
    thumbnail_hashes,
    thumbnails,
)


def _rotate(points: np.ndarray, degrees: float, scale: float = 1.0) -> np.ndarray:
    angle = np.deg2rad(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points - 50) @ rotation.T * scale + [300, 200]


def test_pose_proxies_template_is_frontal_and_ignore_roll_and_scale():
    template = template_landmarks(112, 1.0).astype(np.float64)
    moved = np.stack([template, _rotate(template, 25, 2.5), _rotate(template, -40, 0.5)])
    yaw, pitch = pose_proxies(moved)
    assert np.allclose(yaw, 0, atol=0.01) and np.allclose(pitch, 0, atol=0.01)


def test_pose_proxies_signs_follow_the_nose():
    template = template_landmarks(112, 1.0).astype(np.float64)
    right, down = template.copy(), template.copy()
    right[2, 0] += 0.3 * (template[1, 0] - template[0, 0])  # nose towards the image's right
    down[2, 1] += 0.1 * (template[3:, 1].mean() - template[:2, 1].mean())  # nearer the mouth
    mirrored = (right * [-1, 1])[[1, 0, 2, 4, 3]]  # image-left eye first again
    yaw, pitch = pose_proxies(np.stack([right, mirrored, down]))
    assert yaw[0] == pytest.approx(0.3, abs=0.01)
    assert yaw[1] == pytest.approx(-0.3, abs=0.01)  # mirrored face: nose to the left
    assert pitch[2] == pytest.approx(0.1, abs=0.01) and abs(yaw[2]) < 0.01


def test_pose_proxies_collapsed_eyes_give_nan():
    yaw, pitch = pose_proxies(np.zeros((1, 5, 2)))
    assert np.isnan(yaw[0]) and np.isnan(pitch[0])


def _faces(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)


def test_thumbnails_are_small_grey_and_hashes_stable():
    thumbs = thumbnails(_faces(5, 0))
    assert thumbs.shape == (5, 16, 16) and thumbs.dtype == np.uint8
    assert np.array_equal(thumbnail_hashes(thumbs), thumbnail_hashes(thumbs.copy()))
    with pytest.raises(ValueError, match="uint8"):
        thumbnails(np.zeros((1, 8, 8), np.float32))


def test_near_duplicates_link_copies_to_the_first_face_across_groups():
    rng = np.random.default_rng(1)
    thumbs = rng.integers(0, 256, (300, 16, 16)).astype(np.uint8)  # all far apart
    thumbs[250] = np.clip(thumbs[3].astype(int) + 1, 0, 255)  # a copy, far later, other group
    thumbs[251] = thumbs[250]
    groups = np.repeat(np.arange(30), 10)
    duplicate_of = find_near_duplicates(thumbs, groups, threshold=2.0)
    assert duplicate_of[250] == 3 and duplicate_of[251] == 3
    assert (np.delete(duplicate_of, [250, 251]) == -1).all()


def test_near_duplicates_copy_of_a_duplicate_links_to_the_kept_face():
    rng = np.random.default_rng(4)
    thumbs = rng.integers(0, 256, (100, 16, 16)).astype(np.uint8)
    thumbs[1] = np.clip(thumbs[0].astype(int) + rng.integers(-2, 3, (16, 16)), 0, 255)
    thumbs[90] = thumbs[1]  # a copy, in another video, of a face that is itself a duplicate
    duplicate_of = find_near_duplicates(thumbs, np.arange(100) // 10, threshold=2.0)
    assert duplicate_of[1] == 0 and duplicate_of[90] == 0


def test_near_duplicates_follow_a_slow_drift_within_a_video():
    base = np.full((16, 16), 100, np.int16)
    thumbs = np.stack([base + step for step in range(0, 40, 1)]).astype(np.uint8)
    duplicate_of = find_near_duplicates(thumbs, np.zeros(40, int), threshold=2.5)
    kept = np.flatnonzero(duplicate_of == -1)
    assert list(kept) == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39]
    with pytest.raises(ValueError, match="threshold"):
        find_near_duplicates(thumbs, np.zeros(40, int), threshold=0)


def test_geometric_median_stays_with_the_majority():
    rng = np.random.default_rng(2)
    majority = rng.normal(0, 0.05, (70, 128))
    others = rng.normal(0, 0.05, (30, 128)) + 1.0
    centre = geometric_median(np.concatenate([majority, others]))
    assert np.linalg.norm(centre) < 0.3 * np.linalg.norm(np.ones(128))


def test_robust_cutoff_ignores_the_outliers():
    values = np.concatenate([np.linspace(0.2, 0.3, 50), [5.0, 6.0]])
    assert 0.3 < robust_cutoff(values, 4.0) < 0.5
    assert np.isnan(robust_cutoff(np.array([np.nan])))


def test_contact_sheet_grid_marks_faces_in_red():
    faces = list(_faces(5, 3))
    sheet = contact_sheet(faces, ["a", "b", "c", "d", "e"], [True] + [False] * 4, columns=3)
    assert sheet.shape == (2 * (96 + CAPTION_PX), 3 * 96, 3) and sheet.dtype == np.uint8
    assert tuple(sheet[2, 2]) == MARK_RGB  # the marked tile's frame
    assert contact_sheet([], [], []).shape == (96 + CAPTION_PX, 96, 3)
    with pytest.raises(ValueError, match="caption"):
        contact_sheet(faces, ["a"], [False])
