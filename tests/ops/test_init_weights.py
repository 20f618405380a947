"""--init: which parts come from the source checkpoint, per model family; the encoder hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ops.align import template_landmarks
from ops.augment import augment_batch
from ops.checkpoint import save_checkpoint
from ops.init_weights import (
    REINITIALISED,
    apply_init,
    encoder_parameters,
    is_copied,
    plan_init,
)
from ops.model import ModelConfig, SwapAutoencoder
from ops.train_step import make_optimizer, train_step

SIZES = {
    "original": {"width": 4, "latent_dim": 16},
    "df": {"encoder_dims": 4, "decoder_dims": 4, "mask_dims": 2, "latent_dim": 16},
    "liae": {"encoder_dims": 4, "decoder_dims": 4, "mask_dims": 2, "latent_dim": 16},
}


def _config(model: str, resolution: int = 64) -> ModelConfig:
    return ModelConfig(model=model, resolution=resolution, **SIZES[model])


def _saved(tmp_path, model: str, seed: int, **extra) -> tuple[str, SwapAutoencoder]:
    torch.manual_seed(seed)
    source = SwapAutoencoder(_config(model))
    path = save_checkpoint(str(tmp_path / model), source, 7, coverage=1.5, size=64, **extra)
    return path, source


@pytest.mark.parametrize("model", ["original", "df", "liae"])
def test_init_copies_every_part_but_the_family_bottlenecks(tmp_path, model):
    path, source = _saved(tmp_path, model, seed=1, extra={"pretrain": {"cap": 3}})
    plan = plan_init(str(tmp_path / model), _config(model))
    assert plan.path == path and plan.step == 7 and plan.pretrained
    assert plan.reinitialised == REINITIALISED[model]
    torch.manual_seed(2)
    fresh = SwapAutoencoder(_config(model))
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    copied = apply_init(fresh, plan)
    assert copied == sum(1 for k in before if is_copied(k, plan)) > 0
    for key, value in fresh.state_dict().items():
        want = source.state_dict()[key] if is_copied(key, plan) else before[key]
        assert torch.equal(value, want), key
    named = {name for name, _ in fresh.named_modules()}
    assert set(plan.reinitialised) <= named and set(plan.copied) <= named
    assert any(not is_copied(k, plan) for k in before)  # every family learns its bottleneck
    assert {k.split(".")[0] for k in before} == set(plan.copied) | {
        part.split(".")[0] for part in plan.reinitialised
    }


def test_init_refuses_another_model_or_resolution(tmp_path):
    _saved(tmp_path, "df", seed=1)
    with pytest.raises(ValueError, match="model='df'"):
        plan_init(str(tmp_path / "df"), _config("liae"))
    with pytest.raises(ValueError, match="resolution=64"):
        plan_init(str(tmp_path / "df"), _config("df", resolution=128))
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        plan_init(str(tmp_path), _config("df"))


def test_held_parameters_stay_still_while_the_rest_learns():
    torch.manual_seed(0)
    model = SwapAutoencoder(_config("df"))
    optimizer = make_optimizer(model, 1e-3)
    encoder = [p.detach().clone() for p in encoder_parameters(model)]
    decoder = [p.detach().clone() for p in model.decoder_a.parameters()]
    faces = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    landmarks = torch.from_numpy(np.stack([template_landmarks(64).reshape(-1)] * 2))
    batch = augment_batch(faces, landmarks, 1.5, torch.Generator().manual_seed(0))
    train_step(model, optimizer, batch, batch, hold=encoder_parameters(model))
    assert all(torch.equal(p, q) for p, q in zip(encoder_parameters(model), encoder, strict=True))
    assert not all(
        torch.equal(p, q) for p, q in zip(model.decoder_a.parameters(), decoder, strict=True)
    )
    train_step(model, optimizer, batch, batch)  # no hold: the encoder moves too
    assert not all(
        torch.equal(p, q) for p, q in zip(encoder_parameters(model), encoder, strict=True)
    )


def test_a_re_initialised_part_of_the_encoder_is_not_held():
    model = SwapAutoencoder(_config("original"))
    fresh = REINITIALISED["original"]
    held = {id(p) for p in encoder_parameters(model, fresh)}
    assert held and {id(p) for p in model.encoder.convs.parameters()} <= held
    assert not held & {id(p) for p in model.encoder.to_latent.parameters()}
    assert len(held) < len(list(model.encoder.parameters()))
