"""Put a swapped face back into its frame: mask, colour match, paste through the inverse affine.

All masks here are float32 in [0, 1]. Crops are in the aligned (canonical) space of
`ops.align`: the face sits on the template landmarks, so the face region is a known oval
(`template_oval`) rather than a hull of 68 landmarks. The blend mask is the model's learned
mask intersected with that oval, eroded (so the seam falls inside the face, away from hair
and background) and feathered (so it has no hard edge).

Pixels outside the warped mask are never touched: `paste_back` only writes where the mask
is above zero, so frames without a face, and everything around a face, keep their exact
values.
"""

from __future__ import annotations

import cv2
import numpy as np

from ops.align import invert_affine, template_landmarks
from ops.types import Affine, Frame

COLOR_CHOICES = ("lab", "hist", "none")  # the methods of `match_color`
MASK_FLOOR = 1.0 / 512  # below this a pixel cannot change after rounding; treat as 0


def template_oval(size: int, coverage: float = 1.5, scale: float = 1.0) -> np.ndarray:
    """The template face region of a `size` crop: a filled ellipse, (size, size) float32 0/1.

    Placed from the canonical landmarks: centred between the eyes and the mouth, wide enough
    for the cheeks and tall enough for brows and chin. `scale` shrinks or grows both axes.
    """
    points = template_landmarks(size, coverage)
    eyes_mid, mouth_mid = points[:2].mean(0), points[3:].mean(0)
    eye_dist = float(np.linalg.norm(points[1] - points[0]))
    centre = (eyes_mid + mouth_mid) / 2 + np.array([0.0, 0.1 * eye_dist])
    axes = (1.05 * scale * eye_dist, 1.45 * scale * eye_dist)  # half-width, half-height in px
    oval = np.zeros((size, size), dtype=np.float32)
    cv2.ellipse(
        oval,
        (round(centre[0] * 16), round(centre[1] * 16)),
        (round(axes[0] * 16), round(axes[1] * 16)),
        0.0,
        0.0,
        360.0,
        1.0,
        thickness=-1,
        lineType=cv2.LINE_AA,
        shift=4,
    )
    return oval


def blend_mask(
    learned_mask: np.ndarray | None,
    oval: np.ndarray,
    erode: float = 0.03,
    feather: float = 0.05,
) -> np.ndarray:
    """Learned mask ∩ oval, eroded then feathered; (size, size) float32 in [0, 1].

    Args:
        learned_mask: (size, size) float32 in [0, 1] from the decoder, or None (oval only).
        oval: (size, size) float32 template region from `template_oval`.
        erode: erosion radius as a fraction of the crop side (0 = none).
        feather: Gaussian feather sigma as a fraction of the crop side (0 = hard edge).
    """
    size = oval.shape[0]
    mask = oval if learned_mask is None else np.minimum(learned_mask.astype(np.float32), oval)
    radius = int(round(erode * size))
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.erode(mask, kernel)
    sigma = feather * size
    if sigma > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_CONSTANT)
    mask = np.clip(mask, 0.0, 1.0)
    mask[mask < MASK_FLOOR] = 0.0
    return mask


def _lab(image: Frame) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)


def _rgb(lab: np.ndarray) -> Frame:
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def match_color_lab(src: Frame, ref: Frame, weight: np.ndarray) -> Frame:
    """Reinhard transfer: give `src` the per-channel LAB mean/std of `ref` inside `weight`.

    src, ref: (S, S, 3) uint8 RGB crops; weight: (S, S) float32 region to measure in.
    """
    w = weight[..., None] / max(float(weight.sum()), 1e-6)
    src_lab, ref_lab = _lab(src), _lab(ref)
    src_mean, ref_mean = (src_lab * w).sum((0, 1)), (ref_lab * w).sum((0, 1))
    src_std = np.sqrt(((src_lab - src_mean) ** 2 * w).sum((0, 1))) + 1e-3
    ref_std = np.sqrt(((ref_lab - ref_mean) ** 2 * w).sum((0, 1))) + 1e-3
    gain = np.clip(ref_std / src_std, 0.25, 4.0)
    return _rgb((src_lab - src_mean) * gain + ref_mean)


def match_color_hist(src: Frame, ref: Frame, weight: np.ndarray) -> Frame:
    """Per-channel histogram matching of `src` to `ref`, measured where weight > 0.5.

    src, ref: (S, S, 3) uint8 RGB crops; weight: (S, S) float32 region to measure in.
    """
    inside = weight > 0.5
    if inside.sum() < 16:
        return src
    out = np.empty_like(src)
    for c in range(3):
        src_hist = np.bincount(src[..., c][inside], minlength=256).astype(np.float64)
        ref_hist = np.bincount(ref[..., c][inside], minlength=256).astype(np.float64)
        src_cdf = np.cumsum(src_hist) / src_hist.sum()
        ref_cdf = np.cumsum(ref_hist) / ref_hist.sum()
        lut = np.interp(src_cdf, ref_cdf, np.arange(256)).round().astype(np.uint8)
        out[..., c] = lut[src[..., c]]
    return out


def match_color(src: Frame, ref: Frame, weight: np.ndarray, method: str = "lab") -> Frame:
    """Colour-match a swapped crop to the original crop; `method` is one of `COLOR_CHOICES`."""
    if method == "lab":
        return match_color_lab(src, ref, weight)
    if method == "hist":
        return match_color_hist(src, ref, weight)
    if method == "none":
        return src
    raise ValueError(f"color method must be one of {COLOR_CHOICES}, got {method!r}")


def paste_region(
    affine_inv: Affine, size: int, height: int, width: int, box: tuple | None = None
) -> tuple[int, ...]:
    """Frame box (x0, y0, x1, y1) covered by a `size` crop mapped back through `affine_inv`.

    `box` (x0, y0, x1, y1 in crop px) limits it to that part of the crop.
    """
    left, top, right, bottom = box if box is not None else (0, 0, size, size)
    corners = np.array(
        [[left, top], [right, top], [left, bottom], [right, bottom]], dtype=np.float64
    )
    mapped = corners @ np.asarray(affine_inv, np.float64)[:, :2].T + affine_inv[:, 2]
    x0, y0 = np.floor(mapped.min(0)).astype(int) - 1
    x1, y1 = np.ceil(mapped.max(0)).astype(int) + 2
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def warp_to_frame(
    image: np.ndarray, affine: Affine, box: tuple[int, ...], border: int = cv2.BORDER_CONSTANT
) -> np.ndarray:
    """Warp a crop-space image into the frame box `box` through the inverse of `affine`.

    Args:
        image: (S, S) or (S, S, C) array in the crop space of `affine` (frame -> crop).
        box: (x0, y0, x1, y1) in frame px, e.g. from `paste_region`.
        border: OpenCV border mode for frame px that map outside the crop (constant: 0).
    Returns:
        The image resampled (bilinear) on the box's pixels: (y1 - y0, x1 - x0[, C]).
    """
    x0, y0, x1, y1 = box
    # crop -> frame box: shift the frame -> crop affine so the box origin is (0, 0)
    shifted = np.asarray(affine, np.float64).copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, shifted, (x1 - x0, y1 - y0), flags=flags, borderMode=border)


def paste_back(frame: Frame, crop: Frame, mask: np.ndarray, affine: Affine) -> Frame:
    """Blend an aligned crop into the frame through the inverse of `affine`; returns a new frame.

    Args:
        frame: (H, W, 3) uint8 RGB.
        crop: (S, S, 3) uint8 RGB in the crop space of `affine` (frame -> crop).
        mask: (S, S) float32 in [0, 1]; 0 keeps the frame pixel exactly.
    """
    size = crop.shape[0]
    height, width = frame.shape[:2]
    box = paste_region(invert_affine(affine), size, height, width)
    x0, y0, x1, y1 = box
    out = frame.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    crop_box = warp_to_frame(crop, affine, box, cv2.BORDER_REPLICATE)
    mask_box = warp_to_frame(mask, affine, box)
    mask_box[mask_box < MASK_FLOOR] = 0.0
    region = out[y0:y1, x0:x1]
    alpha = mask_box[..., None]
    mixed = crop_box.astype(np.float32) * alpha + region.astype(np.float32) * (1.0 - alpha)
    touched = mask_box > 0
    region[touched] = np.clip(np.rint(mixed[touched]), 0, 255).astype(np.uint8)
    return out
