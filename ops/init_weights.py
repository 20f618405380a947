"""Start a model from another checkpoint's weights: `rayswap train --init`.

The checkpoint may be a pretrained model (`rayswap pretrain`, faces of many people) or
another pair's. What is copied and what starts afresh is one rule per model family,
following DeepFaceLab's switch from pretraining to a pair:

    original  every part is copied: encoder (with its dense bottleneck), decoder_a, decoder_b
    df        encoder, decoder_a and decoder_b copied; the bottleneck `inter` re-initialised
    liae      encoder and decoder copied; both bottlenecks, inter_ab and inter_b, re-initialised

The encoder already knows where the eyes, mouth and pose are; the decoders know how to
draw a face. A re-initialised bottleneck is learnt again from the pair, so the codes that
separate A from B are not inherited from other people. The original model has no
separate bottleneck to re-initialise (its dense layers are part of the encoder).

The source's weight average (ema.pt) is taken when it has one, as render would take it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ops import storage
from ops.checkpoint import (
    EMA_FILE,
    MODEL_FILE,
    check_compatible,
    find_latest_checkpoint,
    load_state,
    model_config,
    read_checkpoint_config,
)
from ops.model import ModelConfig, SwapAutoencoder

REINITIALISED: dict[str, tuple[str, ...]] = {
    "original": (),
    "df": ("inter",),
    "liae": ("inter_ab", "inter_b"),
}
ENCODER_PARTS = ("encoder",)  # what `--freeze-encoder-steps` holds still


@dataclass(frozen=True)
class InitPlan:
    """Where a run's first weights come from (recorded in its checkpoints' config)."""

    path: str  # the checkpoint directory
    step: int  # its step
    copied: tuple[str, ...]  # parts taken from it
    reinitialised: tuple[str, ...]  # parts left at their fresh initialisation
    pretrained: bool  # made by `rayswap pretrain`

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "step": self.step,
            "copied": list(self.copied),
            "reinitialised": list(self.reinitialised),
            "pretrained": self.pretrained,
        }


def plan_init(path: str, expect: ModelConfig) -> InitPlan:
    """Check that the checkpoint at `path` (or the latest under a run folder) holds the
    model `expect` (family, resolution, sizes); ValueError / FileNotFoundError otherwise."""
    found = find_latest_checkpoint(path)
    if found is None:
        raise FileNotFoundError(f"{path} is not a checkpoint nor a run folder with one")
    config = read_checkpoint_config(found)
    check_compatible(model_config(config, found), expect, found)
    parts = [name for name, _ in SwapAutoencoder(expect).named_children()]
    fresh = tuple(name for name in parts if name in REINITIALISED[expect.model])
    return InitPlan(
        path=found,
        step=int(config["step"]),
        copied=tuple(name for name in parts if name not in fresh),
        reinitialised=fresh,
        pretrained=bool(config.get("pretrain")),
    )


def apply_init(model: SwapAutoencoder, plan: InitPlan) -> int:
    """Copy the plan's parts into `model` (in place, on the CPU); returns tensors copied."""
    has_ema = storage.exists(storage.join(plan.path, EMA_FILE))
    state = load_state(plan.path, EMA_FILE if has_ema else MODEL_FILE)
    kept = {k: v for k, v in state.items() if k.split(".", 1)[0] in plan.copied}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    wrong = [k for k in missing if k.split(".", 1)[0] in plan.copied] + list(unexpected)
    if wrong:
        raise ValueError(f"--init: {plan.path} lacks or adds weights: {sorted(wrong)[:4]}")
    return len(kept)


def encoder_parameters(model: SwapAutoencoder) -> list[torch.nn.Parameter]:
    """The parameters `--freeze-encoder-steps` holds still."""
    return [p for name in ENCODER_PARTS for p in getattr(model, name).parameters()]
