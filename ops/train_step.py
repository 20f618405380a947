"""One optimisation step of the swap model, free of Ray so it runs in a CPU unit test.

A batch of one side is a dict of tensors from `ops.augment.augment_batch`:
"warped" and "target" (B, 3, R, R), "face" and "features" (B, 1, R, R), float32 in [0, 1].
The model sees the warped faces and must reproduce the unwarped targets.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ops.losses import swap_loss

Batch = dict[str, torch.Tensor]


def loss_fn(model: nn.Module, batch_a: Batch, batch_b: Batch) -> tuple[torch.Tensor, ...]:
    """(total, loss_a, loss_b) for one forward of both sides through `model` (maybe DDP)."""
    rgb_a, mask_a, rgb_b, mask_b = model(batch_a["warped"], batch_b["warped"])
    loss_a = swap_loss(rgb_a, mask_a, batch_a["target"], batch_a["face"], batch_a["features"])
    loss_b = swap_loss(rgb_b, mask_b, batch_b["target"], batch_b["face"], batch_b["features"])
    return loss_a + loss_b, loss_a, loss_b


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_a: Batch,
    batch_b: Batch,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Forward both sides, backward, step; returns {"loss", "loss_a", "loss_b"} as floats.

    autocast_dtype: e.g. torch.bfloat16 on GPU (mixed precision); None runs in float32.
    """
    device_type = batch_a["warped"].device.type
    autocast = (
        torch.autocast(device_type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    optimizer.zero_grad(set_to_none=True)
    with autocast:
        total, loss_a, loss_b = loss_fn(model, batch_a, batch_b)
    total.backward()
    optimizer.step()
    return {"loss": total.item(), "loss_a": loss_a.item(), "loss_b": loss_b.item()}


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam with the original method's betas (0.5, 0.999)."""
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
