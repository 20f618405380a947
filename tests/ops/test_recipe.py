"""The training recipe: learning-rate phases, the warp phase, and the weight average."""

from __future__ import annotations

import math

import pytest
import torch

from ops.checkpoint import load_state, save_checkpoint
from ops.model import ModelConfig, SwapAutoencoder
from ops.recipe import Recipe, make_ema, set_lr, unwarp, update_ema

TINY = ModelConfig(resolution=64, width=4, latent_dim=16)


def test_no_warmup_and_constant_decay_is_a_constant_lr():
    recipe = Recipe(steps=100, lr=3e-4)
    assert {recipe.lr_at(step) for step in range(100)} == {3e-4}


def test_warmup_rises_linearly_to_the_peak():
    recipe = Recipe(steps=100, lr=1e-3, warmup_steps=10)
    assert recipe.lr_at(0) == pytest.approx(1e-4)
    assert recipe.lr_at(4) == pytest.approx(5e-4)
    assert recipe.lr_at(9) == pytest.approx(1e-3) and recipe.lr_at(50) == 1e-3


def test_cosine_decay_reaches_the_floor_at_the_last_step():
    recipe = Recipe(steps=111, lr=1e-3, warmup_steps=10, lr_decay="cosine", lr_floor=0.1)
    assert recipe.lr_at(10) == pytest.approx(1e-3)  # decay starts at the peak
    assert recipe.lr_at(60) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # halfway: the mean
    assert recipe.lr_at(35) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))))
    assert recipe.lr_at(110) == pytest.approx(1e-4)  # the last update
    assert recipe.lr_at(500) == pytest.approx(1e-4)  # a rerun past --steps stays there
    rates = [recipe.lr_at(step) for step in range(10, 111)]
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:], strict=False))


def test_linear_decay_falls_evenly_to_the_floor():
    recipe = Recipe(steps=101, lr=1e-3, lr_decay="linear", lr_floor=0.0)
    assert recipe.lr_at(0) == pytest.approx(1e-3)
    assert recipe.lr_at(25) == pytest.approx(7.5e-4)
    assert recipe.lr_at(100) == pytest.approx(0.0, abs=1e-12)


def test_set_lr_sets_every_group():
    model = SwapAutoencoder(TINY)
    optimizer = torch.optim.Adam(
        [{"params": model.encoder.parameters()}, {"params": model.decoder_a.parameters()}]
    )
    set_lr(optimizer, 0.25)
    assert [group["lr"] for group in optimizer.param_groups] == [0.25, 0.25]


def test_warp_is_off_for_the_last_share_of_the_steps():
    recipe = Recipe(steps=100, lr=1e-4, warp_off_share=0.2)
    assert [recipe.warp_at(step) for step in (0, 79, 80, 99, 150)] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert all(Recipe(steps=100, lr=1e-4).warp_at(step) for step in range(100))


def test_unwarp_feeds_the_target_itself():
    batch = {"warped": torch.zeros(1, 3, 4, 4), "target": torch.ones(1, 3, 4, 4)}
    plain = unwarp(batch)
    assert plain["warped"] is batch["target"] and torch.equal(
        batch["warped"], torch.zeros(1, 3, 4, 4)
    )


def test_recipe_rejects_bad_settings():
    with pytest.raises(ValueError, match="lr_decay"):
        Recipe(steps=10, lr=1e-4, lr_decay="step")
    with pytest.raises(ValueError, match="ema_decay"):
        Recipe(steps=10, lr=1e-4, ema_decay=1.0)


def _perturb(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator))


def test_update_ema_is_the_running_average_of_the_weights():
    torch.manual_seed(0)
    recipe = Recipe(steps=100, lr=1e-4, ema_decay=0.5)
    model = SwapAutoencoder(TINY)
    ema = make_ema(model)
    assert not any(p.requires_grad for p in ema.parameters())
    key = "encoder.to_latent.weight"
    expected = model.state_dict()[key].clone()
    for step in range(1, 6):
        _perturb(model, step)
        decay = min(0.5, (1 + step) / (10 + step))  # 2/11, 3/12, 4/13, 0.5, 0.5
        assert recipe.ema_decay_at(step) == pytest.approx(decay)
        expected = decay * expected + (1 - decay) * model.state_dict()[key]
        update_ema(ema, model, recipe.ema_decay_at(step))
    assert torch.allclose(ema.state_dict()[key], expected, atol=1e-6)
    assert not torch.allclose(ema.state_dict()[key], model.state_dict()[key])


def test_weight_average_resumed_from_a_checkpoint_continues_unchanged(tmp_path):
    """Saved as ema.pt at step 3 and restored: steps 4-6 give the average of an unbroken run."""
    recipe = Recipe(steps=10, lr=1e-4, ema_decay=0.9)
    torch.manual_seed(0)
    model = SwapAutoencoder(TINY)
    ema = make_ema(model)
    for step in range(1, 7):
        _perturb(model, step)
        update_ema(ema, model, recipe.ema_decay_at(step))
        if step == 3:
            save_checkpoint(str(tmp_path / "ck"), model, step, 1.5, 64, ema=ema)
    resumed = SwapAutoencoder(TINY)
    resumed.load_state_dict(load_state(str(tmp_path / "ck"), "model.pt"))
    resumed_ema = make_ema(resumed)
    resumed_ema.load_state_dict(load_state(str(tmp_path / "ck"), "ema.pt"))
    for step in range(4, 7):
        _perturb(resumed, step)
        update_ema(resumed_ema, resumed, recipe.ema_decay_at(step))
    for key, value in ema.state_dict().items():
        assert torch.allclose(resumed_ema.state_dict()[key], value, atol=1e-6)
