import numpy as np
import pytest

from ops.align import (
    align_face,
    estimate_affine,
    invert_affine,
    template_landmarks,
    transform_points,
    umeyama,
)


def _landmarks_in_frame(rng: np.random.Generator) -> np.ndarray:
    """Template points moved by a random similarity, plus sub-pixel noise."""
    angle = rng.uniform(-0.6, 0.6)
    scale = rng.uniform(0.5, 3.0)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    base = template_landmarks(256, 1.5)
    return (base @ rotation.T + rng.uniform(50, 400, size=2)).astype(np.float32)


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rotation.T + shift
    matrix = umeyama(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_estimate_affine_maps_landmarks_onto_template():
    rng = np.random.default_rng(1)
    landmarks_frame = _landmarks_in_frame(rng)
    affine = estimate_affine(landmarks_frame, 128, 1.5)
    landmarks_crop = transform_points(landmarks_frame, affine)
    assert np.abs(landmarks_crop - template_landmarks(128, 1.5)).max() < 1e-3


def test_warp_face_inverse_recovers_landmarks_within_one_pixel():
    rng = np.random.default_rng(2)
    for _ in range(20):
        landmarks_frame = _landmarks_in_frame(rng) + rng.normal(0, 2.0, size=(5, 2))
        affine = estimate_affine(landmarks_frame, 256, 1.5)
        round_trip = transform_points(
            transform_points(landmarks_frame, affine), invert_affine(affine)
        )
        assert np.abs(round_trip - landmarks_frame).max() < 1.0


def test_align_face_round_trip_puts_pixels_back():
    frame = np.zeros((400, 400, 3), np.uint8)
    frame[180:220, 150:170] = 255  # a bright patch near the face
    landmarks_frame = template_landmarks(256, 1.5) * 0.9 + 40
    crop, affine = align_face(frame, landmarks_frame, 256, 1.5)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    patch_crop = transform_points(np.array([[160.0, 200.0]]), affine)[0]
    x, y = np.round(patch_crop).astype(int)
    assert crop[y, x].min() == 255


@pytest.mark.parametrize("size", [16, 2048])
def test_template_landmarks_rejects_bad_size(size):
    with pytest.raises(ValueError, match="size"):
        template_landmarks(size)


def test_estimate_affine_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        estimate_affine(np.zeros((4, 2)), 128)
