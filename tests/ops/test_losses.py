"""Losses and one train step: masks in the right place, SSIM sanity, loss goes down."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ops.align import template_landmarks
from ops.augment import augment_batch
from ops.losses import (
    DFL_WEIGHTS,
    dfl_swap_loss,
    dssim_windows,
    face_region_mask,
    feature_regions,
    masked_ssim_l1,
    multi_window_dssim,
    side_loss,
    ssim_map,
)
from ops.model import ModelConfig, SwapAutoencoder
from ops.train_step import make_optimizer, train_step


def test_face_region_mask_covers_the_template_landmarks():
    mask = face_region_mask(64, 1.5)
    for x, y in template_landmarks(64, 1.5):
        assert mask[int(y), int(x)] > 0.9
    assert mask[0, 0] == 0 and mask[63, 63] == 0
    assert face_region_mask(64, 1.0).sum() > mask.sum()  # tighter crop, larger face


def _drawn_ellipse(size, centre, axes, angle_deg, sigma):
    """The region as cv2 draws it: a filled anti-aliased ellipse, Gaussian-blurred."""
    canvas = np.zeros((size, size), np.float32)
    scale = 16
    cv2.ellipse(
        canvas,
        tuple(int(round(v * scale)) for v in centre),
        tuple(int(round(v * scale)) for v in axes),
        angle_deg,
        0,
        360,
        1.0,
        -1,
        cv2.LINE_AA,
        4,
    )
    return cv2.GaussianBlur(canvas, (0, 0), sigma)


def test_feature_regions_marks_eyes_and_mouth_not_the_cheeks():
    points = template_landmarks(128)
    mask = feature_regions(torch.from_numpy(points.reshape(1, 10)), 128)[0, 0].numpy()
    eye, mouth = points[0], points[3:].mean(0)
    assert mask[int(eye[1]), int(eye[0])] > 0.8 and mask[int(mouth[1]), int(mouth[0])] > 0.8
    cheek = (points[0] + points[3]) / 2 - [10, 0]
    assert mask[int(cheek[1]), int(cheek[0])] < 0.1


def test_feature_regions_match_blurred_drawn_ellipses():
    """The analytic soft ellipses equal cv2's drawn + blurred ones (a tilted face)."""
    points = template_landmarks(128).astype(np.float64)
    centre = points.mean(0)
    turn = np.radians(12.0)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    points = (points - centre) @ rotation.T + centre
    found = feature_regions(torch.from_numpy(points.reshape(1, 10)).float(), 128)[0, 0].numpy()
    d = np.linalg.norm(points[1] - points[0])
    angle = np.degrees(np.arctan2(*(points[1] - points[0])[::-1]))
    corners = points[3:]
    mouth_angle = np.degrees(np.arctan2(*(corners[1] - corners[0])[::-1]))
    mouth_axes = (0.5 * np.linalg.norm(corners[1] - corners[0]) + 0.2 * d, 0.3 * d)
    drawn = [_drawn_ellipse(128, p, (0.35 * d, 0.22 * d), angle, 0.06 * d) for p in points[:2]]
    drawn.append(_drawn_ellipse(128, corners.mean(0), mouth_axes, mouth_angle, 0.06 * d))
    expected = np.maximum.reduce(drawn)
    assert np.abs(found - expected).mean() < 0.01
    inside, expected_inside = found > 0.5, expected > 0.5
    overlap = (inside & expected_inside).sum() / (inside | expected_inside).sum()
    assert overlap > 0.9  # curvature makes the blurred drawing a little smaller


def test_feature_regions_of_degenerate_landmarks_are_empty():
    points = torch.zeros(2, 10)
    points[1] = float("nan")
    assert feature_regions(points, 64).abs().sum() == 0


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
    faces = torch.randint(0, 255, (4, 64, 64, 3), dtype=torch.uint8)
    landmarks = torch.from_numpy(np.stack([template_landmarks(64).reshape(-1)] * 4))
    batch = augment_batch(faces, landmarks, 1.5, torch.Generator().manual_seed(0))
    model = SwapAutoencoder(ModelConfig(resolution=64, width=8, latent_dim=32))
    optimizer = make_optimizer(model, 1e-3)
    losses = [train_step(model, optimizer, batch, batch)[0].item() for _ in range(20)]
    assert losses[-1] < 0.8 * losses[0]


def test_dssim_windows_scale_with_the_resolution_and_stay_odd():
    assert dssim_windows(64) == (5, 3) and dssim_windows(128) == (11, 5)
    assert dssim_windows(256) == (23, 11)
    assert all(w % 2 == 1 for r in (64, 128, 256) for w in dssim_windows(r))


def test_two_window_dssim_is_zero_for_equal_images_and_grows_with_noise():
    generator = torch.Generator().manual_seed(0)
    target = F.avg_pool2d(torch.rand(2, 3, 68, 68, generator=generator), 5, 1)  # (2, 3, 64, 64)
    weight = torch.ones(2, 1, 64, 64)
    windows = dssim_windows(64)
    assert float(multi_window_dssim(target, target, weight, windows)) == pytest.approx(0, abs=1e-6)
    noise = torch.randn(target.shape, generator=generator)
    losses = [
        float(multi_window_dssim((target + s * noise).clamp(0, 1), target, weight, windows))
        for s in (0.01, 0.05, 0.2)
    ]
    assert 0 < losses[0] < losses[1] < losses[2] <= 1
    fine, coarse = (
        float(multi_window_dssim(target + 0.05 * noise, target, weight, (w,))) for w in windows
    )
    assert losses[1] == pytest.approx((fine + coarse) / 2, rel=1e-3)


DEFAULT_EYES = DFL_WEIGHTS["eye_mouth"]


def test_dfl_swap_loss_is_zero_for_a_perfect_reconstruction_and_weighs_the_eyes():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 64, 64)
    face = torch.from_numpy(face_region_mask(64, 1.5).copy()).expand(2, 1, 64, 64)
    landmarks = torch.from_numpy(np.stack([template_landmarks(64).reshape(-1)] * 2))
    features = feature_regions(landmarks, 64)
    assert float(dfl_swap_loss(target, face, target, face, features)) == pytest.approx(0, abs=1e-5)
    off = torch.zeros_like(target)
    off[:, :, 40:, :] = 0.2  # the same error in the lower half (mouth) ...
    in_mouth = float(dfl_swap_loss(target + off, face, target, face, features))
    no_regions = float(dfl_swap_loss(target + off, face, target, face, torch.zeros_like(features)))
    assert in_mouth > no_regions > 0  # ... costs more where the mouth region is
    assert float(side_loss("dfl", target + off, face, target, face, features)) == in_mouth
    # the eye and mouth term alone grows with its weight: three times the default, three
    # times that term
    regions = in_mouth - no_regions
    tripled = side_loss("dfl", target + off, face, target, face, features, 3 * DEFAULT_EYES)
    assert float(tripled) - no_regions == pytest.approx(3 * regions, rel=1e-4)
    with pytest.raises(ValueError, match="loss must be one of"):
        side_loss("l2", target, face, target, face, features)
