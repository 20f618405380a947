"""Losses and one train step: masks in the right place, SSIM sanity, loss goes down."""

from __future__ import annotations

import numpy as np
import torch

from ops.align import template_landmarks
from ops.augment import augment_batch
from ops.losses import face_region_mask, feature_mask, masked_ssim_l1, ssim_map
from ops.model import ModelConfig, SwapAutoencoder
from ops.train_step import make_optimizer, train_step


def test_face_region_mask_covers_the_template_landmarks():
    mask = face_region_mask(64, 1.5)
    for x, y in template_landmarks(64, 1.5):
        assert mask[int(y), int(x)] > 0.9
    assert mask[0, 0] == 0 and mask[63, 63] == 0
    assert face_region_mask(64, 1.0).sum() > mask.sum()  # tighter crop, larger face


def test_feature_mask_marks_eyes_and_mouth_not_the_cheeks():
    points = template_landmarks(128)
    mask = feature_mask(points, 128)
    eye, mouth = points[0], points[3:].mean(0)
    assert mask[int(eye[1]), int(eye[0])] > 0.8 and mask[int(mouth[1]), int(mouth[0])] > 0.8
    cheek = (points[0] + points[3]) / 2 - [10, 0]
    assert mask[int(cheek[1]), int(cheek[0])] < 0.1


def test_ssim_is_one_for_equal_images_and_lower_for_noise():
    image = torch.rand(1, 3, 32, 32)
    assert torch.allclose(ssim_map(image, image), torch.ones(1, 1, 32, 32), atol=1e-4)
    weight = torch.ones(1, 1, 32, 32)
    assert masked_ssim_l1(image, image, weight) < 1e-4
    assert masked_ssim_l1(image, torch.rand(1, 3, 32, 32), weight) > 0.1


def test_masked_loss_ignores_pixels_with_zero_weight():
    target = torch.rand(1, 3, 32, 32)
    pred = target.clone()
    pred[..., :16] = 0.0  # wrong on the left half only
    weight = torch.zeros(1, 1, 32, 32)
    weight[..., 20:] = 1.0
    assert masked_ssim_l1(pred, target, weight) < 1e-3


def test_twenty_train_steps_on_a_fixed_batch_lower_the_loss():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 255, size=(4, 64, 64, 3), dtype=np.uint8)
    landmarks = np.stack([template_landmarks(64).reshape(-1)] * 4)
    arrays = augment_batch(faces, landmarks, np.full(4, 1.5), rng)
    batch = {key: torch.from_numpy(value) for key, value in arrays.items()}
    model = SwapAutoencoder(ModelConfig(resolution=64, width=8, latent_dim=32))
    optimizer = make_optimizer(model, 1e-3)
    losses = [train_step(model, optimizer, batch, batch)["loss"] for _ in range(20)]
    assert losses[-1] < 0.8 * losses[0]
