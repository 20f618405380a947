"""Decoded training faces held on the training device, sampled in shuffled epochs.

When a worker's share of the faces fits in device memory, it is copied there once and
every batch is drawn there: no host work, no transfer, nothing for the GPU to wait on.
Faces are (N, R, R, 3) uint8 RGB and landmarks (N, 10) float32 in crop pixels.
"""

from __future__ import annotations

import torch

FACE_ROW_EXTRA_BYTES = 10 * 4  # landmarks beside each face's R * R * 3 bytes


def faces_nbytes(rows: int, resolution: int) -> int:
    """Bytes that `rows` faces at `resolution` px take on the device."""
    return rows * (resolution * resolution * 3 + FACE_ROW_EXTRA_BYTES)


class FaceBank:
    """Faces on one device; `sample` returns the next batch of a random epoch order.

    Each epoch is a fresh permutation drawn from `generator` (on the same device); the
    last partial batch of an epoch is dropped, so every batch has `batch_size` faces.
    """

    def __init__(
        self, faces: torch.Tensor, landmarks: torch.Tensor, generator: torch.Generator
    ) -> None:
        if faces.ndim != 4 or faces.dtype != torch.uint8 or faces.shape[-1] != 3:
            raise ValueError(f"faces must be uint8 (N, R, R, 3), got {faces.dtype} {faces.shape}")
        if landmarks.shape != (faces.shape[0], 10):
            raise ValueError(f"landmarks must be ({faces.shape[0]}, 10), got {landmarks.shape}")
        self.faces, self.landmarks = faces, landmarks.float()
        self.generator = generator
        self.order = torch.empty(0, dtype=torch.int64, device=faces.device)
        self.position = 0
        self.epochs = 0

    def __len__(self) -> int:
        return self.faces.shape[0]

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(faces (B, R, R, 3) uint8, landmarks (B, 10) float32), drawn without host sync."""
        if batch_size > len(self):
            raise ValueError(f"batch of {batch_size} from only {len(self)} faces")
        if self.position + batch_size > self.order.numel():
            self.order = torch.randperm(
                len(self), generator=self.generator, device=self.faces.device
            )
            self.position = 0
            self.epochs += 1
        pick = self.order[self.position : self.position + batch_size]
        self.position += batch_size
        return self.faces[pick], self.landmarks[pick]
