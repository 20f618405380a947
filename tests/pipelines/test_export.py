"""Export: TorchScript and ONNX files match the eager swap path; bad checkpoints are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ops.checkpoint import save_checkpoint
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
