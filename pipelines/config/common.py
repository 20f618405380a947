"""Flags that several stages share, declared once each (help may be worded per stage)."""

from __future__ import annotations

from typing import Any

from pipelines.config.flags import (
    REQUIRED,
    above,
    argument,
    at_least,
    given,
    label_selector_check,
    one_of_lazy,
    option,
    require,
    within,
)


def inputs(help: str) -> Any:
    return argument(help, given("at least one INPUT"), metavar="INPUTS...")


def checkpoint(help: str) -> Any:
    """CHECKPOINT: a checkpoint folder or URI, or a training --out (its latest checkpoint)."""
    return argument(help, given("a checkpoint"), path=True)


def out(help: str) -> Any:
    return option(REQUIRED, help, given("an output directory or URI"), path=True)


def faces_of(side: str, help: str, default: Any = REQUIRED) -> Any:
    """--a / --b: a faces dataset (OUT/faces/<identity> of extract)."""
    return option(default, help, given(f"the faces folder of identity {side}"), path=True)


def address() -> Any:
    return option(
        None,
        "Ray cluster to join (ray://host:10001 or host:6379). Default: RAY_ADDRESS, else a "
        "local Ray started for this command.",
        envvar="RAY_ADDRESS",
    )


def max_error_fraction() -> Any:
    return option(
        0.0,
        "Exit with code 1 when more than this fraction of inputs failed.",
        within(0.0, 1.0),
    )


def workers(help: str) -> Any:
    return option(None, help, at_least(1), show_default=False)


def cpus_per_worker(help: str) -> Any:
    return option(1.0, help, above(0))


def gpus_per_worker(help: str) -> Any:
    return option(None, help, (lambda v: 0 < v <= 8, "must be in (0, 8]"), show_default=False)


def detector(help: str) -> Any:
    return option("auto", help, one_of_lazy("ops.detect_torch", "DETECTOR_CHOICES"))


def detect_size() -> Any:
    return option(640, "Detect on frames downscaled to this longer side, in px.", at_least(64))


def min_score(help: str) -> Any:
    return option(0.8, help, within(0.0, 1.0))


def min_face(default: int, help: str) -> Any:
    return option(default, help, at_least(0, " px"))


def faces(help: str) -> Any:
    return option("largest", help, one_of_lazy("ops.detect", "FACES_CHOICES"))


def segment_frames(low: int) -> Any:
    return option(
        900,
        "Split videos into segments of this many frames, processed in parallel.",
        at_least(low),
    )


def label_selector(help: str) -> Any:
    return option(None, help, label_selector_check())


def fail_at_frame() -> Any:
    """Fault injection for tests: the worker that reaches this frame dies, once."""
    return option(None, "", at_least(0), hidden=True)


def check_devices(gpu: bool, detector: str) -> None:
    """--gpu with --detector onnxruntime cannot work: it runs on the CPU only."""
    require(
        not (gpu and detector == "onnxruntime"),
        "detector",
        detector,
        "onnxruntime runs on the CPU only; with --gpu use auto or torch",
    )
