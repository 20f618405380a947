"""Paste-back on a torch device: `ops.blend` (and the crop of `ops.align`) for a batch of faces.

The renderer's torch path (`pipelines/render/segment.py`, on CUDA) runs these on the device
that holds the model, so a frame is uploaded once and downloaded once, for the encoder.
Each function does what its cv2 twin does, to the same numbers up to float rounding:

- `crop_faces` ~ `align.warp_face`: bilinear, reflected border (OpenCV 5 interpolates 8-bit
  images in floats and rounds the result, as this does).
- `blend_masks` ~ `blend.blend_mask`: min with the oval, erosion by cv2's elliptic element,
  cv2's Gaussian kernel for the feather, the same floor.
- `match_colors` ~ `blend.match_color`: "lab" is the same Reinhard transfer in cv2's 8-bit
  LAB, converted through lookup tables of cv2's own conversions (bit for bit whatever
  OpenCV computes inside); "hist" is the same histogram matching, exactly (integer
  histograms, float64 CDFs, `numpy.interp`'s rule); "none" passes through.
- `paste_faces` ~ `blend.paste_back`: each crop is warped into its frame box by
  `grid_sample`, blended by its warped mask and written in place; a pixel where the mask
  is 0 keeps its exact value.

Layout: frames are one (F, H, W, 3) uint8 RGB tensor (channels last: as decoded, and as the
encoder takes them); face n lies in frame `rows[n]`. Crops are (N, 3, S, S) float32 holding
whole numbers in [0, 255] (uint8 values, so the cv2 path's roundings are kept), masks
(N, S, S) float32 in [0, 1]. Affines are the host's (N, 2, 3) frame -> crop matrices: the
frame boxes are worked out there, as `paste_region` does, and nothing is read back from the
device. The faces of one frame are pasted one after another, as the cv2 path does.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ops.align import invert_affine
from ops.blend import COLOR_CHOICES, MASK_FLOOR, paste_region

LEVELS = 256


@lru_cache(maxsize=8)
def color_table(conversion: int, device: str) -> torch.Tensor:
    """`cv2.cvtColor(..., conversion)` of every 8-bit triple; (2**24, C) uint8 on `device`.

    Row r * 65536 + g * 256 + b holds the conversion of (r, g, b) (`color_index`). 48 MiB
    for three channels, built once per process and device.
    """
    triples = np.empty((LEVELS, LEVELS, LEVELS, 3), dtype=np.uint8)
    levels = np.arange(LEVELS, dtype=np.uint8)
    triples[..., 0] = levels[:, None, None]
    triples[..., 1] = levels[None, :, None]
    triples[..., 2] = levels[None, None, :]
    table = cv2.cvtColor(triples.reshape(4096, 4096, 3), conversion)
    return torch.from_numpy(table.reshape(1 << 24, -1)).to(device)


def color_index(values: torch.Tensor) -> torch.Tensor:
    """(..., 3) whole numbers in [0, 255] -> (...) int64 rows of `color_table`."""
    codes = values.long()
    return (codes[..., 0] << 16) | (codes[..., 1] << 8) | codes[..., 2]


def convert_colors(values: torch.Tensor, conversion: int) -> torch.Tensor:
    """cv2's 8-bit colour conversion of (..., 3) whole numbers; (..., C) float32."""
    return color_table(conversion, str(values.device))[color_index(values)].float()


def _reflect101(index: torch.Tensor, size: int) -> torch.Tensor:
    """cv2.BORDER_REFLECT101 (gfedcb|abcdefgh|gfedcba) of integer positions."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = torch.remainder(index, period)
    return torch.where(index >= size, period - index, index)


def sample_frames(
    frames: torch.Tensor, rows: Sequence[int], affines: np.ndarray, size: int
) -> torch.Tensor:
    """Bilinear `size` crops of frames through frame -> crop affines, reflected border.

    Args:
        frames: (F, H, W, 3) uint8; rows: (N,) frame of each crop; affines: (N, 2, 3).
    Returns:
        (N, S, S, 3) float32, not rounded.
    """
    height, width = frames.shape[1:3]
    device = frames.device
    inverse = np.stack([cv2.invertAffineTransform(np.asarray(a, np.float64)) for a in affines])
    m = torch.as_tensor(inverse, dtype=torch.float32, device=device)[..., None, None]
    steps = torch.arange(size, dtype=torch.float32, device=device)
    x = m[:, 0, 0] * steps[None, None, :] + m[:, 0, 1] * steps[None, :, None] + m[:, 0, 2]
    y = m[:, 1, 0] * steps[None, None, :] + m[:, 1, 1] * steps[None, :, None] + m[:, 1, 2]
    x0, y0 = x.floor(), y.floor()
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = x0.long(), y0.long()
    xs = (_reflect101(x0, width), _reflect101(x0 + 1, width))
    ys = (_reflect101(y0, height), _reflect101(y0 + 1, height))
    base = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=device)[:, None, None]
    flat = frames.reshape(-1, 3)

    def tap(row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        return gather_pixels(flat, (base * height + row) * width + col).float()

    top = tap(ys[0], xs[0]) * (1 - fx) + tap(ys[0], xs[1]) * fx
    bottom = tap(ys[1], xs[0]) * (1 - fx) + tap(ys[1], xs[1]) * fx
    return top * (1 - fy) + bottom * fy


def gather_pixels(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`flat[index]` of (P, 3) pixels by an int64 index of any shape; (*index.shape, 3).

    index_select, and index_copy_ below, run a few times faster on CPU than `[]` indexing.
    """
    return flat.index_select(0, index.reshape(-1)).view(*index.shape, flat.shape[1])


def scatter_pixels(flat: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> None:
    """`flat[index] = values` for an index without repeats, in place."""
    flat.index_copy_(0, index.reshape(-1), values.reshape(-1, flat.shape[1]))


def crop_faces(
    frames: torch.Tensor, rows: Sequence[int], affines: np.ndarray, size: int
) -> torch.Tensor:
    """The aligned crops of `align.warp_face`; (N, 3, S, S) float32 whole numbers in [0, 255]."""
    return sample_frames(frames, rows, affines, size).round().permute(0, 3, 1, 2)


@lru_cache(maxsize=16)
def _gaussian_taps(sigma: float) -> np.ndarray:
    ksize = int(round(sigma * 8 + 1)) | 1  # cv2.GaussianBlur's size for float images: 4 sigma
    return cv2.getGaussianKernel(ksize, sigma, cv2.CV_32F).ravel()


def gaussian_blur(images: torch.Tensor, sigma: float, border: str = "constant") -> torch.Tensor:
    """cv2.GaussianBlur(image, (0, 0), sigma) of (N, H, W) float32 images, separable.

    border: "constant" (zeros, cv2.BORDER_CONSTANT) or "reflect" (cv2.BORDER_REFLECT101,
    which needs H and W above half the kernel).
    """
    taps = torch.from_numpy(_gaussian_taps(float(sigma))).to(images.device)
    pad = len(taps) // 2
    out = images[:, None]
    for padding, shape in (((pad, pad, 0, 0), (1, 1, 1, -1)), ((0, 0, pad, pad), (1, 1, -1, 1))):
        padded = F.pad(out, padding, mode=border)
        out = F.conv2d(padded, taps.view(shape))
    return out[:, 0]


@lru_cache(maxsize=16)
def _ellipse_rows(radius: int) -> tuple[int, ...]:
    """Half-width of each row of cv2's elliptic (2r + 1)-square element; -1 for an empty row."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return tuple(int(row.sum()) // 2 if row.any() else -1 for row in kernel)


def erode_ellipse(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """cv2.erode by the elliptic element of `radius`, border not eroding; (N, H, W) float32.

    The element is a stack of centred runs, so the erosion is the min over its rows of a
    1-D min over each row's run (a max-pool of the negated mask), shifted by the row offset.
    """
    height = masks.shape[1]
    negated = -masks[:, None]
    out = torch.full_like(masks, float("inf"))
    for offset, half in zip(range(-radius, radius + 1), _ellipse_rows(radius), strict=True):
        if half < 0 or abs(offset) >= height:
            continue
        runs = -F.max_pool2d(negated, (1, 2 * half + 1), stride=1, padding=(0, half))[:, 0]
        if offset >= 0:  # out[y] = min(out[y], runs[y + offset])
            out[:, : height - offset] = torch.minimum(out[:, : height - offset], runs[:, offset:])
        else:
            out[:, -offset:] = torch.minimum(out[:, -offset:], runs[:, :offset])
    return out


def blend_masks(
    learned: torch.Tensor, oval: torch.Tensor, erode: float = 0.03, feather: float = 0.05
) -> torch.Tensor:
    """`blend.blend_mask` of a batch: learned ∩ oval, eroded, feathered; (N, S, S) float32.

    Args:
        learned: (N, S, S) float32 in [0, 1] (ones for the oval alone); oval: (S, S).
        erode, feather: fractions of the crop side, as in `blend.blend_mask`.
    """
    size = oval.shape[-1]
    masks = torch.minimum(learned.float(), oval)
    radius = int(round(erode * size))
    if radius > 0:
        masks = erode_ellipse(masks, radius)
    if feather * size > 0:
        masks = gaussian_blur(masks, feather * size, "constant")
    masks = masks.clamp(0.0, 1.0)
    return torch.where(masks < MASK_FLOOR, 0.0, masks)


def match_colors_lab(src: torch.Tensor, ref: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`blend.match_color_lab` of a batch: LAB mean/std of `ref` inside `weight`.

    src, ref: (N, 3, S, S) whole numbers in [0, 255]; weight: (S, S) float32.
    Returns (N, 3, S, S) float32 whole numbers.
    """
    w = (weight / weight.sum().clamp(min=1e-6))[None, :, :, None]
    src_lab = convert_colors(src.permute(0, 2, 3, 1), cv2.COLOR_RGB2LAB)  # (N, S, S, 3)
    ref_lab = convert_colors(ref.permute(0, 2, 3, 1), cv2.COLOR_RGB2LAB)
    src_mean = (src_lab * w).sum((1, 2), keepdim=True)
    ref_mean = (ref_lab * w).sum((1, 2), keepdim=True)
    src_std = ((src_lab - src_mean) ** 2 * w).sum((1, 2), keepdim=True).sqrt() + 1e-3
    ref_std = ((ref_lab - ref_mean) ** 2 * w).sum((1, 2), keepdim=True).sqrt() + 1e-3
    gain = (ref_std / src_std).clamp(0.25, 4.0)
    lab = ((src_lab - src_mean) * gain + ref_mean).clamp(0, 255).floor()  # astype(uint8)
    return convert_colors(lab, cv2.COLOR_LAB2RGB).permute(0, 3, 1, 2)


def _interp_levels(x: torch.Tensor, xp: torch.Tensor) -> torch.Tensor:
    """numpy.interp(x, xp, arange(L)) along the last axis, float64, with numpy's rule."""
    levels = xp.shape[-1]
    below = torch.searchsorted(xp, x, right=True) - 1  # last j with xp[j] <= x; -1 if none
    j = below.clamp(0, levels - 2)
    left, right = xp.gather(-1, j), xp.gather(-1, j + 1)
    inner = 1.0 / (right - left) * (x - left) + j.double()
    out = torch.where(x == left, j.double(), inner)
    out = torch.where(below < 0, 0.0, out)
    return torch.where(below >= levels - 1, float(levels - 1), out)


def _histograms(values: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) whole numbers -> (N, 3, 256) float64 counts of the pixels `inside`."""
    n = values.shape[0]
    offsets = torch.arange(n * 3, device=values.device).view(n, 3, 1) * LEVELS
    codes = values.reshape(n, 3, -1).long() + offsets
    counts = torch.zeros(n * 3 * LEVELS, dtype=torch.float64, device=values.device)
    counts.scatter_add_(0, codes.flatten(), inside.expand(n, 3, -1).flatten())
    return counts.view(n, 3, LEVELS)


def match_colors_hist(src: torch.Tensor, ref: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`blend.match_color_hist` of a batch: per-channel histogram matching where weight > 0.5.

    src, ref: (N, 3, S, S) whole numbers in [0, 255]; weight: (S, S) float32.
    Returns (N, 3, S, S) float32 whole numbers; `src` when under 16 pixels are inside.
    """
    inside = (weight > 0.5).flatten().double()
    src_hist, ref_hist = _histograms(src, inside), _histograms(ref, inside)
    src_cdf = src_hist.cumsum(-1) / src_hist.sum(-1, keepdim=True)
    ref_cdf = ref_hist.cumsum(-1) / ref_hist.sum(-1, keepdim=True)
    lut = _interp_levels(src_cdf, ref_cdf).round().float()  # (N, 3, 256)
    out = lut.gather(-1, src.reshape(*lut.shape[:2], -1).long()).view_as(src)
    return torch.where(inside.sum() >= 16, out, src)  # no host sync on the count


def match_colors(
    src: torch.Tensor, ref: torch.Tensor, weight: torch.Tensor, method: str = "lab"
) -> torch.Tensor:
    """Colour-match swapped crops to the original crops; `method` is one of `COLOR_CHOICES`."""
    if method == "lab":
        return match_colors_lab(src, ref, weight)
    if method == "hist":
        return match_colors_hist(src, ref, weight)
    if method == "none":
        return src
    raise ValueError(f"color method must be one of {COLOR_CHOICES}, got {method!r}")


def face_rounds(rows: Sequence[int]) -> list[np.ndarray]:
    """Face numbers grouped so no frame is twice in a group: group k = each frame's k-th face."""
    rank = np.zeros(len(rows), dtype=np.int64)
    seen: dict[int, int] = {}
    for n, row in enumerate(rows):
        rank[n] = seen.get(int(row), 0)
        seen[int(row)] = rank[n] + 1
    return [np.flatnonzero(rank == k) for k in range(int(rank.max()) + 1)] if len(rows) else []


def frame_windows(
    frames: torch.Tensor, rows: np.ndarray, boxes: np.ndarray
) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """One window size for a batch of frame boxes (x0, y0, x1, y1), each in a different frame.

    The window is the largest box; each face's window is its box's corner moved back just
    enough to lie inside the frame, so no two pixels of a batch share an address.

    Returns:
        origins: (n, 2) int64 x, y of each window; index: (n, h, w) int64 pixel addresses
        in `frames.reshape(-1, 3)`; inside: (n, h, w) bool, the pixels of the box itself.
    """
    height, width = frames.shape[1:3]
    box_w = max(1, int((boxes[:, 2] - boxes[:, 0]).max()))
    box_h = max(1, int((boxes[:, 3] - boxes[:, 1]).max()))
    origins = np.stack(
        [np.minimum(boxes[:, 0], width - box_w), np.minimum(boxes[:, 1], height - box_h)], 1
    )
    device = frames.device
    spans = torch.as_tensor(np.concatenate([origins, boxes], 1), device=device)  # (n, 6)
    xs = spans[:, 0, None] + torch.arange(box_w, device=device)  # (n, w)
    ys = spans[:, 1, None] + torch.arange(box_h, device=device)  # (n, h)
    row = torch.as_tensor(rows, dtype=torch.long, device=device)[:, None, None]
    index = (row * height + ys[:, :, None]) * width + xs[:, None, :]
    inside_x = (xs >= spans[:, 2, None]) & (xs < spans[:, 4, None])
    inside_y = (ys >= spans[:, 3, None]) & (ys < spans[:, 5, None])
    return origins, index, inside_y[:, :, None] & inside_x[:, None, :]


def crop_grid(
    affines: np.ndarray,
    origins: np.ndarray,
    shape: tuple[int, int],
    size: int,
    device: torch.device,
) -> torch.Tensor:
    """Where each window pixel falls in its `size` crop: a (n, h, w, 2) grid for
    `grid_sample(..., align_corners=True)`. The affine is shifted to the window corner in
    float64 on the host, so float32 only ever holds small numbers."""
    shifted = np.asarray(affines, np.float64).copy()  # (n, 2, 3) frame -> crop
    shifted[:, :, 2] += np.einsum("nij,nj->ni", shifted[:, :, :2], origins.astype(np.float64))
    m = torch.as_tensor(shifted, dtype=torch.float32, device=device)[..., None, None]
    u = torch.arange(shape[1], dtype=torch.float32, device=device)[None, None, :]
    v = torch.arange(shape[0], dtype=torch.float32, device=device)[None, :, None]
    x = m[:, 0, 0] * u + m[:, 0, 1] * v + m[:, 0, 2]
    y = m[:, 1, 0] * u + m[:, 1, 1] * v + m[:, 1, 2]
    return torch.stack([x, y], -1) * (2.0 / (size - 1)) - 1.0


def paste_faces(
    frames: torch.Tensor,
    rows: Sequence[int],
    crops: torch.Tensor,
    masks: torch.Tensor,
    affines: np.ndarray,
) -> None:
    """`blend.paste_back` of every face into its frame, in place.

    Args:
        frames: (F, H, W, 3) uint8, contiguous; rows: (N,) frame of each face.
        crops: (N, 3, S, S) whole numbers in [0, 255]; masks: (N, S, S) in [0, 1].
        affines: (N, 2, 3) frame -> crop, on the host.
    """
    height, width = frames.shape[1:3]
    size = crops.shape[-1]
    rows = np.asarray(rows, dtype=np.int64)
    affines = np.asarray(affines, np.float32).reshape(-1, 2, 3)
    boxes = np.array(
        [paste_region(invert_affine(a), size, height, width) for a in affines], dtype=np.int64
    ).reshape(-1, 4)
    flat = frames.view(-1, 3)
    for faces in face_rounds(rows):
        origins, index, inside = frame_windows(frames, rows[faces], boxes[faces])
        grid = crop_grid(affines[faces], origins, index.shape[1:], size, frames.device)
        pick = torch.as_tensor(faces, device=frames.device)
        sample = dict(mode="bilinear", align_corners=True)
        crop_box = F.grid_sample(crops[pick], grid, padding_mode="border", **sample).round()
        mask_box = F.grid_sample(masks[pick][:, None], grid, padding_mode="zeros", **sample)
        alpha = torch.where((mask_box[:, 0] >= MASK_FLOOR) & inside, mask_box[:, 0], 0.0)
        alpha = alpha[..., None]  # (n, h, w, 1)
        region = gather_pixels(flat, index).float()  # (n, h, w, 3)
        # a convex mix of whole numbers in [0, 255]; where alpha is 0 it is the region exactly
        mixed = crop_box.permute(0, 2, 3, 1) * alpha + region * (1.0 - alpha)
        scatter_pixels(flat, index, mixed.round().to(torch.uint8))
