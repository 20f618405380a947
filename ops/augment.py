"""Training inputs: decode a faces row, then augment it with an explicit random generator.

The augmentation of the original method: the target is the face after a random affine
(rotation, scale, shift, flip) and a colour jitter; the model's input is that target
after a random warp (a coarse grid of control points, each jittered, interpolated to a
smooth displacement field). The model can't copy pixels through a warp; it must learn
the structure of the face to undo it. The face and eye/mouth regions (`ops.losses`)
go through the same affine as the target, so the loss weights follow the face.

Faces are (R, R, 3) uint8 RGB at the training resolution R; outputs are float32 in
[0, 1], channels first, ready for torch: warped and target (N, 3, R, R), regions (N, 1, R, R).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ops.align import transform_points
from ops.losses import face_region_mask, feature_mask
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
    payload: bytes, landmarks_frame: np.ndarray, affine: Affine, resolution: int
) -> tuple[Frame, np.ndarray]:
    """Decode crop bytes and resize to `resolution`; map the frame landmarks into it.

    Returns the (R, R, 3) uint8 face and its (5, 2) float32 landmarks in its pixels.
    Raises ValueError for bytes that are not an image.
    """
    crop = decode_crop(payload)
    if crop.shape[0] != crop.shape[1]:
        raise ValueError(f"face crop must be square, got {crop.shape}")
    landmarks_crop = transform_points(np.asarray(landmarks_frame).reshape(5, 2), affine)
    landmarks_crop *= resolution / crop.shape[0]
    if crop.shape[0] != resolution:
        interpolation = cv2.INTER_AREA if crop.shape[0] > resolution else cv2.INTER_CUBIC
        crop = cv2.resize(crop, (resolution, resolution), interpolation=interpolation)
    return crop, landmarks_crop.astype(np.float32)


def random_affine(size: int, rng: np.random.Generator, cfg: AugmentConfig) -> Affine:
    """A random rotation/scale/shift (and maybe flip) about the crop centre, (2, 3) float32."""
    angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)
    scale = 1.0 + rng.uniform(-cfg.scale, cfg.scale)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-cfg.shift, cfg.shift, size=2) * size
    if rng.random() < cfg.flip:
        matrix[0] = -matrix[0]
        matrix[0, 2] += size  # x -> size - x
    return matrix.astype(np.float32)


def random_warp_maps(
    size: int, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps (map_x, map_y), each (size, size) float32, of a jittered-grid warp."""
    grid = cfg.warp_grid
    jitter = rng.normal(scale=cfg.warp_scale * size, size=(2, grid, grid)).astype(np.float32)
    flow_x = cv2.resize(jitter[0], (size, size), interpolation=cv2.INTER_CUBIC)
    flow_y = cv2.resize(jitter[1], (size, size), interpolation=cv2.INTER_CUBIC)
    coords = np.arange(size, dtype=np.float32)
    return coords[None, :] + flow_x, coords[:, None] + flow_y


def color_jitter(face: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Random brightness, contrast and saturation of an (H, W, 3) float32 image in [0, 1]."""
    grey = face.mean(axis=2, keepdims=True)
    face = grey + (face - grey) * (1.0 + rng.uniform(-cfg.saturation, cfg.saturation))
    mean = face.mean()
    face = mean + (face - mean) * (1.0 + rng.uniform(-cfg.contrast, cfg.contrast))
    face = face + rng.uniform(-cfg.brightness, cfg.brightness)
    return np.clip(face, 0.0, 1.0)


def augment_face(
    face: Frame,
    landmarks_crop: np.ndarray,
    coverage: float,
    rng: np.random.Generator,
    cfg: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training sample from an (R, R, 3) uint8 face and its (5, 2) crop landmarks.

    Returns (warped, target, regions): (R, R, 3), (R, R, 3) float32 in [0, 1] and
    (R, R, 2) float32 [face oval, eyes+mouth], all in the target's geometry.
    """
    size = face.shape[0]
    regions = np.dstack([face_region_mask(size, coverage), feature_mask(landmarks_crop, size)])
    affine = random_affine(size, rng, cfg)
    colour = color_jitter(face.astype(np.float32) / 255.0, rng, cfg)
    target = cv2.warpAffine(colour, affine, (size, size), borderMode=cv2.BORDER_REFLECT101)
    regions = cv2.warpAffine(regions, affine, (size, size), borderMode=cv2.BORDER_CONSTANT)
    map_x, map_y = random_warp_maps(size, rng, cfg)
    warped = cv2.remap(target, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    return warped, target, regions


def augment_batch(
    faces: np.ndarray,
    landmarks_crop: np.ndarray,
    coverage: np.ndarray,
    rng: np.random.Generator,
    cfg: AugmentConfig = AugmentConfig(),
) -> dict[str, np.ndarray]:
    """Augment N faces: (N, R, R, 3) uint8, (N, 10) or (N, 5, 2) landmarks, (N,) coverage.

    Returns {"warped", "target": (N, 3, R, R), "face", "features": (N, 1, R, R)} float32.
    """
    if len(faces) == 0:
        size = faces.shape[1] if faces.ndim == 4 else 0
        empty = np.zeros((0, 3, size, size), np.float32)
        return {"warped": empty, "target": empty, "face": empty[:, :1], "features": empty[:, :1]}
    samples = [
        augment_face(face, points.reshape(5, 2), float(cov), rng, cfg)
        for face, points, cov in zip(faces, landmarks_crop, coverage, strict=True)
    ]
    warped, target, regions = (np.stack(parts) for parts in zip(*samples, strict=True))
    return {
        "warped": np.ascontiguousarray(warped.transpose(0, 3, 1, 2)),
        "target": np.ascontiguousarray(target.transpose(0, 3, 1, 2)),
        "face": np.ascontiguousarray(regions[..., :1].transpose(0, 3, 1, 2)),
        "features": np.ascontiguousarray(regions[..., 1:].transpose(0, 3, 1, 2)),
    }
