"""TensorBoard event files of a training run: `tensorboard --logdir OUT`.

Rank 0 writes, with the tensorboardX writer that Ray Train installs: every metrics line's
numbers as scalars (losses, learning rate, images/s, data wait) and the preview grid at
every checkpoint. Under a local --out the events go to OUT/tensorboard/ as they are
written; under an object-store --out they are written to a local folder and copied to
OUT/tensorboard/ at every checkpoint.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import cv2
import numpy as np

from ops import storage

BOARD_DIR = "tensorboard"
NOT_SCALARS = ("step", "time", "holdout", "error")


class RunBoard:
    """One run's TensorBoard writer (rank 0 only)."""

    def __init__(self, out: str) -> None:
        from tensorboardX import SummaryWriter

        self.remote = storage.join(out, BOARD_DIR) if storage.is_uri(out) else None
        self._temp = tempfile.TemporaryDirectory(prefix="rayswap-board-") if self.remote else None
        local = self._temp.name if self._temp else storage.join(out, BOARD_DIR)
        self.writer = SummaryWriter(logdir=local, flush_secs=30)
        self.local = local

    def scalars(self, record: dict[str, Any]) -> None:
        """Each number of a metrics line (or a held-out score), at its step: under train/,
        or holdout/ for the held-out swap numbers."""
        step = int(record["step"])
        for name, value in record.items():
            if name in NOT_SCALARS or not isinstance(value, int | float):
                continue
            group, _, short = name.partition("holdout_")
            tag = f"holdout/{short}" if not group and short else f"train/{name}"
            self.writer.add_scalar(tag, float(value), step)

    def image(self, name: str, step: int, png: bytes) -> None:
        picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)
        self.writer.add_image(name, rgb, step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()
        if self.remote is None:
            return
        for name in os.listdir(self.local):
            with open(os.path.join(self.local, name), "rb") as handle:
                storage.write_bytes_atomic(storage.join(self.remote, name), handle.read())

    def close(self) -> None:
        self.flush()
        self.writer.close()
        if self._temp is not None:
            self._temp.cleanup()
