"""The invisible mark of `ops.watermark`, embedded on a torch device for a batch of faces.

`embed_watermarks` does what `watermark.embed_watermark` does to each face (same pattern,
same strength for the face's size, same host compensation: measure the key's correlation
on the face, add a probe, measure again, add the amplitude that evens it out), on frames
already on the device, in place, reading nothing back to the host. Run on CPU, it agrees
with the cv2 path to a grey level at most (tests/ops/test_blend_torch.py), and
`ops.watermark.correlate_face` finds it as it finds the cv2 path's mark
(tests/pipelines/test_render_torch.py). Layout as in `ops.blend_torch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ops.blend import paste_region
from ops.blend_torch import (
    convert_colors,
    crop_grid,
    face_rounds,
    frame_windows,
    gather_pixels,
    gaussian_blur,
    sample_frames,
    scatter_pixels,
)
from ops.watermark import (
    BAND_SIGMAS,
    COMPENSATION_RANGE,
    DEFAULT_KEY,
    DEFAULT_STRENGTH,
    WM_SIZE,
    _support_box,
    size_factor,
    watermark_affine,
    watermark_patterns,
    watermark_region,
)


@lru_cache(maxsize=8)
def _on_device(device: str, key: str = DEFAULT_KEY) -> tuple[torch.Tensor, torch.Tensor]:
    """The key's pattern and the marked region on a device, (S, S) float32 each."""
    pattern = torch.from_numpy(watermark_patterns(key)[0]).to(device)
    return pattern, torch.from_numpy(watermark_region()).to(device)


def crop_lumas(frames: torch.Tensor, rows: Sequence[int], affines: np.ndarray) -> torch.Tensor:
    """`watermark.crop_luma` of a batch: (N, S, S) float32 whole numbers (cv2's 8-bit grey)."""
    crops = sample_frames(frames, rows, affines, WM_SIZE).round()
    return convert_colors(crops, cv2.COLOR_RGB2GRAY)[..., 0]


def luma_residuals(lumas: torch.Tensor) -> torch.Tensor:
    """`watermark.luma_residual` of (N, S, S) lumas: band-passed, contrast-normalised."""
    fine, coarse = BAND_SIGMAS
    band = gaussian_blur(lumas, fine, "reflect") - gaussian_blur(lumas, coarse, "reflect")
    energy = gaussian_blur(band * band, 4.0, "reflect").sqrt()
    return band / (energy + 2.0) * _on_device(str(lumas.device))[1]


def key_correlations(lumas: torch.Tensor, pattern: torch.Tensor) -> torch.Tensor:
    """Normalised correlation of each crop's residual with the key's pattern; (N,) float32."""
    residuals = luma_residuals(lumas)
    norms = residuals.flatten(1).norm(dim=1) * pattern.norm() + 1e-9
    return (residuals * pattern).sum((1, 2)) / norms


def embed_watermarks(
    frames: torch.Tensor,
    rows: Sequence[int],
    landmarks: Sequence[np.ndarray],
    key: str = DEFAULT_KEY,
    strength: float = DEFAULT_STRENGTH,
) -> None:
    """`watermark.embed_watermark` of every face, in place; faces of a frame in order.

    Args:
        frames: (F, H, W, 3) uint8 RGB, contiguous, with the swapped faces.
        rows: (N,) frame of each face; landmarks: (N,) (5, 2) landmarks in frame px.
        strength: grey levels RMS for a face of the reference size (see embed_watermark).
    """
    if len(rows) == 0:
        return
    height, width = frames.shape[1:3]
    device = frames.device
    rows = np.asarray(rows, dtype=np.int64)
    affines = np.stack([watermark_affine(points) for points in landmarks])  # (N, 2, 3)
    strengths = torch.tensor([strength * size_factor(a) for a in affines], device=device)
    support_rows, support_cols = _support_box()
    support = (support_cols.start, support_rows.start, support_cols.stop, support_rows.stop)
    boxes = np.array(
        [
            paste_region(
                cv2.invertAffineTransform(a.astype(np.float64)), WM_SIZE, height, width, support
            )
            for a in affines
        ],
        dtype=np.int64,
    )
    pattern = _on_device(str(device), key)[0]
    for faces in face_rounds(rows):
        pick = torch.as_tensor(faces, device=device)
        _mark_round(frames, rows[faces], affines[faces], boxes[faces], strengths[pick], pattern)


def _mark_round(
    frames: torch.Tensor,
    rows: np.ndarray,
    affines: np.ndarray,
    boxes: np.ndarray,
    strengths: torch.Tensor,
    pattern: torch.Tensor,
) -> None:
    """Mark one face in each of `rows` (all different frames), in place."""
    flat = frames.view(-1, 3)
    origins, index, inside = frame_windows(frames, rows, boxes)
    grid = crop_grid(affines, origins, index.shape[1:], WM_SIZE, frames.device)
    unit = F.grid_sample(
        pattern.expand(len(rows), 1, WM_SIZE, WM_SIZE),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )[:, 0]
    unit = torch.where(inside, unit, 0.0)[..., None]  # (n, h, w, 1): the same on R, G, B
    original = gather_pixels(flat, index).float()  # (n, h, w, 3)
    host = key_correlations(crop_lumas(frames, rows, affines), pattern)
    scatter_pixels(flat, index, _add_levels(original, unit, strengths))  # the probe: round trip
    probe = key_correlations(crop_lumas(frames, rows, affines), pattern)
    gain = (probe - host) / strengths  # correlation per grey level
    low, high = COMPENSATION_RANGE
    evened = torch.clamp(strengths - host / gain, low * strengths, high * strengths)
    scatter_pixels(
        flat, index, _add_levels(original, unit, torch.where(gain > 0, evened, strengths))
    )


def _add_levels(original: torch.Tensor, unit: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """original + unit x levels per face, rounded to uint8: the frame box with the mark."""
    return (original + unit * levels[:, None, None, None]).round().clamp(0, 255).to(torch.uint8)
