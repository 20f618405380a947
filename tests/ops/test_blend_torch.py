"""The torch paste-back path against its cv2 twin: crops, masks, colour, paste, watermark."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ops.align import estimate_affine, warp_face
from ops.blend import blend_mask, match_color, paste_back, template_oval
from ops.blend_torch import (
    blend_masks,
    crop_faces,
    face_rounds,
    match_colors,
    paste_faces,
)
from ops.watermark import embed_watermark
from ops.watermark_torch import embed_watermarks

SIZE = 64
# two overlapping faces in frame 0 (one half out of the frame), one face in frame 1
LANDMARKS = np.array([[90, 100], [150, 100], [120, 135], [95, 165], [145, 165]], np.float32)
FACES = [(0, LANDMARKS), (0, LANDMARKS * 0.8 + [-60, 40]), (1, LANDMARKS + [20, -10])]


def _frames() -> np.ndarray:
    """Two smooth (240, 256, 3) frames: a scene with a grain the warps have to interpolate."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (2, 60, 64, 3), dtype=np.uint8)
    return np.stack([cv2.resize(n, (256, 240), interpolation=cv2.INTER_CUBIC) for n in noise])


def _crops(frames: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    affines = np.stack([estimate_affine(points, SIZE) for _, points in FACES])
    crops = [warp_face(frames[row], a, SIZE) for (row, _), a in zip(FACES, affines, strict=True)]
    return affines, crops


def _tensor(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()


def _learned(count: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    noise = rng.random((count, SIZE, SIZE)).astype(np.float32)
    return np.stack([cv2.GaussianBlur(n, (0, 0), 2.0) * 1.6 - 0.3 for n in noise]).clip(0, 1)


def test_crop_faces_matches_warp_face_with_reflected_border() -> None:
    frames = _frames()
    affines, crops = _crops(frames)
    rows = [row for row, _ in FACES]
    got = crop_faces(torch.from_numpy(frames), rows, affines, SIZE).permute(0, 2, 3, 1).numpy()
    diff = np.abs(got - np.stack(crops))
    assert diff.max() <= 1 and diff.mean() < 0.01  # the odd rounding tie


@pytest.mark.parametrize("erode, feather", [(0.03, 0.05), (0.1, 0.0), (0.0, 0.12), (0.0, 0.0)])
def test_blend_masks_matches_blend_mask(erode, feather) -> None:
    learned, oval = _learned(3), template_oval(SIZE, 1.5)
    want = np.stack([blend_mask(m, oval, erode, feather) for m in learned])
    got = blend_masks(torch.from_numpy(learned), torch.from_numpy(oval), erode, feather).numpy()
    assert np.abs(got - want).max() < 1e-5
    assert np.array_equal(got == 0, want == 0)  # the same pixels are left alone


def test_match_colors_matches_match_color_for_every_method() -> None:
    frames = _frames()
    _, refs = _crops(frames)
    srcs = [np.clip(c.astype(int) // 2 + [60, 20, 0], 0, 255).astype(np.uint8) for c in refs]
    oval = template_oval(SIZE, 1.5)
    for method in ("lab", "hist", "none"):
        want = np.stack([match_color(s, r, oval, method) for s, r in zip(srcs, refs, strict=True)])
        got = match_colors(_tensor(srcs), _tensor(refs), torch.from_numpy(oval), method)
        diff = np.abs(got.permute(0, 2, 3, 1).numpy() - want)
        assert diff.max() <= 1 and diff.mean() < 0.01, method
    empty = torch.zeros(SIZE, SIZE)  # under 16 pixels to measure: hist leaves the crop alone
    assert torch.equal(match_colors(_tensor(srcs), _tensor(refs), empty, "hist"), _tensor(srcs))
    with pytest.raises(ValueError, match="color method"):
        match_colors(_tensor(srcs), _tensor(refs), empty, "rgb")


def test_paste_faces_matches_paste_back_face_after_face() -> None:
    frames = _frames()
    affines, crops = _crops(frames)
    swapped = [np.clip(c.astype(int) + 40, 0, 255).astype(np.uint8) for c in crops]
    oval = template_oval(SIZE, 1.5)
    masks = [blend_mask(m, oval) for m in _learned(len(FACES))]
    want = frames.copy()
    for (row, _), crop, mask, affine in zip(FACES, swapped, masks, affines, strict=True):
        want[row] = paste_back(want[row], crop, mask, affine)
    got = torch.from_numpy(frames.copy())
    rows = [row for row, _ in FACES]
    paste_faces(got, rows, _tensor(swapped), torch.from_numpy(np.stack(masks)), affines)
    diff = np.abs(got.numpy().astype(int) - want)
    assert diff.max() <= 1 and (diff > 0).sum() < 20
    assert (want != frames).sum() > 10000  # (the faces overlap and one is cut by the edge)
    assert face_rounds(rows) and [list(r) for r in face_rounds(rows)] == [[0, 2], [1]]


def test_paste_faces_with_zero_masks_leaves_frames_unchanged() -> None:
    frames = _frames()
    affines, crops = _crops(frames)
    got = torch.from_numpy(frames.copy())
    zeros = torch.zeros(len(FACES), SIZE, SIZE)
    paste_faces(got, [row for row, _ in FACES], _tensor(crops) * 0, zeros, affines)
    assert np.array_equal(got.numpy(), frames)


def test_embed_watermarks_matches_embed_watermark() -> None:
    frames = _frames()
    want = frames.copy()
    for row, points in FACES:
        want[row] = embed_watermark(want[row], points, "a key", 4.0)
    got = torch.from_numpy(frames.copy())
    embed_watermarks(got, [r for r, _ in FACES], [p for _, p in FACES], "a key", 4.0)
    diff = np.abs(got.numpy().astype(int) - want)
    assert (want != frames).sum() > 5000  # the mark is there
    assert diff.max() <= 1 and diff.mean() < 0.001
    embed_watermarks(got, [], [])  # no face: nothing to do
