"""The training recipe: what changes during a run, as pure functions of the step, and the EMA.

A run of `steps` optimizer updates passes through phases that depend on the step alone,
so a resumed run is in the phase the interrupted run was in, whatever the restart:
- learning rate: a linear warm-up over the first `warmup_steps` (lr / warmup_steps up to
  lr), then constant, or a cosine or linear decay that reaches lr * `lr_floor` at the last
  update (`LR_DECAYS`). No warm-up and "constant" is a plain constant lr.
- random warp: on, then off for the last `warp_off_share` of the steps. Without the warp
  the model sees the very faces it must draw, which sharpens detail the warped phase
  only blurs (DeepFaceLab's last phase); 0 keeps the warp on throughout.
- weight average: with `ema_decay` > 0 an exponential moving average of the weights is
  kept beside them (`make_ema`, `update_ema`). The decay of update k is
  min(ema_decay, (1 + k) / (10 + k)), so the average follows the weights closely at first
  instead of remembering the random initial ones for thousands of steps. It is a
  function of the weights after each update, which DDP keeps equal on every rank, so
  every rank holds the same average. Checkpoints save it (ema.pt) and inference uses it.

Steps count the updates done: the update from `step` to `step + 1` uses `lr_at(step)` and
`warp_at(step)`, and the average is updated with `ema_decay_at(step + 1)` after it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

LR_DECAYS = ("constant", "cosine", "linear")
ModuleT = TypeVar("ModuleT", bound=nn.Module)


@dataclass(frozen=True)
class Recipe:
    """The phase settings of a run of `steps` updates; see the module docstring."""

    steps: int
    lr: float
    warmup_steps: int = 0
    lr_decay: str = "constant"
    lr_floor: float = 0.1  # fraction of lr reached at the last update ("cosine", "linear")
    warp_off_share: float = 0.0
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {self.lr_decay!r}")
        if not (0.0 <= self.warp_off_share < 1.0 and 0.0 <= self.ema_decay < 1.0):
            raise ValueError(
                f"warp_off_share and ema_decay must be in [0, 1), got {self.warp_off_share}, "
                f"{self.ema_decay}"
            )

    def lr_at(self, step: int) -> float:
        """Learning rate of the update from `step` (0-based) to `step + 1`."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.lr_decay == "constant":
            return self.lr
        span = max(1, self.steps - 1 - self.warmup_steps)  # the last update is at steps - 1
        progress = min(1.0, (step - self.warmup_steps) / span)
        if self.lr_decay == "cosine":
            left = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            left = 1.0 - progress
        return self.lr * (self.lr_floor + (1.0 - self.lr_floor) * left)

    def warp_at(self, step: int) -> bool:
        """Whether the update from `step` trains on randomly warped inputs."""
        return step < self.steps - round(self.warp_off_share * self.steps)

    def ema_decay_at(self, step: int) -> float:
        """Decay of the average after update number `step` (1-based); 0 when there is none."""
        return min(self.ema_decay, (1.0 + step) / (10.0 + step))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (a float: no device work)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def unwarp(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch of `ops.augment.augment_batch` with its input the unwarped target."""
    return {**batch, "warped": batch["target"]}


def make_ema(model: ModuleT) -> ModuleT:
    """A copy of `model` (same device, layout and state-dict keys) to hold its average."""
    return copy.deepcopy(model).requires_grad_(False).eval()


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for every parameter; buffers are copied.

    Runs on the weights' device without a host sync.
    """
    for average, weight in zip(ema.parameters(), model.parameters(), strict=True):
        average.lerp_(weight.detach(), 1.0 - decay)
    for average, value in zip(ema.buffers(), model.buffers(), strict=True):
        average.copy_(value)
