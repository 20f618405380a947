"""SwapAutoencoder: shapes at each resolution, the swap path, config round trips."""

from __future__ import annotations

import pytest
import torch

from ops.model import DIRECTIONS, RESOLUTIONS, ModelConfig, SwapAutoencoder, swap_target


@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_swap_autoencoder_output_shapes_match_input(resolution):
    model = SwapAutoencoder(ModelConfig(resolution=resolution, width=4, latent_dim=16))
    faces = torch.rand(2, 3, resolution, resolution)
    rgb_a, mask_a, rgb_b, mask_b = model(faces, faces)
    for rgb, mask in ((rgb_a, mask_a), (rgb_b, mask_b)):
        assert rgb.shape == (2, 3, resolution, resolution)
        assert mask.shape == (2, 1, resolution, resolution)
        assert 0.0 <= float(rgb.min()) and float(rgb.max()) <= 1.0
        assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0


def test_swap_uses_the_named_decoder():
    torch.manual_seed(0)
    model = SwapAutoencoder(ModelConfig(resolution=64, width=4, latent_dim=16)).eval()
    faces = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        rgb_a, _, rgb_b, _ = model(faces, faces)
        to_a, _ = model.swap(faces, to="a")
        to_b, _ = model.swap(faces, to="b")
    assert torch.allclose(to_a, rgb_a) and torch.allclose(to_b, rgb_b)
    assert not torch.allclose(to_a, to_b)
    with pytest.raises(ValueError, match="'a' or 'b'"):
        model.swap(faces, to="c")


def test_swap_target_names_the_decoder_of_each_direction():
    assert [swap_target(d) for d in DIRECTIONS] == ["b", "a"]  # a2b: B's decoder
    with pytest.raises(ValueError, match="direction"):
        swap_target("a2a")


def test_model_config_round_trips_and_rejects_bad_values():
    cfg = ModelConfig(resolution=128, width=8, latent_dim=32)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert len(cfg.encoder_widths) == 5 and len(cfg.decoder_widths) == 4
    with pytest.raises(ValueError, match="resolution"):
        ModelConfig(resolution=96)
    with pytest.raises(ValueError, match="encoder needs 4 widths"):
        ModelConfig(resolution=64, encoder_widths=(8, 16))
    with pytest.raises(ValueError, match="unknown keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "n_heads": 8})
