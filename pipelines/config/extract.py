"""Settings of `rayswap extract`: each field is one flag (see pipelines/config/flags.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ops.identity import DEFAULT_MAX_DISTANCE
from ops.quality import IMAGE_FORMAT_CHOICES
from pipelines.config import common
from pipelines.config.flags import (
    above,
    at_least,
    check_fields,
    one_of,
    option,
    require,
    safe_name,
    within,
)


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of `rayswap extract`."""

    inputs: tuple[str, ...] = common.inputs(
        "Videos: files, folders, globs ('clips/*.mp4'), object-store URIs (s3://bucket/prefix/) "
        "or a manifest (.csv/.parquet with uri[,identity])."
    )
    out: str = common.out("Output folder or URI (faces/, errors/ go inside).")
    identity: str | None = option(
        None,
        "Identity of every input (a manifest's identity column wins when absent).",
        safe_name(),
    )
    every_n: int = option(1, "Keep every n-th frame.", at_least(1))
    fps: float | None = option(
        None, "Sample about this many frames per second (overrides --every-n).", above(0)
    )
    size: int = option(
        256,
        "Aligned crop side in px (multiple of 16).",
        (lambda v: 64 <= v <= 512 and v % 16 == 0, "must be a multiple of 16 in [64, 512]"),
    )
    coverage: float = option(
        1.5,
        "Zoom-out of the crop around the face: 1.0 tight (brows to chin), 1.5 keeps forehead "
        "and jaw.",
        within(0.5, 4.0),
    )
    min_face: int = common.min_face(40, "Smallest face box side kept, in px.")
    min_score: float = common.min_score("Smallest detector score kept.")
    min_sharpness: float = option(
        0.0,
        "Smallest variance of Laplacian of the crop kept (0 keeps blurry faces).",
        at_least(0),
    )
    faces: str = common.faces("Faces per frame: all or largest.")
    segment_frames: int = common.segment_frames(1)
    workers: int | None = common.workers(
        "Extractor actors. Default: as many as the cluster's CPUs allow."
    )
    cpus_per_worker: float = common.cpus_per_worker(
        "CPUs each actor reserves; its decoder and detector use that many threads."
    )
    detect_size: int = common.detect_size()
    detect_batch: int = option(8, "Frames per detector pass.", at_least(1))
    gpu: bool = option(
        False,
        "Run the actors on GPU nodes and detect faces in torch on the GPU (one actor per CPU, "
        "each with an equal share of its node's GPUs).",
    )
    gpus_per_worker: float | None = common.gpus_per_worker(
        "GPU share per actor with --gpu. Default: the node's GPUs shared equally."
    )
    detector: str = common.detector(
        "RetinaFace backend: auto (torch on a GPU, onnxruntime on CPU, where it is faster), "
        "torch or onnxruntime."
    )
    image_format: str = option(
        "jpeg", "Crop encoding: jpeg, png or webp.", one_of(IMAGE_FORMAT_CHOICES)
    )
    label_selector: str | None = common.label_selector(
        "Run extractor actors only on nodes with these Ray labels, e.g. 'node-kind=cpu' (the "
        "CPU group of cluster/cluster.yaml). Default: anywhere."
    )
    reference: tuple[str, ...] = option(
        (),
        "Keep only faces of this person: an image (its largest face) or a faces dataset (a "
        "folder such as OUT/faces/a, or a .parquet file); repeat for several references of "
        "the same person. Needs rayswap's eval extra.",
        path=True,
        show_default=False,
    )
    max_distance: float | None = option(
        None,
        f"With --reference: the largest identity distance kept (default {DEFAULT_MAX_DISTANCE}"
        ": on the shared test media it keeps 89-94% of a person's faces and rejects other "
        "people; lower it for look-alikes, raise it to keep more of the person).",
        (lambda v: 0 < v <= 2, "must be in (0, 2] (dlib descriptor distance)"),
        show_default=False,
    )
    address: str | None = common.address()
    max_error_fraction: float = common.max_error_fraction()
    fail_at_frame: int | None = common.fail_at_frame()

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "reference", tuple(self.reference))
        check_fields(self)
        require(
            self.max_distance is None or bool(self.reference),
            "max_distance",
            self.max_distance,
            "applies only with --reference",
        )
        if self.reference and self.max_distance is None:
            object.__setattr__(self, "max_distance", DEFAULT_MAX_DISTANCE)
        common.check_devices(self.gpu, self.detector)

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
