"""SwapAutoencoder of every family: shapes, which parts each swap runs, config round trips."""

from __future__ import annotations

import pytest
import torch

from ops.model import (
    DFL_DIMS,
    DIRECTIONS,
    LATENT_DIMS,
    MODELS,
    RESOLUTIONS,
    ModelConfig,
    SwapAutoencoder,
    swap_target,
)
from ops.model_layers import ResidualBlock


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


TINY_DFL = {"encoder_dims": 4, "decoder_dims": 4, "mask_dims": 2, "latent_dim": 16}


def tiny(model: str, resolution: int = 64) -> ModelConfig:
    """A tiny config of each family (original: width 4)."""
    if model == "original":
        return ModelConfig(resolution=resolution, width=4, latent_dim=16)
    return ModelConfig(model=model, resolution=resolution, **TINY_DFL)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("resolution", (64, 128))
def test_every_family_reconstructs_and_swaps_at_the_input_shape(model, resolution):
    net = SwapAutoencoder(tiny(model, resolution)).eval()
    faces = torch.rand(2, 3, resolution, resolution)
    with torch.no_grad():
        outputs = [*net(faces, faces), *net.swap(faces, "a"), *net.swap(faces, "b")]
    for rgb, mask in zip(outputs[::2], outputs[1::2], strict=True):
        assert rgb.shape == (2, 3, resolution, resolution)
        assert mask.shape == (2, 1, resolution, resolution)
        assert 0.0 <= float(rgb.min()) and float(rgb.max()) <= 1.0
        assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0


@pytest.mark.parametrize("model", MODELS)
def test_swap_to_a_side_is_that_sides_reconstruction_path(model):
    torch.manual_seed(0)
    net = SwapAutoencoder(tiny(model)).eval()
    faces = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        rgb_a, mask_a, rgb_b, mask_b = net(faces, faces)
        to_a, to_a_mask = net.swap(faces, to="a")
        to_b, to_b_mask = net.swap(faces, to="b")
    assert torch.equal(to_a, rgb_a) and torch.equal(to_a_mask, mask_a)
    assert torch.equal(to_b, rgb_b) and torch.equal(to_b_mask, mask_b)
    assert not torch.allclose(to_a, to_b)


def test_original_family_keeps_its_module_layout_and_keys():
    """Checkpoints written before the families load only if these keys never change."""
    net = SwapAutoencoder(ModelConfig(resolution=64, width=4, latent_dim=16))
    encoder = [f"encoder.convs.{i}" for i in (0, 2, 4, 6)]
    encoder += ["encoder.to_latent", "encoder.from_latent", "encoder.upscale.conv"]
    decoder = [f"upscales.{i}.conv" for i in range(3)] + ["to_rgb", "to_mask"]
    layers = encoder + [f"decoder_{s}.{name}" for s in "ab" for name in decoder]
    assert list(net.state_dict()) == [
        f"{layer}.{p}" for layer in layers for p in ("weight", "bias")
    ]
    assert [name for name, _ in net.named_children()] == ["encoder", "decoder_a", "decoder_b"]


def test_original_decoder_heads_run_as_one_conv_and_draw_what_each_head_draws():
    """The RGB and mask heads share one convolution call; each output is still its own
    module's (a checkpoint's to_rgb / to_mask weights mean what they meant)."""
    torch.manual_seed(0)
    decoder = SwapAutoencoder(ModelConfig(resolution=64, width=4, latent_dim=16)).decoder_a
    torch.nn.init.normal_(decoder.to_mask.bias, mean=1.0)  # heads that differ visibly
    features = torch.randn(2, decoder.upscales[0].conv.in_channels, 8, 8)
    rgb, mask = decoder(features)
    hidden = decoder.upscales(features)
    torch.testing.assert_close(rgb, torch.sigmoid(decoder.to_rgb(hidden)))
    torch.testing.assert_close(mask, torch.sigmoid(decoder.to_mask(hidden)))
    (rgb.sum() + 2 * mask.sum()).backward()
    assert decoder.to_rgb.weight.grad.abs().sum() > 0
    assert decoder.to_mask.weight.grad.abs().sum() > 0


def test_df_swap_runs_the_shared_bottleneck_and_the_target_decoder():
    torch.manual_seed(0)
    net = SwapAutoencoder(tiny("df")).eval()
    assert [name for name, _ in net.named_children()] == [
        "encoder",
        "inter",
        "decoder_a",
        "decoder_b",
    ]
    faces = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = net.decoder_b(net.inter(net.encoder(faces)))
        a2b = net.swap(faces, to="b")
        for p in net.decoder_a.parameters():
            p.add_(1.0)  # A's decoder plays no part in a2b
        again = net.swap(faces, to="b")
    for got, want in zip((*a2b, *again), (*expected, *expected), strict=True):
        assert torch.equal(got, want)


def test_liae_a2b_reads_the_shared_code_and_bs_own_code():
    """a2b = decoder(cat(inter_ab(z), inter_b(z))); b2a = decoder(cat(inter_ab(z), inter_ab(z)))."""
    torch.manual_seed(0)
    net = SwapAutoencoder(tiny("liae")).eval()
    assert [name for name, _ in net.named_children()] == [
        "encoder",
        "inter_ab",
        "inter_b",
        "decoder",
    ]
    faces = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        z = net.encoder(faces)
        shared, own_b = net.inter_ab(z), net.inter_b(z)
        assert shared.shape == (2, 2 * 16, 8, 8)  # 2 x latent_dim channels at R / 8
        want_b = net.decoder(torch.cat([shared, own_b], 1))
        want_a = net.decoder(torch.cat([shared, shared], 1))
        a2b, b2a = net.swap(faces, to="b"), net.swap(faces, to="a")
        for p in net.inter_b.parameters():
            p.mul_(0.5)  # B's own bottleneck changes a2b, never b2a
        a2b_moved, b2a_kept = net.swap(faces, to="b")[0], net.swap(faces, to="a")[0]
    assert torch.equal(a2b[0], want_b[0]) and torch.equal(a2b[1], want_b[1])
    assert torch.equal(b2a[0], want_a[0]) and torch.equal(b2a[1], want_a[1])
    assert torch.equal(b2a_kept, b2a[0]) and not torch.allclose(a2b_moved, a2b[0])


@pytest.mark.parametrize("model", ("df", "liae"))
def test_dfl_mask_decoder_is_separate_and_lighter(model):
    net = SwapAutoencoder(ModelConfig(model=model))
    decoder = net.decoder if model == "liae" else net.decoder_b
    rgb_params = sum(p.numel() for p in decoder.rgb.parameters())
    mask_params = sum(p.numel() for p in decoder.mask.parameters())
    assert 0 < mask_params < rgb_params / 2
    assert any(isinstance(m, ResidualBlock) for m in decoder.rgb.modules())
    assert any(isinstance(m, ResidualBlock) for m in net.encoder.modules())
    assert not any(isinstance(m, ResidualBlock) for m in decoder.mask.modules())


def test_model_config_of_each_family_keeps_only_its_own_fields():
    df = ModelConfig(model="df", encoder_dims=8)
    assert df.decoder_dims == DFL_DIMS["decoder_dims"] and df.latent_dim == LATENT_DIMS["df"]
    assert ModelConfig(model="liae").latent_dim == LATENT_DIMS["liae"]
    assert ModelConfig.from_dict(df.to_dict()) == df
    assert "width" not in df.to_dict() and "encoder_widths" not in df.to_dict()
    assert "encoder_dims" not in ModelConfig().to_dict() and ModelConfig().to_dict()["model"]
    with pytest.raises(ValueError, match="size the 'original' model"):
        ModelConfig(model="df", width=8)
    with pytest.raises(ValueError, match="encoder_dims size the df and liae"):
        ModelConfig(encoder_dims=8)
    with pytest.raises(ValueError, match="model must be one of"):
        ModelConfig(model="quick96")


def test_model_config_without_a_model_key_is_the_original_model():
    """What checkpoints written before the families hold."""
    legacy = {
        "resolution": 64,
        "width": 4,
        "latent_dim": 16,
        "encoder_widths": [4, 8, 16, 32],
        "decoder_widths": [16, 8, 4],
        "architecture": "swap-autoencoder-v1",
    }
    cfg = ModelConfig.from_dict(legacy)
    assert cfg.model == "original" and cfg == ModelConfig(resolution=64, width=4, latent_dim=16)
    assert cfg.to_dict() == {**legacy, "model": "original"}
