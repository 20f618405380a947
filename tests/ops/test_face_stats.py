"""Pose proxies, near-duplicate search, robust centre and cutoff, contact sheet (no Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from ops.align import template_landmarks
from ops.contact_sheet import CAPTION_PX, MARK_RGB, contact_sheet
from ops.face_stats import (
    classify_yaw,
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


def _turned_head(degrees: float) -> np.ndarray:
    """The template's 5 points on a rigid head turned by `degrees`, seen from the front.

    Depths in eye distances, from the 6-point head-pose model used with cv2.solvePnP: the
    nose tip 0.43 in front of the eyes, the mouth corners 0.03.
    """
    template = template_landmarks(112, 1.0).astype(np.float64)
    eye_distance = template[1, 0] - template[0, 0]
    depth = np.array([0.0, 0.0, 0.43, 0.03, 0.03]) * eye_distance
    centred = template - template[:2].mean(0)
    angle = np.deg2rad(degrees)
    x = centred[:, 0] * np.cos(angle) + depth * np.sin(angle)
    return np.stack([x, centred[:, 1]], axis=1) + 56


def _nose_moved(fraction: float) -> np.ndarray:
    """The template with its nose moved sideways by `fraction` of the eye distance."""
    template = template_landmarks(112, 1.0).astype(np.float64)
    template[2, 0] += fraction * (template[1, 0] - template[0, 0])
    return template


def test_classify_yaw_a_frontal_face_is_frontal():
    # the template, a frontal news anchor (0.12), a face looking at the camera from the
    # side of a wide frame (0.18), a head turned 10 degrees, and the same mirrored
    faces = [template_landmarks(112, 1.0), _nose_moved(0.12), _nose_moved(0.18), _turned_head(10)]
    faces.append(_nose_moved(-0.12))
    yaw, _ = pose_proxies(np.stack(faces))
    assert yaw[1] == pytest.approx(0.12, abs=0.01) and yaw[4] == pytest.approx(-0.12, abs=0.01)
    assert list(classify_yaw(yaw)) == ["frontal"] * 5


def test_classify_yaw_turned_faces_are_turned_strong_or_profile():
    faces = [_turned_head(30), _turned_head(-30), _turned_head(45), _turned_head(65)]
    faces += [_nose_moved(0.25), _nose_moved(0.8)]
    yaw, _ = pose_proxies(np.stack(faces))
    assert yaw[0] > 0 > yaw[1]  # turned to their left: the nose points to the image's right
    classes = ["turned", "turned", "strong", "profile", "turned", "profile"]
    assert list(classify_yaw(yaw)) == classes
    assert list(classify_yaw(np.array([np.nan, 0.2, 0.35, 0.6]))) == [
        "",
        "turned",
        "strong",
        "profile",
    ]


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
