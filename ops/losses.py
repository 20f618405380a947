"""Training losses: SSIM + L1 inside the face region, with extra weight on eyes and mouth.

Two losses per side, chosen by `rayswap train --loss` (`LOSSES`):
- classic (`swap_loss`): DSSIM (one 11 px window) + L1, weighted towards the face, the eyes
  and the mouth, plus L1 of the mask;
- dfl (`dfl_swap_loss`): the DeepFaceLab recipe, DSSIM at two windows scaled to the
  resolution + MSE inside the face, L1 on the eye and mouth regions with a high weight,
  plus MSE of the mask.

There are only 5 landmarks, so there is no 68-point hull to mask with. After alignment the
face sits in a known place, so the face region is a template oval in crop space (placed
from the canonical landmarks of `ops.align.template_landmarks`), and the eye and mouth
regions are small ellipses placed from each face's own 5 points, mapped into crop space.
Regions are float32 maps in [0, 1] with soft (blurred) edges; the eye and mouth regions
are computed in torch for a whole batch, on the batch's device.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ops.align import template_landmarks

# Oval of the face relative to the eye distance d of the template (fit by eye on the
# 112 px recognition layout: brows to chin, cheek to cheek).
OVAL_CENTRE_FRACTION = 0.4  # from the eye midpoint towards the mouth midpoint
OVAL_AXES_D = (1.2, 1.45)  # semi-axes (x, y) in units of d
LOSSES = ("classic", "dfl")
# dfl: DeepFaceLab's weights (10 DSSIM split over the windows, 10 MSE, 300 eye/mouth L1,
# 10 mask MSE) divided by 10, so the losses read on the classic loss's scale
DFL_WEIGHTS = {"dssim": 1.0, "mse": 1.0, "eye_mouth": 30.0, "mask": 1.0}
DSSIM_WINDOW_DIVISORS = (11.6, 23.2)  # windows of R / 11.6 and R / 23.2 px, rounded to odd


def _ellipse(
    size: int, centre: np.ndarray, axes: tuple[float, float], angle_deg: float
) -> np.ndarray:
    canvas = np.zeros((size, size), np.float32)
    shift = 4  # cv2 draws with sub-pixel precision in fixed point
    cv2.ellipse(
        canvas,
        tuple(int(round(v * 2**shift)) for v in centre),
        tuple(max(1, int(round(v * 2**shift))) for v in axes),
        angle_deg,
        0,
        360,
        1.0,
        -1,
        cv2.LINE_AA,
        shift,
    )
    return canvas


def _soften(region: np.ndarray, sigma_px: float) -> np.ndarray:
    return cv2.GaussianBlur(region, (0, 0), max(sigma_px, 0.5))


@functools.lru_cache(maxsize=16)
def face_region_mask(size: int, coverage: float = 1.5) -> np.ndarray:
    """The template face oval of a `size` crop aligned with `coverage`, (size, size) float32."""
    points = template_landmarks(size, coverage).astype(np.float64)
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    d = float(np.linalg.norm(points[1] - points[0]))
    centre = eyes + OVAL_CENTRE_FRACTION * (mouth - eyes)
    oval = _ellipse(size, centre, (OVAL_AXES_D[0] * d, OVAL_AXES_D[1] * d), 0.0)
    region = _soften(oval, 0.08 * d)
    region.setflags(write=False)  # cached: shared by every caller
    return region


def _soft_ellipses(
    size: int, centres: torch.Tensor, axes: torch.Tensor, angles: torch.Tensor, sigma: torch.Tensor
) -> torch.Tensor:
    """Filled ellipses with Gaussian-blurred edges, one per row, (N, R, R) float32.

    centres (N, 2) and axes (N, 2) in pixels, angles (N,) radians, sigma (N,) edge blur px.
    The edge profile is that of a hard ellipse blurred with `sigma`: Phi(distance / sigma),
    the distance to the boundary measured along the ray from the centre.
    """
    coords = torch.arange(size, dtype=torch.float32, device=centres.device)
    dx = coords[None, None, :] - centres[:, 0, None, None]  # (N, 1, R)
    dy = coords[None, :, None] - centres[:, 1, None, None]  # (N, R, 1)
    cos, sin = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos  # ellipse frame, (N, R, R)
    a, b = axes[:, 0, None, None], axes[:, 1, None, None]
    radius = torch.sqrt((u / a) ** 2 + (v / b) ** 2)  # 1 on the boundary
    length = torch.sqrt(u**2 + v**2)
    boundary = torch.where(radius > 1e-6, length / radius.clamp_min(1e-6), torch.minimum(a, b))
    distance = boundary * (1.0 - radius)
    return 0.5 * (1.0 + torch.erf(distance / (sigma[:, None, None] * math.sqrt(2.0))))


def feature_regions(landmarks_crop: torch.Tensor, size: int) -> torch.Tensor:
    """Eyes and mouth regions placed from each face's 5 landmarks, (N, 1, R, R) float32.

    landmarks_crop: (N, 10) or (N, 5, 2) x, y in crop pixels (eye, eye, nose, mouth
    corner, corner), on the device the regions are wanted on. Faces whose eyes are less
    than a pixel apart (or not finite) get an empty region.
    """
    points = landmarks_crop.reshape(-1, 5, 2).float()
    n = points.shape[0]
    valid = torch.isfinite(points).flatten(1).all(1)
    points = torch.nan_to_num(points, nan=0.0, posinf=0.0, neginf=0.0)
    eye_vector = points[:, 1] - points[:, 0]
    d = torch.linalg.vector_norm(eye_vector, dim=1)
    valid = valid & (d >= 1.0)
    d = d.clamp_min(1.0)  # invalid rows are zeroed at the end; keep their maths finite
    eye_angle = torch.atan2(eye_vector[:, 1], eye_vector[:, 0])
    corners = points[:, 3:]
    mouth_vector = corners[:, 1] - corners[:, 0]
    mouth_half = 0.5 * torch.linalg.vector_norm(mouth_vector, dim=1)
    mouth_angle = torch.atan2(mouth_vector[:, 1], mouth_vector[:, 0])
    eye_axes = torch.stack([0.35 * d, 0.22 * d], 1)
    sigma = (0.06 * d).clamp_min(0.5)
    regions = torch.maximum(
        _soft_ellipses(size, points[:, 0], eye_axes, eye_angle, sigma),
        _soft_ellipses(size, points[:, 1], eye_axes, eye_angle, sigma),
    )
    mouth_axes = torch.stack([mouth_half + 0.2 * d, 0.3 * d], 1)
    mouth = _soft_ellipses(size, corners.mean(1), mouth_axes, mouth_angle, sigma)
    regions = torch.where(valid[:, None, None], torch.maximum(regions, mouth), 0.0)
    return regions.view(n, 1, size, size)


def _gaussian_window(size: int, sigma: float, channels: int, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    kernel_1d = torch.exp(-(coords**2) / (2 * sigma**2))
    kernel_1d = kernel_1d / kernel_1d.sum()
    kernel = kernel_1d[:, None] * kernel_1d[None, :]
    return kernel.expand(channels, 1, size, size).contiguous()


def ssim_map(
    pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Per-pixel SSIM (Wang et al. 2004) of (B, C, H, W) images in [0, 1] -> (B, 1, H, W).

    window: side of the Gaussian window in px (odd); sigma: its standard deviation in px.
    """
    channels = pred.shape[1]
    kernel = _gaussian_window(window, sigma, channels, pred.device).to(pred.dtype)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, [window // 2] * 4, mode="reflect"), kernel, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    ssim = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / (
        (mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2)
    )
    return ssim.mean(1, keepdim=True)


def masked_ssim_l1(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, ssim_share: float = 0.5
) -> torch.Tensor:
    """Weighted mean of (1 - SSIM) / 2 and L1 over (B, 3, H, W) images; weight (B, 1, H, W)."""
    total = weight.sum().clamp_min(1e-6)
    l1 = ((pred - target).abs().mean(1, keepdim=True) * weight).sum() / total
    dssim = (((1.0 - ssim_map(pred, target)) / 2.0) * weight).sum() / total
    return ssim_share * dssim + (1.0 - ssim_share) * l1


def swap_loss(
    rgb: torch.Tensor,
    mask: torch.Tensor,
    target: torch.Tensor,
    face: torch.Tensor,
    features: torch.Tensor,
    eye_mouth_weight: float = 2.0,
    background_weight: float = 0.1,
    mask_weight: float = 0.5,
) -> torch.Tensor:
    """Loss of one side: masked SSIM + L1 of the RGB, plus L1 of the mask to the face region.

    rgb, target: (B, 3, R, R) in [0, 1]; mask, face, features: (B, 1, R, R) in [0, 1].
    Pixel weight = background_weight + face * (1 + eye_mouth_weight * features).
    """
    weight = background_weight + face * (1.0 + eye_mouth_weight * features)
    image_loss = masked_ssim_l1(rgb.float(), target.float(), weight.float())
    return image_loss + mask_weight * (mask.float() - face.float()).abs().mean()


def dssim_windows(resolution: int) -> tuple[int, ...]:
    """The SSIM windows of the dfl loss at `resolution` px: R / 11.6 and R / 23.2 rounded to
    the nearest odd size, at least 3 (64 px: 5, 3; 128: 11, 5; 256: 23, 11)."""
    return tuple(max(3, 2 * round((resolution / d - 1) / 2) + 1) for d in DSSIM_WINDOW_DIVISORS)


def multi_window_dssim(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, windows: tuple[int, ...]
) -> torch.Tensor:
    """Mean over `windows` of the weighted mean of (1 - SSIM) / 2, a scalar in [0, 1].

    pred, target: (B, 3, H, W) in [0, 1]; weight (B, 1, H, W). Each window's Gaussian keeps
    the 11 px / 1.5 px ratio of the standard SSIM, so a smaller window looks at finer detail.
    """
    total = weight.sum().clamp_min(1e-6)
    terms = [
        (((1.0 - ssim_map(pred, target, w, 1.5 * w / 11)) / 2.0) * weight).sum() / total
        for w in windows
    ]
    return torch.stack(terms).mean()


def dfl_swap_loss(
    rgb: torch.Tensor,
    mask: torch.Tensor,
    target: torch.Tensor,
    face: torch.Tensor,
    features: torch.Tensor,
    background_weight: float = 0.1,
    eye_mouth_weight: float | None = None,
) -> torch.Tensor:
    """Loss of one side, DeepFaceLab's way, in float32 (shapes as `swap_loss`).

    DSSIM at `dssim_windows(R)` + MSE, both weighted by background_weight + face; L1 on
    the eye and mouth regions (mean over all pixels, weighted by `features`); MSE of the
    mask to the face region. Weights: `DFL_WEIGHTS`, the eye and mouth L1's replaced by
    `eye_mouth_weight` when given.
    """
    if eye_mouth_weight is None:
        eye_mouth_weight = DFL_WEIGHTS["eye_mouth"]
    rgb, target, mask, face = rgb.float(), target.float(), mask.float(), face.float()
    weight = background_weight + face
    dssim = multi_window_dssim(rgb, target, weight, dssim_windows(rgb.shape[-1]))
    mse = (((rgb - target) ** 2).mean(1, keepdim=True) * weight).sum() / weight.sum()
    eye_mouth = ((rgb - target).abs().mean(1, keepdim=True) * features.float()).mean()
    return (
        DFL_WEIGHTS["dssim"] * dssim
        + DFL_WEIGHTS["mse"] * mse
        + eye_mouth_weight * eye_mouth
        + DFL_WEIGHTS["mask"] * ((mask - face) ** 2).mean()
    )


def side_loss(
    loss: str,
    rgb: torch.Tensor,
    mask: torch.Tensor,
    target: torch.Tensor,
    face: torch.Tensor,
    features: torch.Tensor,
    eye_mouth_weight: float | None = None,
) -> torch.Tensor:
    """The loss named `loss` (one of `LOSSES`) of one side; shapes as `swap_loss`.

    eye_mouth_weight: the dfl loss's weight of the eye and mouth L1 (None: its default,
    `DFL_WEIGHTS`); the classic loss keeps its own.
    """
    if loss == "classic":
        return swap_loss(rgb, mask, target, face, features)
    if loss == "dfl":
        return dfl_swap_loss(rgb, mask, target, face, features, eye_mouth_weight=eye_mouth_weight)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
