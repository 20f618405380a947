"""A rerun resumes the run in OUT as it was started: the model flags not given come from
its checkpoint, not from today's defaults (so a run started before a default changed
still resumes with the bare command). Flags that are given must match (check_resume)."""

from __future__ import annotations

import sys
from typing import Any

from ops import storage
from ops.checkpoint import find_latest_checkpoint, model_config, read_checkpoint_config
from ops.model import LATENT_DIMS
from pipelines.config.train import DFL_SIZE_FIELDS


def resumed_values(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """`values` with each model flag (--model, its sizes, --resolution, --coverage) that is
    not in `given` set to what the latest checkpoint in values["out"] was trained with;
    unchanged without a checkpoint."""
    out = values.get("out")
    if not out or not storage.exists(out):
        return values
    latest = find_latest_checkpoint(out)
    if latest is None:
        return values
    config = read_checkpoint_config(latest)
    found = model_config(config, latest)
    stored = {"model": found.model, "resolution": found.resolution}
    stored["coverage"] = config.get("coverage")
    if values.get("model") == found.model or "model" not in given:  # its sizes, if its family
        if found.latent_dim != LATENT_DIMS.get(found.model):
            stored["latent_dim"] = found.latent_dim or None
        if found.model == "original":
            stored["width"] = found.width
        else:
            stored |= {name: getattr(found, name) or None for name in DFL_SIZE_FIELDS}
    adopted = {
        name: value
        for name, value in stored.items()
        if name in values and name not in given and value is not None and values[name] != value
    }
    if adopted:
        told = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in adopted.items())
        print(f"resume: {told} (the run's own) from {latest}", file=sys.stderr)
    return values | adopted
