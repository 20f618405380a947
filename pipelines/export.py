"""Export the swap path of a checkpoint (encoder + one decoder) for inference without rayswap.

    rayswap export runs/ab --direction a2b --format onnx --out a2b.onnx

`a2b` encodes faces of A and decodes with B's decoder (A's pose, B's face); `b2a` the other
way. The exported graph takes "face" (N, 3, R, R) float32 RGB in [0, 1], aligned like the
training faces (coverage in the checkpoint's config.json), with any batch size N, and
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
from ops.model import swap_target
from pipelines.config import ExportConfig


class SwapPath(nn.Module):
    """encoder -> decoder of the target identity: (N, 3, R, R) -> (rgb, mask)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(self.encoder(face))


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
    decoder = getattr(loaded.model, f"decoder_{swap_target(direction)}")
    return SwapPath(loaded.model.encoder, decoder).eval(), loaded


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
