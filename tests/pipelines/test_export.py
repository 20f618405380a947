"""Export: TorchScript and ONNX files of every model family match the eager swap path, hold
only that path and the weight average; bad checkpoints are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ops.checkpoint import load_checkpoint, save_checkpoint
from ops.model import ModelConfig, SwapAutoencoder
from pipelines.config import ExportConfig
from pipelines.export import build_swap_path, run_export


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = SwapAutoencoder(ModelConfig(resolution=64, width=4, latent_dim=16))
    return save_checkpoint(str(tmp_path / "ck"), model, 3, coverage=1.5, size=128)


def test_export_torchscript_matches_eager(checkpoint, tmp_path):
    out = tmp_path / "a2b.pt"
    summary = run_export(ExportConfig(checkpoint=checkpoint, out=str(out), format="torchscript"))
    assert out.exists() and summary.max_abs_diff < 1e-5 and summary.step == 3
    module, _ = build_swap_path(checkpoint, "a2b")
    faces = torch.rand(5, 3, 64, 64)
    with torch.no_grad():
        rgb, mask = torch.jit.load(str(out))(faces)
        eager_rgb, eager_mask = module(faces)
    assert torch.allclose(rgb, eager_rgb, atol=1e-5) and torch.allclose(mask, eager_mask, atol=1e-5)


def test_export_onnx_matches_eager_with_onnxruntime(checkpoint, tmp_path):
    pytest.importorskip("onnxscript")
    import onnxruntime as ort

    out = tmp_path / "b2a.onnx"
    run_export(ExportConfig(checkpoint=checkpoint, out=str(out), direction="b2a", format="onnx"))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    faces = torch.rand(4, 3, 64, 64)
    rgb, mask = session.run(["rgb", "mask"], {"face": faces.numpy()})
    module, _ = build_swap_path(checkpoint, "b2a")
    with torch.no_grad():
        eager_rgb, eager_mask = module(faces)
    assert np.abs(rgb - eager_rgb.numpy()).max() < 1e-4
    assert mask.shape == (4, 1, 64, 64)


def test_export_directions_use_different_decoders(checkpoint):
    faces = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a2b = build_swap_path(checkpoint, "a2b")[0](faces)[0]
        b2a = build_swap_path(checkpoint, "b2a")[0](faces)[0]
    assert not torch.allclose(a2b, b2a)


def test_export_refuses_a_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        run_export(ExportConfig(checkpoint=str(tmp_path / "nope"), out=str(tmp_path / "x.pt")))


DFL_SIZES = {"encoder_dims": 4, "decoder_dims": 4, "mask_dims": 2, "latent_dim": 16}


@pytest.fixture(params=("df", "liae"))
def family_checkpoint(request, tmp_path):
    torch.manual_seed(0)
    model = SwapAutoencoder(ModelConfig(model=request.param, **DFL_SIZES))
    return save_checkpoint(str(tmp_path / request.param), model, 3, coverage=1.5, size=128)


def test_export_of_every_family_matches_its_swap_in_both_formats(family_checkpoint, tmp_path):
    pytest.importorskip("onnxscript")
    import onnxruntime as ort

    loaded = load_checkpoint(family_checkpoint)
    faces = torch.rand(3, 3, 64, 64)
    for direction, to in (("a2b", "b"), ("b2a", "a")):
        with torch.no_grad():
            want_rgb, want_mask = loaded.model.swap(faces, to)
        script = tmp_path / f"{direction}.pt"
        run_export(ExportConfig(checkpoint=family_checkpoint, out=str(script), direction=direction))
        with torch.no_grad():
            rgb, mask = torch.jit.load(str(script))(faces)
        assert torch.allclose(rgb, want_rgb, atol=1e-5) and torch.allclose(
            mask, want_mask, atol=1e-5
        )
        onnx = tmp_path / f"{direction}.onnx"
        config = ExportConfig(
            checkpoint=family_checkpoint, out=str(onnx), direction=direction, format="onnx"
        )
        run_export(config)
        session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
        rgb_onnx, _ = session.run(["rgb", "mask"], {"face": faces.numpy()})
        assert np.abs(rgb_onnx - want_rgb.numpy()).max() < 1e-4


def test_export_holds_only_the_parts_of_its_direction(checkpoint, family_checkpoint):
    a2b = dict(build_swap_path(checkpoint, "a2b")[0].model.named_children())
    assert "decoder_b" in a2b and "decoder_a" not in a2b
    family = load_checkpoint(family_checkpoint).model_config.model
    b2a = dict(build_swap_path(family_checkpoint, "b2a")[0].model.named_children())
    if family == "liae":
        assert set(b2a) == {"encoder", "inter_ab", "decoder"}  # inter_b is B's path only
    else:
        assert set(b2a) == {"encoder", "inter", "decoder_a"}


def test_export_uses_the_weight_average_when_the_checkpoint_has_one(tmp_path):
    torch.manual_seed(0)
    model = SwapAutoencoder(ModelConfig(width=4, latent_dim=16))
    average = SwapAutoencoder(ModelConfig(width=4, latent_dim=16))
    path = save_checkpoint(str(tmp_path / "ck"), model, 3, coverage=1.5, size=128, ema=average)
    faces = torch.rand(2, 3, 64, 64)
    module, loaded = build_swap_path(path, "a2b")
    with torch.no_grad():
        exported = module(faces)[0]
        assert loaded.ema and torch.equal(exported, average.eval().swap(faces, "b")[0])
        assert not torch.allclose(exported, model.eval().swap(faces, "b")[0])
