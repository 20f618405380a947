"""Start a model from another checkpoint's weights: `rayswap train --init`.

The checkpoint may be a pretrained model (`rayswap pretrain`, faces of many people) or
another pair's. What is copied and what starts afresh is one rule per model family,
following DeepFaceLab's switch from pretraining to a pair:

    original  encoder convs, decoder_a and decoder_b copied; the encoder's dense bottleneck
              (encoder.to_latent, encoder.from_latent) and the upscale after it re-initialised
    df        encoder, decoder_a and decoder_b copied; the bottleneck `inter` re-initialised
    liae      encoder and decoder copied; both bottlenecks, inter_ab and inter_b, re-initialised

The encoder already knows where the eyes, mouth and pose are; the decoders know how to
draw a face. A re-initialised bottleneck is learnt again from the pair, so the codes that
separate A from B are not inherited from other people. The original model's bottleneck
lives inside its encoder module, so its parts are named by their dotted paths; the
quality benchmark's pretrained runs measure copying it against re-initialising it
(docs/benchmarks.md).

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
    "original": ("encoder.to_latent", "encoder.from_latent", "encoder.upscale"),
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
    fresh = REINITIALISED[expect.model]
    return InitPlan(
        path=found,
        step=int(config["step"]),
        copied=tuple(name for name in parts if name not in fresh),  # all of it, or but `fresh`
        reinitialised=fresh,
        pretrained=bool(config.get("pretrain")),
    )


def apply_init(model: SwapAutoencoder, plan: InitPlan) -> int:
    """Copy the plan's parts into `model` (in place, on the CPU); returns tensors copied."""
    has_ema = storage.exists(storage.join(plan.path, EMA_FILE))
    state = load_state(plan.path, EMA_FILE if has_ema else MODEL_FILE)
    kept = {k: v for k, v in state.items() if is_copied(k, plan)}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    wrong = [k for k in missing if is_copied(k, plan)] + list(unexpected)
    if wrong:
        raise ValueError(f"--init: {plan.path} lacks or adds weights: {sorted(wrong)[:4]}")
    return len(kept)


def is_copied(key: str, plan: InitPlan) -> bool:
    """Whether the state-dict entry `key` comes from the plan's checkpoint."""
    return key.split(".", 1)[0] in plan.copied and not _under(key, plan.reinitialised)


def _under(key: str, parts: tuple[str, ...]) -> bool:
    return any(key == part or key.startswith(part + ".") for part in parts)


def encoder_parameters(
    model: SwapAutoencoder, fresh: tuple[str, ...] = ()
) -> list[torch.nn.Parameter]:
    """The parameters `--freeze-encoder-steps` holds still: the encoder's, but those of
    `fresh` (an --init plan's re-initialised parts, which must learn from the start)."""
    return [
        p
        for part in ENCODER_PARTS
        for name, p in getattr(model, part).named_parameters(prefix=part)
        if not _under(name, fresh)
    ]
