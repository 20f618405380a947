"""Checkpoints as plain files: state dicts, a JSON config and a preview, nothing pickled.

A checkpoint is a directory (local path or object-store URI):

    model.pt        SwapAutoencoder state dict (tensors only): the trained weights
    ema.pt          the exponential moving average of those weights, same keys (only when
                    training kept one, `--ema-decay`); what render and export use
    optimizer.pt    Adam state dict (tensors and numbers only), for resuming
    config.json     {"format": "rayswap-checkpoint", "format_version", "step", "model": ModelConfig,
                     "train": the train config, "coverage", "size": face crop settings of extract}
    preview.png     A, A->A, A->B, B, B->B, B->A on held-back faces (optional)

`coverage` and `size` are those the training faces were extracted with: render must
align new faces with the same coverage (the crop side is then scaled to the model's
resolution). Every tensor file loads with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import io
import json
import posixpath
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ops import storage
from ops.model import ModelConfig, SwapAutoencoder

FORMAT = "rayswap-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE, EMA_FILE, OPTIMIZER_FILE, CONFIG_FILE, PREVIEW_FILE = (
    "model.pt",
    "ema.pt",
    "optimizer.pt",
    "config.json",
    "preview.png",
)
# the flag of each ModelConfig field, for messages about a checkpoint of another model
MODEL_FLAGS = {
    "model": "--model",
    "resolution": "--resolution",
    "width": "--width",
    "encoder_widths": "--width",
    "decoder_widths": "--width",
    "latent_dim": "--latent-dim",
    "encoder_dims": "--encoder-dims",
    "decoder_dims": "--decoder-dims",
    "mask_dims": "--mask-dims",
}


@dataclass
class LoadedCheckpoint:
    """A checkpoint ready for inference: `model` is on `map_location` and in eval mode.

    ema: True when `model` holds the moving average of the weights (ema.pt), not model.pt.
    """

    path: str
    model: SwapAutoencoder
    model_config: ModelConfig
    step: int
    coverage: float
    size: int
    config: dict[str, Any]
    ema: bool = False


def _tensor_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_checkpoint(
    directory: str,
    model: SwapAutoencoder,
    step: int,
    coverage: float,
    size: int,
    optimizer: torch.optim.Optimizer | None = None,
    train_config: dict[str, Any] | None = None,
    preview_png: bytes | None = None,
    ema: nn.Module | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write a checkpoint directory (local or URI); config.json is written last. Returns it.

    ema: a module holding the moving average of `model`'s weights (same state-dict keys),
    written as ema.pt. extra: more keys of config.json (e.g. "init", "pretrain"); None
    values are left out.
    """
    storage.write_bytes_atomic(
        storage.join(directory, MODEL_FILE), _tensor_bytes(model.state_dict())
    )
    if ema is not None:
        storage.write_bytes_atomic(
            storage.join(directory, EMA_FILE), _tensor_bytes(ema.state_dict())
        )
    if optimizer is not None:
        storage.write_bytes_atomic(
            storage.join(directory, OPTIMIZER_FILE), _tensor_bytes(optimizer.state_dict())
        )
    if preview_png is not None:
        storage.write_bytes_atomic(storage.join(directory, PREVIEW_FILE), preview_png)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "model": model.config.to_dict(),
        "train": train_config or {},
        "coverage": float(coverage),
        "size": int(size),
        "torch": torch.__version__,
    }
    config.update({key: value for key, value in (extra or {}).items() if value is not None})
    payload = json.dumps(config, indent=2, sort_keys=True, default=str).encode()
    storage.write_bytes_atomic(storage.join(directory, CONFIG_FILE), payload)
    return directory


def read_checkpoint_config(path: str) -> dict[str, Any]:
    """Read and validate config.json of the checkpoint at `path` (no weights are loaded)."""
    if not storage.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    config_path = storage.join(path, CONFIG_FILE)
    if not storage.exists(config_path):
        raise FileNotFoundError(f"{path} is not a rayswap checkpoint: {CONFIG_FILE} is missing")
    try:
        config = json.loads(storage.read_bytes(config_path))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{config_path} is corrupt: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path} is not a rayswap checkpoint (config.json format != {FORMAT!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format version {config.get('format_version')!r} is not "
            f"supported (expected {FORMAT_VERSION})"
        )
    model_config(config, path)  # validates the architecture
    return config


def check_weights_present(path: str) -> None:
    """FileNotFoundError unless the checkpoint at `path` holds its model weights (not read)."""
    if not storage.exists(storage.join(path, MODEL_FILE)):
        raise FileNotFoundError(f"checkpoint {path} is incomplete: {MODEL_FILE} is missing")


def model_config(config: dict[str, Any], path: str = "checkpoint") -> ModelConfig:
    """The ModelConfig stored in a checkpoint's config; ValueError naming `path` if foreign."""
    try:
        return ModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: unsupported model in checkpoint ({exc})") from exc


def load_state(path: str, name: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """`torch.load(weights_only=True)` of one file of the checkpoint; clear errors when bad."""
    file_path = storage.join(path, name)
    if not storage.exists(file_path):
        raise FileNotFoundError(f"checkpoint {path} is incomplete: {name} is missing")
    try:
        state = torch.load(
            io.BytesIO(storage.read_bytes(file_path)), map_location=map_location, weights_only=True
        )
    except Exception as exc:  # any unpickling error means a corrupt or foreign file
        raise ValueError(f"{file_path} is corrupt or not a weights-only state dict: {exc}") from exc
    if not isinstance(state, dict):
        raise ValueError(f"{file_path} does not hold a state dict")
    return state


def load_checkpoint(
    path: str,
    map_location: str | torch.device = "cpu",
    expect: ModelConfig | None = None,
    prefer_ema: bool = True,
) -> LoadedCheckpoint:
    """Load a checkpoint directory (or the latest one under a training output folder).

    The model gets the moving average of the weights (ema.pt) when the checkpoint has one
    and `prefer_ema` is set, else the trained weights (model.pt); `LoadedCheckpoint.ema`
    says which. Render, export, evaluate and the preview all see the average this way.
    Raises FileNotFoundError when the directory or a file is missing, ValueError when a
    file is corrupt, the checkpoint is foreign, or its model differs from `expect`.
    """
    path = find_latest_checkpoint(path) or path
    config = read_checkpoint_config(path)
    cfg = model_config(config, path)
    check_compatible(cfg, expect, path)
    model = SwapAutoencoder(cfg)
    ema = prefer_ema and storage.exists(storage.join(path, EMA_FILE))
    state = load_state(path, EMA_FILE if ema else MODEL_FILE, map_location)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the model config: {exc}") from exc
    model.to(map_location).eval()
    return LoadedCheckpoint(
        path=path,
        model=model,
        model_config=cfg,
        step=int(config["step"]),
        coverage=float(config["coverage"]),
        size=int(config["size"]),
        config=config,
        ema=ema,
    )


def model_differences(found: ModelConfig, expect: ModelConfig) -> list[str]:
    """The ModelConfig fields in which `found` differs from `expect` (only `model` when the
    families differ, since each family has fields of its own)."""
    if found.model != expect.model:
        return ["model"]
    wanted = expect.to_dict()
    return [key for key, value in found.to_dict().items() if value != wanted[key]]


def check_compatible(found: ModelConfig, expect: ModelConfig | None, path: str) -> None:
    """ValueError naming each differing field when `found` is not the `expect`ed model."""
    if expect is None or found == expect:
        return
    have, want = found.to_dict(), expect.to_dict()
    diffs = [
        f"{key}={have[key]!r} (expected {want[key]!r})" for key in model_differences(found, expect)
    ]
    raise ValueError(f"checkpoint {path} holds another model: {', '.join(diffs)}")


def find_latest_checkpoint(path: str) -> str | None:
    """`path` itself if it is a checkpoint, else the highest-step checkpoint_* directory under
    it (a training output folder), else None."""
    if storage.exists(storage.join(path, CONFIG_FILE)):
        return path
    if not storage.is_dir(path):
        return None
    best: tuple[int, str] | None = None
    for file in storage.list_files(path):
        parent = posixpath.dirname(storage.strip_query(file))
        if posixpath.basename(file.split("?", 1)[0]) != CONFIG_FILE:
            continue
        if not posixpath.basename(parent).startswith("checkpoint"):
            continue
        directory = file.rsplit("/", 1)[0] if "?" not in file else _dir_of_uri(file)
        try:
            step = int(read_checkpoint_config(directory)["step"])
        except (ValueError, FileNotFoundError, KeyError):
            continue
        if best is None or step > best[0]:
            best = (step, directory)
    return best[1] if best else None


def _dir_of_uri(uri: str) -> str:
    base, query = uri.split("?", 1)
    return f"{base.rsplit('/', 1)[0]}?{query}"
