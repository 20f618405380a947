"""The preview grid saved with every checkpoint: A, A->A, A->B, B, B->B, B->A per row.

Rows pair the i-th held-back face of A with the i-th of B. Faces are (K, R, R, 3) uint8
RGB; the grid is (K * R, 6 * R, 3) uint8 RGB, encoded as PNG bytes.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ops.model import SwapAutoencoder
from ops.types import Frame

COLUMNS = ("A", "A->A", "A->B", "B", "B->B", "B->A")


def faces_to_tensor(faces: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, R, R, 3) uint8 -> (N, 3, R, R) float32 in [0, 1]."""
    return torch.from_numpy(np.array(faces, copy=True)).to(device).permute(0, 3, 1, 2).float() / 255


def tensor_to_faces(images: torch.Tensor) -> np.ndarray:
    """(N, 3, R, R) float in [0, 1] -> (N, R, R, 3) uint8."""
    scaled = (images.detach().float().clamp(0, 1) * 255).round().byte()
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def preview_grid(model: SwapAutoencoder, faces_a: np.ndarray, faces_b: np.ndarray) -> Frame:
    """Run both directions on the held-back faces and tile them, (K * R, 6 * R, 3) uint8."""
    count = min(len(faces_a), len(faces_b))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x_a, x_b = faces_to_tensor(faces_a[:count], device), faces_to_tensor(faces_b[:count], device)
    columns = [
        x_a,
        model.swap(x_a, to="a")[0],
        model.swap(x_a, to="b")[0],
        x_b,
        model.swap(x_b, to="b")[0],
        model.swap(x_b, to="a")[0],
    ]
    model.train(was_training)
    tiles = [tensor_to_faces(c) for c in columns]  # 6 x (K, R, R, 3)
    return np.concatenate([np.concatenate(row, axis=1) for row in zip(*tiles, strict=True)])


def encode_png(image: Frame) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 RGB image."""
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"could not encode a {image.shape} image as PNG")
    return buffer.tobytes()
