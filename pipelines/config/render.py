"""Settings of `rayswap render`: each field is one flag (see pipelines/config/flags.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ops.blend import COLOR_CHOICES
from ops.watermark import DEFAULT_KEY, DEFAULT_STRENGTH
from pipelines.config import common
from pipelines.config.flags import (
    at_least,
    check_fields,
    one_of,
    one_of_lazy,
    option,
    require,
    within,
)


@dataclass(frozen=True)
class RenderConfig:
    """Settings of `rayswap render`."""

    checkpoint: str = common.checkpoint(
        "Checkpoint folder or URI, or a training output folder: its latest checkpoint, "
        "resolved once (a rerun into the same --out keeps that one)."
    )
    inputs: tuple[str, ...] = common.inputs(
        "Target videos: files, folders, globs, object-store URIs or a manifest (.csv/.parquet "
        "with a uri column)."
    )
    out: str = common.out("Output folder or URI for the videos and manifest.")
    direction: str = option(
        "a2b",
        "a2b puts B's face on videos of A; b2a the reverse.",
        one_of_lazy("ops.model", "DIRECTIONS"),
    )
    segment_frames: int = common.segment_frames(16)
    workers: int | None = common.workers(
        "Renderer actors. Default: fill the nodes, one per --cpus-per-worker CPUs (with --gpu, "
        "of the GPU nodes; one CPU is kept free)."
    )
    cpus_per_worker: float = common.cpus_per_worker(
        "CPUs per actor (decode, detect, encode threads)."
    )
    gpu: bool = option(False, "Run the model on a GPU (actors ask for a share of one).")
    gpus_per_worker: float | None = common.gpus_per_worker(
        "GPU share per actor with --gpu. Default: each GPU node's GPUs shared equally by the "
        "actors its CPUs run (16 CPUs, 1 GPU: 15 actors x 1/15 GPU)."
    )
    detector: str = common.detector(
        "RetinaFace backend: auto (torch on the GPU with --gpu, onnxruntime on CPU, where it "
        "is faster), torch or onnxruntime."
    )
    batch_size: int = option(
        8, "Faces per model pass and frames per detector pass.", within(1, 256)
    )
    detect_size: int = common.detect_size()
    min_score: float = common.min_score("Smallest detector score swapped.")
    min_face: int = common.min_face(24, "Smallest face box side swapped, in px.")
    faces: str = common.faces("Faces swapped per frame: largest or all.")
    smooth_frames: int = option(
        3, "Landmark smoothing: frames on each side of a centred window.", within(0, 15)
    )
    min_support: int = option(
        1, "A face must also be found in this many frames of the window.", at_least(0)
    )
    color: str = option("lab", "Colour matching: lab, hist or none.", one_of(COLOR_CHOICES))
    mask_erode: float = option(
        0.03, "Mask erosion, as a fraction of the face crop.", within(0, 0.2)
    )
    mask_feather: float = option(
        0.05, "Mask feathering (blur sigma), as a fraction of the face crop.", within(0, 0.2)
    )
    crf: int = option(18, "H.264 quality: 0 lossless, 18 default, 28 small.", within(0, 51))
    label: bool = option(True, "Draw a visible SYNTHETIC label on swapped frames.")
    watermark_key: str = option(
        DEFAULT_KEY,
        "Key of the invisible watermark (verify with the same key).",
        (bool, "must not be empty"),
    )
    watermark_strength: float = option(
        DEFAULT_STRENGTH,
        "Watermark strength in grey levels (RMS) for a face ~230 px wide; smaller faces get "
        "more, larger less. Higher survives harsher edits, lower is harder to see.",
        within(0.5, 16, " grey levels"),
    )
    evaluate: bool = option(
        False,
        "Also score every swap as `rayswap evaluate` does (identity, pose, jitter, seam), in "
        "the render actors; needs --a and --b and the eval extra. Writes "
        "OUT/evaluation.parquet and prints the table.",
    )
    evaluate_every_n: int = option(
        1, "With --evaluate, score frames whose number is a multiple of n.", at_least(1)
    )
    a: str | None = common.faces_of(
        "a", "With --evaluate: faces of A (OUT/faces/a of `rayswap extract`).", None
    )
    b: str | None = common.faces_of("b", "With --evaluate: faces of B.", None)
    address: str | None = common.address()
    max_error_fraction: float = common.max_error_fraction()
    fail_at_frame: int | None = common.fail_at_frame()

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        check_fields(self)
        common.check_devices(self.gpu, self.detector)
        for side in ("a", "b"):
            value = getattr(self, side)
            require(
                (value is not None) == self.evaluate,
                side,
                value,
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
