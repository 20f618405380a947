"""Augmentation: batched torch ops that match the cv2 geometry, deterministic per generator."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ops.align import template_landmarks
from ops.augment import AugmentConfig, augment_batch, load_face, random_affines, random_warp_flow
from ops.quality import encode_crop

STILL_COLOUR = dict(brightness=0.0, contrast=0.0, saturation=0.0)


def face_batch(astronaut, count: int = 3, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    face = cv2.resize(astronaut[0:300, 100:400], (size, size), interpolation=cv2.INTER_AREA)
    faces = torch.from_numpy(np.stack([face] * count))
    landmarks = torch.from_numpy(np.stack([template_landmarks(size).reshape(-1)] * count))
    return faces, landmarks


def test_augment_batch_is_reproducible_with_the_same_generator(astronaut):
    faces, landmarks = face_batch(astronaut)
    first = augment_batch(faces, landmarks, 1.5, torch.Generator().manual_seed(7))
    second = augment_batch(faces, landmarks, 1.5, torch.Generator().manual_seed(7))
    other = augment_batch(faces, landmarks, 1.5, torch.Generator().manual_seed(8))
    for key in first:
        assert torch.equal(first[key], second[key])
    assert not torch.equal(first["warped"], other["warped"])


def test_augment_batch_shapes_and_ranges(astronaut):
    faces, landmarks = face_batch(astronaut, count=2, size=128)
    batch = augment_batch(faces, landmarks, 1.5, torch.Generator().manual_seed(0))
    assert batch["warped"].shape == batch["target"].shape == (2, 3, 128, 128)
    assert batch["face"].shape == batch["features"].shape == (2, 1, 128, 128)
    for tensor in batch.values():
        assert tensor.dtype == torch.float32 and tensor.min() >= 0.0 and tensor.max() <= 1.0
    assert batch["face"].mean() > 0.2 and batch["features"].mean() > 0.01


def test_augment_batch_rejects_float_faces():
    with pytest.raises(ValueError, match="uint8"):
        augment_batch(torch.zeros(1, 64, 64, 3), torch.zeros(1, 10), 1.5, torch.Generator())


def test_target_is_the_cv2_affine_of_the_face(astronaut):
    """The geometry is cv2.warpAffine's: same matrix, same pixels (inside the border)."""
    faces, landmarks = face_batch(astronaut, count=4)
    cfg = AugmentConfig(warp_scale=0.0, **STILL_COLOUR)
    matrices = random_affines(4, 64, torch.Generator().manual_seed(3), cfg)
    batch = augment_batch(faces, landmarks, 1.5, torch.Generator().manual_seed(3), cfg)
    for face, matrix, target in zip(faces.numpy(), matrices.numpy(), batch["target"], strict=True):
        expected = cv2.warpAffine(face.astype(np.float32) / 255, matrix, (64, 64))
        found = target.permute(1, 2, 0).numpy()
        assert np.abs(expected - found)[8:-8, 8:-8].max() < 1e-4
    assert torch.equal(batch["warped"], batch["target"])  # no warp: input == target


def test_regions_follow_the_face_through_the_affine(astronaut):
    """Eye and mouth centres, moved by the batch's affine, land inside the feature region."""
    faces, landmarks = face_batch(astronaut, count=8)
    cfg = AugmentConfig(warp_scale=0.0, **STILL_COLOUR)
    matrices = random_affines(8, 64, torch.Generator().manual_seed(5), cfg).numpy()
    batch = augment_batch(faces, landmarks, 1.5, torch.Generator().manual_seed(5), cfg)
    points = landmarks[0].view(5, 2).numpy()
    for matrix, features, face in zip(matrices, batch["features"], batch["face"], strict=True):
        moved = points @ matrix[:, :2].T + matrix[:, 2]
        for x, y in (moved[0], moved[1], moved[3:].mean(0)):
            assert features[0, int(round(y)), int(round(x))] > 0.7
        nose = moved[2]
        assert face[0, int(round(nose[1])), int(round(nose[0]))] > 0.9


def test_random_warp_moves_pixels_as_the_cv2_warp_did():
    """Same magnitude as the cv2 jittered grid (5 x 5 control points, bicubic) it replaces."""
    cfg = AugmentConfig()
    flow = random_warp_flow(400, 64, torch.Generator().manual_seed(0), cfg)
    found = torch.linalg.vector_norm(flow, dim=-1).mean().item()
    rng = np.random.default_rng(0)
    reference = []
    for _ in range(400):
        jitter = rng.normal(scale=cfg.warp_scale * 64, size=(2, 5, 5)).astype(np.float32)
        dx, dy = (cv2.resize(j, (64, 64), interpolation=cv2.INTER_CUBIC) for j in jitter)
        reference.append(np.hypot(dx, dy).mean())
    assert 0.9 < found / float(np.mean(reference)) < 1.1
    assert 1.0 < found < 3.0  # a few percent of the 64 px side


def test_random_affine_without_jitter_is_a_flip_or_identity():
    still = AugmentConfig(rotation_deg=0, scale=0, shift=0, flip=1.0)
    matrix = random_affines(1, 64, torch.Generator().manual_seed(0), still)[0]
    assert torch.allclose(matrix, torch.tensor([[-1.0, 0, 64], [0, 1, 0]]), atol=1e-5)


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


def test_load_face_zoom_is_the_crop_align_face_makes_at_the_smaller_coverage():
    """The model's own coverage: a centre region of extract's crop, landmarks mapped."""
    from ops.align import align_face, transform_points
    from ops.quality import encode_crop
    from ops.samples import portrait
    from tests.pipelines.faces_data import PORTRAIT_LANDMARKS

    frame = portrait("a")
    landmarks = np.asarray(PORTRAIT_LANDMARKS["a"], np.float32)
    crop, affine = align_face(frame, landmarks, 128, 1.5)
    face, points = load_face(encode_crop(crop, "png"), landmarks, affine, 64, zoom=1.5 / 1.1)
    want, want_affine = align_face(frame, landmarks, 64, 1.1)
    assert np.abs(points - transform_points(landmarks, want_affine)).max() < 1e-3
    assert np.abs(face.astype(int) - want.astype(int)).mean() < 6.0  # resampled once more
    wider, _ = align_face(frame, landmarks, 64, 1.5)
    assert np.abs(face.astype(int) - wider.astype(int)).mean() > 15.0  # not the full crop
    with pytest.raises(ValueError, match="zoom must be >= 1"):
        load_face(encode_crop(crop, "png"), landmarks, affine, 64, zoom=0.5)
