"""Augmentation: deterministic with a seeded generator, shapes, ranges, geometry."""

from __future__ import annotations

import numpy as np
import pytest

from ops.align import template_landmarks
from ops.augment import (
    AugmentConfig,
    augment_batch,
    load_face,
    random_affine,
    random_warp_maps,
)
from ops.quality import encode_crop


def face_batch(count: int = 3, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, size=(count, size, size, 3), dtype=np.uint8)
    landmarks = np.stack([template_landmarks(size).reshape(-1)] * count)
    return faces, landmarks, np.full(count, 1.5, np.float32)


def test_augment_batch_is_reproducible_with_the_same_generator():
    faces, landmarks, coverage = face_batch()
    first = augment_batch(faces, landmarks, coverage, np.random.default_rng(7))
    second = augment_batch(faces, landmarks, coverage, np.random.default_rng(7))
    other = augment_batch(faces, landmarks, coverage, np.random.default_rng(8))
    for key in first:
        assert np.array_equal(first[key], second[key])
    assert not np.array_equal(first["warped"], other["warped"])


def test_augment_batch_shapes_and_ranges():
    faces, landmarks, coverage = face_batch(count=2, size=128)
    batch = augment_batch(faces, landmarks, coverage, np.random.default_rng(0))
    assert batch["warped"].shape == batch["target"].shape == (2, 3, 128, 128)
    assert batch["face"].shape == batch["features"].shape == (2, 1, 128, 128)
    for array in batch.values():
        assert array.dtype == np.float32 and array.min() >= 0.0 and array.max() <= 1.0
    assert batch["face"].mean() > 0.2 and batch["features"].mean() > 0.01


def test_random_warp_moves_pixels_by_a_few_percent():
    map_x, map_y = random_warp_maps(64, np.random.default_rng(0), AugmentConfig())
    displacement = np.hypot(map_x - np.arange(64)[None, :], map_y - np.arange(64)[:, None])
    assert 0.2 < displacement.mean() < 4.0


def test_random_affine_without_jitter_is_a_flip_or_identity():
    still = AugmentConfig(rotation_deg=0, scale=0, shift=0, flip=1.0)
    matrix = random_affine(64, np.random.default_rng(0), still)
    assert np.allclose(matrix, [[-1, 0, 64], [0, 1, 0]], atol=1e-5)


def test_load_face_maps_frame_landmarks_into_the_resized_crop():
    landmarks_crop_128 = template_landmarks(128)
    affine = np.array([[0.5, 0, 10], [0, 0.5, 20]], np.float32)  # frame -> crop
    landmarks_frame = (landmarks_crop_128 - affine[:, 2]) / 0.5
    crop = np.zeros((128, 128, 3), np.uint8)
    face, landmarks = load_face(encode_crop(crop, "png"), landmarks_frame, affine, 64)
    assert face.shape == (64, 64, 3)
    assert np.allclose(landmarks, landmarks_crop_128 / 2, atol=1e-3)
    with pytest.raises(ValueError):
        load_face(b"junk", landmarks_frame, affine, 64)
