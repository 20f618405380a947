"""Training inputs: decode a faces row (CPU), then augment whole batches on the training device.

The augmentation of the original method: the target is the face after a random affine
(rotation, scale, shift, flip) and a colour jitter; the model's input is that target
after a random warp (a coarse grid of control points, each jittered, interpolated to a
smooth displacement field). The model can't copy pixels through a warp; it must learn
the structure of the face to undo it. The face and eye/mouth regions (`ops.losses`)
go through the same affine as the target, so the loss weights follow the face.

Augmentation is one set of batched torch ops (`grid_sample`) that runs wherever the
model runs, CPU or GPU, so the feed only carries decoded uint8 faces and landmarks.
The warped input is sampled from the colour-jittered face in one step (the affine and
the warp composed), so it is interpolated once.

Faces are (N, R, R, 3) uint8 RGB at the training resolution R; outputs are float32 in
[0, 1], channels first: warped and target (N, 3, R, R), face and features (N, 1, R, R).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ops.align import transform_points
from ops.losses import face_region_mask, feature_regions
from ops.quality import decode_crop
from ops.types import Affine, Frame


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation (fractions are of the crop side)."""

    rotation_deg: float = 10.0
    scale: float = 0.05
    shift: float = 0.05
    flip: float = 0.5  # probability
    warp_grid: int = 5
    warp_scale: float = 0.025  # std of each control point's jitter
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1


def load_face(
    payload: bytes,
    landmarks_frame: np.ndarray,
    affine: Affine,
    resolution: int,
    zoom: float = 1.0,
) -> tuple[Frame, np.ndarray]:
    """Decode crop bytes and resize to `resolution`; map the frame landmarks into it.

    zoom >= 1 keeps only the centre 1/zoom of the crop (the model's own coverage is the
    crop's divided by `zoom`: the alignment template scales about the crop centre, so the
    result is the crop `align_face` makes at that coverage).
    Returns the (R, R, 3) uint8 face and its (5, 2) float32 landmarks in its pixels.
    Raises ValueError for bytes that are not an image, or a zoom below 1.
    """
    return crop_face(decode_crop(payload), landmarks_frame, affine, resolution, zoom)


def crop_face(
    crop: Frame,
    landmarks_frame: np.ndarray,
    affine: Affine,
    resolution: int,
    zoom: float = 1.0,
) -> tuple[Frame, np.ndarray]:
    """`load_face` of a crop already decoded ((S, S, 3) uint8)."""
    if crop.shape[0] != crop.shape[1]:
        raise ValueError(f"face crop must be square, got {crop.shape}")
    if zoom < 1.0 - 1e-6:
        raise ValueError(f"zoom must be >= 1 (a centre region of the crop), got {zoom}")
    landmarks_crop = transform_points(np.asarray(landmarks_frame).reshape(5, 2), affine)
    if zoom > 1.0 + 1e-6:
        return _centre_region(crop, landmarks_crop, resolution, zoom)
    landmarks_crop *= resolution / crop.shape[0]
    if crop.shape[0] != resolution:
        interpolation = cv2.INTER_AREA if crop.shape[0] > resolution else cv2.INTER_CUBIC
        crop = cv2.resize(crop, (resolution, resolution), interpolation=interpolation)
    return crop, landmarks_crop.astype(np.float32)


def _centre_region(
    crop: Frame, landmarks_crop: np.ndarray, resolution: int, zoom: float
) -> tuple[Frame, np.ndarray]:
    """The centre 1/zoom of `crop` at `resolution`, with its landmarks (one interpolation).

    In continuous crop coordinates (a pixel spans [i, i + 1]) u -> ((u / N - 0.5) zoom
    + 0.5) R, the same map as the alignment template's; cv2 samples pixel centres.
    """
    scale = resolution * zoom / crop.shape[0]
    points = landmarks_crop * scale + resolution * (1.0 - zoom) / 2.0
    matrix = centre_affine(crop.shape[0], resolution, zoom)
    face = cv2.warpAffine(
        crop,
        matrix,
        (resolution, resolution),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT101,
    )
    return face, points.astype(np.float32)


def centre_affine(side: int, resolution: int, zoom: float) -> Affine:
    """(2, 3) float32 affine from a `side` crop's pixels (cv2's pixel centres) to its centre
    1/zoom at `resolution`: the map `load_face` cuts with, and render-style paste-back
    (`ops.blend.paste_back`) puts a model's output back through."""
    scale = resolution * zoom / side
    shift = resolution * (1.0 - zoom) / 2.0
    offset = 0.5 * scale - 0.5 + shift  # pixel centres: x_d + 0.5 = (x_s + 0.5) s + shift
    return np.array([[scale, 0.0, offset], [0.0, scale, offset]], np.float32)


def _uniform(n: int, bound: float, generator: torch.Generator, device: torch.device):
    return (torch.rand(n, generator=generator, device=device) * 2.0 - 1.0) * bound


def random_affines(
    n: int, size: int, generator: torch.Generator, cfg: AugmentConfig = AugmentConfig()
) -> torch.Tensor:
    """N random rotation/scale/shift (and maybe flip) about the crop centre, (N, 2, 3) float32.

    Pixel coordinates (pixel centres at integers), source -> target, as cv2.warpAffine takes.
    """
    device = generator.device
    angle = torch.deg2rad(_uniform(n, cfg.rotation_deg, generator, device))
    scale = 1.0 + _uniform(n, cfg.scale, generator, device)
    shift = _uniform(2 * n, cfg.shift, generator, device).view(n, 2) * size
    flip = torch.rand(n, generator=generator, device=device) < cfg.flip
    cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
    centre = size / 2
    matrix = torch.stack(
        [
            torch.stack([cos, sin, (1 - cos) * centre - sin * centre + shift[:, 0]], 1),
            torch.stack([-sin, cos, sin * centre + (1 - cos) * centre + shift[:, 1]], 1),
        ],
        1,
    )
    flipped = matrix.clone()
    flipped[:, 0] = -matrix[:, 0]
    flipped[:, 0, 2] += size  # x -> size - x
    return torch.where(flip[:, None, None], flipped, matrix)


def unit_affines(affines: torch.Tensor, size: int) -> torch.Tensor:
    """Target -> source in grid_sample's [-1, 1] units, (N, 2, 3), for `F.affine_grid`.

    affines: (N, 2, 3) source -> target in pixels (see `random_affines`). Computed in
    closed form on the affines' device: no host data, no solver, so no device sync.
    """
    # pixel p -> unit u = s p + o (align_corners=False); M = [A | t] maps source -> target.
    # theta = U M^-1 U^-1: linear part A^-1, offset o (1 - A^-1 [1, 1]) - s A^-1 t.
    a, b, t_x = affines[:, 0, 0], affines[:, 0, 1], affines[:, 0, 2]
    c, d, t_y = affines[:, 1, 0], affines[:, 1, 1], affines[:, 1, 2]
    det = a * d - b * c
    inv = torch.stack([torch.stack([d, -b], 1), torch.stack([-c, a], 1)], 1) / det[:, None, None]
    scale, offset = 2.0 / size, 1.0 / size - 1.0
    shift = torch.stack([t_x, t_y], 1)[:, :, None]  # (N, 2, 1)
    ones = torch.ones_like(shift)
    bias = offset * (ones - inv @ ones) - scale * (inv @ shift)
    return torch.cat([inv, bias], 2)


def random_warp_flow(
    n: int, size: int, generator: torch.Generator, cfg: AugmentConfig = AugmentConfig()
) -> torch.Tensor:
    """Smooth random displacements in pixels, (N, R, R, 2) float32 (x, y).

    A `warp_grid` x `warp_grid` grid of control points, each jittered with std
    `warp_scale` * size, interpolated bicubically to every pixel.
    """
    grid = cfg.warp_grid
    jitter = torch.randn(n, 2, grid, grid, generator=generator, device=generator.device) * (
        cfg.warp_scale * size
    )
    flow = F.interpolate(jitter, size=(size, size), mode="bicubic", align_corners=False)
    return flow.permute(0, 2, 3, 1).contiguous()


def color_jitter(
    faces: torch.Tensor, generator: torch.Generator, cfg: AugmentConfig = AugmentConfig()
) -> torch.Tensor:
    """Random saturation, contrast and brightness of (N, 3, H, W) float32 in [0, 1]."""
    n, device = faces.shape[0], faces.device
    grey = faces.mean(1, keepdim=True)
    saturation = 1.0 + _uniform(n, cfg.saturation, generator, device)
    faces = grey + (faces - grey) * saturation[:, None, None, None]
    mean = faces.mean((1, 2, 3), keepdim=True)
    contrast = 1.0 + _uniform(n, cfg.contrast, generator, device)
    faces = mean + (faces - mean) * contrast[:, None, None, None]
    faces = faces + _uniform(n, cfg.brightness, generator, device)[:, None, None, None]
    return faces.clamp(0.0, 1.0)


@functools.lru_cache(maxsize=16)
def _face_oval(size: int, coverage: float, device: str) -> torch.Tensor:
    return torch.from_numpy(face_region_mask(size, coverage).copy()).to(device)


def augment_batch(
    faces: torch.Tensor,
    landmarks_crop: torch.Tensor,
    coverage: float,
    generator: torch.Generator,
    cfg: AugmentConfig = AugmentConfig(),
) -> dict[str, torch.Tensor]:
    """Augment N faces on their own device: (N, R, R, 3) uint8 and (N, 10) crop landmarks.

    coverage: the crop coverage the faces were extracted with (places the face oval).
    generator: a torch.Generator on the faces' device; equal seeds give equal batches.
    Returns {"warped", "target": (N, 3, R, R), "face", "features": (N, 1, R, R)} float32.
    """
    if faces.ndim != 4 or faces.shape[-1] != 3 or faces.dtype != torch.uint8:
        raise ValueError(f"faces must be uint8 (N, R, R, 3), got {faces.dtype} {faces.shape}")
    n, size, device = faces.shape[0], faces.shape[1], faces.device
    if n == 0:
        empty = torch.zeros(0, 3, size, size, device=device)
        return {"warped": empty, "target": empty, "face": empty[:, :1], "features": empty[:, :1]}
    oval = _face_oval(size, round(float(coverage), 4), str(device)).expand(n, 1, size, size)
    regions = torch.cat([oval, feature_regions(landmarks_crop.float(), size)], 1)

    theta = unit_affines(random_affines(n, size, generator, cfg), size)  # (N, 2, 3)
    flow = random_warp_flow(n, size, generator, cfg)  # (N, R, R, 2) px
    colour = color_jitter(faces.permute(0, 3, 1, 2).float() / 255.0, generator, cfg)
    grids = F.affine_grid(theta, [n, 1, size, size], align_corners=False)  # (N, R, R, 2)
    target = F.grid_sample(colour, grids, padding_mode="reflection", align_corners=False)
    regions = F.grid_sample(regions, grids, padding_mode="zeros", align_corners=False)
    # warped(p) = target(p + flow(p)); the affine is linear in p, so its grid at p + flow is
    # grid(p) + L flow: the warp and the affine compose exactly and colour is sampled once
    flow_unit = flow * (2.0 / size)
    linear = theta[:, None, None, :, :2]  # (N, 1, 1, 2, 2)
    warped_grids = grids + (linear @ flow_unit.unsqueeze(-1)).squeeze(-1)
    warped = F.grid_sample(colour, warped_grids, padding_mode="reflection", align_corners=False)
    return {
        "warped": warped.clamp(0.0, 1.0),
        "target": target.clamp(0.0, 1.0),
        "face": regions[:, :1],
        "features": regions[:, 1:],
    }
