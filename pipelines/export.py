"""Export the swap path of a checkpoint (one direction) for inference without rayswap.

    rayswap export runs/ab --direction a2b --format onnx --out a2b.onnx

`a2b` encodes faces of A and decodes with B's decoder (A's pose, B's face); `b2a` the other
way. The path is the model's own `swap(face, to)`, so every model family exports alike.
The weights are those `load_checkpoint` returns: the moving average when the checkpoint
has one. The exported graph takes "face" (N, 3, R, R) float32 RGB in [0, 1], aligned like
the training faces (coverage in the checkpoint's config.json), with any batch size N, and
returns "rgb" (N, 3, R, R) and "mask" (N, 1, R, R) in [0, 1]. After writing, the file is
loaded back (torch.jit.load or onnxruntime) and compared with the eager model on fresh
inputs; a difference above --atol is an error.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ops import storage
from ops.checkpoint import load_checkpoint
from ops.model import SwapAutoencoder, swap_target
from pipelines.config import ExportConfig


class SwapPath(nn.Module):
    """One direction of a model, `model.swap(face, to)`: (N, 3, R, R) -> (rgb, mask)."""

    def __init__(self, model: SwapAutoencoder, to: str) -> None:
        super().__init__()
        self.model = model
        self.to = to

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.swap(face, self.to)


@dataclass
class ExportSummary:
    out: str
    checkpoint: str
    step: int
    resolution: int
    max_abs_diff: float


def build_swap_path(checkpoint: str, direction: str) -> tuple[SwapPath, object]:
    """The eager swap path of `direction` ("a2b" or "b2a") and the loaded checkpoint."""
    loaded = load_checkpoint(checkpoint)
    to = swap_target(direction)
    _drop_unused(loaded.model, to)
    return SwapPath(loaded.model, to).eval(), loaded


def _drop_unused(model: SwapAutoencoder, to: str) -> None:
    """Remove the parts `model.swap(x, to)` never runs (the other identity's own decoder,
    liae's inter_b when decoding as A), so the exported file holds only the one path."""
    unused = ["decoder_a" if to == "b" else "decoder_b"] + (["inter_b"] if to == "a" else [])
    children = dict(model.named_children())
    for name in unused:
        if name in children:
            delattr(model, name)


def _export_torchscript(module: SwapPath, example: torch.Tensor, path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)  # jit is deprecated
        traced = torch.jit.trace(module, example, check_trace=False)
    traced.save(path)


def _run_torchscript(path: str, face: torch.Tensor) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        loaded = torch.jit.load(path, map_location="cpu")
    with torch.no_grad():
        return loaded(face)[0].numpy()


def _export_onnx(module: SwapPath, example: torch.Tensor, path: str) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        input_names=["face"],
        output_names=["rgb", "mask"],
        dynamic_shapes={"face": {0: batch}},
        verbose=False,
    )
    program.save(path)


def _run_onnx(path: str, face: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(["rgb"], {"face": face.numpy()})[0]


def prepare_export(cfg: ExportConfig) -> tuple[SwapPath, object]:
    """Checks before the export: the checkpoint loads, the format's packages are there.

    Returns `build_swap_path`'s (module, loaded checkpoint); raises ValueError /
    FileNotFoundError naming the problem.
    """
    if cfg.format == "onnx":
        try:
            import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
        except ImportError as exc:
            raise ValueError("--format onnx needs the onnx and onnxscript packages") from exc
    return build_swap_path(cfg.checkpoint, cfg.direction)


def run_export(cfg: ExportConfig, prepared: tuple | None = None) -> ExportSummary:
    """Export, reload, and check against the eager model; raise ValueError on a mismatch.

    prepared: what `prepare_export(cfg)` returned (called here when None).
    """
    module, loaded = prepare_export(cfg) if prepared is None else prepared
    resolution = loaded.model_config.resolution
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, 3, resolution, resolution, generator=generator)
    check = torch.rand(3, 3, resolution, resolution, generator=generator)  # another batch size
    with tempfile.TemporaryDirectory(prefix="rayswap-export-") as tmp:
        local = os.path.join(tmp, os.path.basename(storage.strip_query(cfg.out)) or "model")
        if cfg.format == "torchscript":
            _export_torchscript(module, example, local)
            exported = _run_torchscript(local, check)
        else:
            _export_onnx(module, example, local)
            exported = _run_onnx(local, check)
        with torch.no_grad():
            eager = module(check)[0].numpy()
        diff = float(np.abs(exported - eager).max())
        if not diff <= cfg.atol:
            raise ValueError(
                f"exported {cfg.format} model differs from the eager model by {diff:.2e} "
                f"(> --atol {cfg.atol})"
            )
        storage.upload_file_atomic(local, cfg.out)
    return ExportSummary(cfg.out, loaded.path, loaded.step, resolution, diff)
