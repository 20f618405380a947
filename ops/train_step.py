"""One optimisation step of the swap model, free of Ray so it runs in a CPU unit test.

A batch of one side is a dict of tensors from `ops.augment.augment_batch`:
"warped" and "target" (B, 3, R, R), "face" and "features" (B, 1, R, R), float32 in [0, 1].
The model sees the warped faces and must reproduce the unwarped targets.

Mixed precision: only the model's forward pass runs under autocast (bf16 on GPU, and on
CPU as its stand-in); the losses run in float32 outside it. SSIM's variance terms are
differences of blurred squares, E[x^2] - E[x]^2, which cancel catastrophically in bf16.
`train_step` returns the losses as device tensors, so a step never waits for the device;
`LossWindow` adds them up there and is read once per log interval.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ops.losses import side_loss

Batch = dict[str, torch.Tensor]
NO_BAD_STEP = 2**62  # "no non-finite loss yet", larger than any step
PRECISION_CHOICES = ("auto", "bf16", "fp32")  # see `autocast_dtype_for`


def autocast_dtype_for(precision: str, gpu: bool) -> torch.dtype | None:
    """The `autocast_dtype` of a precision setting (one of `PRECISION_CHOICES`).

    "bf16": torch.bfloat16; "fp32": None (float32 throughout); "auto": bf16 on a GPU,
    float32 on the CPU.
    """
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {PRECISION_CHOICES}, got {precision!r}")
    mixed = precision == "bf16" or (precision == "auto" and gpu)
    return torch.bfloat16 if mixed else None


def loss_fn(
    model: nn.Module,
    batch_a: Batch,
    batch_b: Batch,
    autocast_dtype: torch.dtype | None = None,
    loss: str = "classic",
    eye_mouth_weight: float | None = None,
) -> tuple[torch.Tensor, ...]:
    """(total, loss_a, loss_b), float32: forward under autocast (if given), losses outside it.

    loss: one of `ops.losses.LOSSES`, the loss of each side; eye_mouth_weight: as in
    `ops.losses.side_loss`.
    """
    device_type = batch_a["warped"].device.type
    autocast = (
        torch.autocast(device_type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with autocast:
        rgb_a, mask_a, rgb_b, mask_b = model(batch_a["warped"], batch_b["warped"])
    loss_a, loss_b = (
        side_loss(loss, rgb, mask, side["target"], side["face"], side["features"], eye_mouth_weight)
        for rgb, mask, side in ((rgb_a, mask_a, batch_a), (rgb_b, mask_b, batch_b))
    )
    return loss_a + loss_b, loss_a, loss_b


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_a: Batch,
    batch_b: Batch,
    autocast_dtype: torch.dtype | None = None,
    loss: str = "classic",
    hold: Sequence[nn.Parameter] = (),
    eye_mouth_weight: float | None = None,
) -> torch.Tensor:
    """Forward both sides, backward, step; returns (3,) float32 [loss, loss_a, loss_b].

    The result stays on the batch's device (no host sync). autocast_dtype: e.g.
    torch.bfloat16 for mixed precision; None runs in float32. loss, eye_mouth_weight: as in
    `loss_fn`.
    hold: parameters this step leaves as they are (their gradients are dropped after the
    backward pass, which under DDP has already averaged them; Adam skips a parameter
    without a gradient, its moments included).
    """
    optimizer.zero_grad(set_to_none=True)
    total, loss_a, loss_b = loss_fn(model, batch_a, batch_b, autocast_dtype, loss, eye_mouth_weight)
    total.backward()
    for parameter in hold:
        parameter.grad = None
    optimizer.step()
    return torch.stack([total, loss_a, loss_b]).detach()


def make_optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam with the original method's betas (0.5, 0.999); the fused kernel on CUDA.

    Build it after the model is on its device: `fused` is chosen from where the
    parameters are.
    """
    on_cuda = all(p.is_cuda for p in model.parameters())
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999), fused=on_cuda)


def prepare_for_steps(
    model: nn.Module,
    channels_last: bool = False,
    compile_model: bool = False,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
) -> tuple[nn.Module, nn.Module]:
    """(wrapped model, the module to call in `train_step`) for `model`.

    channels_last: store conv weights NHWC (faster convolutions on GPU; feed NHWC inputs).
    wrap: e.g. DDP; compile_model: torch.compile the wrapped module. Checkpoints should
    save `model` itself, whose state-dict keys never depend on wrap or compile.
    """
    if channels_last:
        model.to(memory_format=torch.channels_last)
    wrapped = wrap(model) if wrap is not None else model
    return wrapped, torch.compile(wrapped) if compile_model else wrapped


class LossWindow:
    """Sums of the losses since the last read, and the first step whose loss was not finite.

    Everything stays on the device; `add` never syncs. `read` (once per log interval)
    returns the window's mean losses as floats and starts a new window.
    """

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(3, device=device)
        self.steps = 0
        self.first_bad = torch.full((), NO_BAD_STEP, dtype=torch.int64, device=device)

    def add(self, losses: torch.Tensor, step: int) -> None:
        """Add one step's (3,) losses; remember `step` if they are not finite."""
        self.sums += losses
        bad = ~torch.isfinite(losses).all()
        self.first_bad = torch.where(
            bad,
            torch.minimum(self.first_bad, torch.tensor(step, device=bad.device)),
            self.first_bad,
        )
        self.steps += 1

    def read(self) -> dict[str, float]:
        """{"loss", "loss_a", "loss_b"}: means over the window (one host sync)."""
        means = (self.sums / max(self.steps, 1)).tolist()
        self.sums.zero_()
        self.steps = 0
        return dict(zip(("loss", "loss_a", "loss_b"), means, strict=True))

    def bad_step(self) -> int | None:
        """The first step with a non-finite loss seen by this window's owner, or None."""
        step = int(self.first_bad.item())
        return None if step == NO_BAD_STEP else step
