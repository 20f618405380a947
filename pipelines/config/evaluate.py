"""Settings of `rayswap evaluate`, `rayswap verify`, `rayswap faces report` and `rayswap demo`."""

from __future__ import annotations

from dataclasses import dataclass

from ops.watermark import DEFAULT_KEY, DEFAULT_THRESHOLD
from pipelines.config import common
from pipelines.config.flags import (
    above,
    argument,
    at_least,
    check_fields,
    given,
    one_of,
    option,
    require,
    within,
)


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of `rayswap evaluate`."""

    render: str = argument(
        "The --out folder of `rayswap render` (its manifest.parquet and _config.json).",
        given("the --out folder of a render"),
        path=True,
    )
    a: str = common.faces_of("a", "Faces of A (OUT/faces/a of `rayswap extract`).")
    b: str = common.faces_of("b", "Faces of B.")
    every_n: int = option(1, "Evaluate every n-th frame of each video.", at_least(1))
    max_frames: int | None = option(
        None,
        "Evaluate at most this many (sampled) frames per video, from its start.",
        at_least(1),
        show_default=False,
    )
    gallery_size: int = option(
        200, "Faces of A and of B embedded as the identity galleries.", at_least(1)
    )
    workers: int | None = common.workers(
        "Evaluator actors. Default: one per --cpus-per-worker CPUs, one CPU kept free."
    )
    cpus_per_worker: float = common.cpus_per_worker("CPUs per actor.")
    address: str | None = common.address()
    max_error_fraction: float = common.max_error_fraction()

    def __post_init__(self) -> None:
        check_fields(self)
        require(self.a != self.b, "b", self.b, "must differ from --a")


@dataclass(frozen=True)
class VerifyConfig:
    """Settings of `rayswap verify`."""

    videos: tuple[str, ...] = argument(
        "Videos to check.", given("at least one VIDEO"), path=True, metavar="VIDEOS..."
    )
    watermark_key: str = option(
        DEFAULT_KEY, "Key the videos were marked with.", (bool, "must not be empty")
    )
    threshold: float = option(
        DEFAULT_THRESHOLD,
        "z-score above which a video with 3 or more frames with a face counts as marked (one "
        "or two frames need more).",
        above(0),
    )
    max_frames: int = option(120, "Frames sampled per video.", at_least(3))
    detect_size: int = common.detect_size()
    min_score: float = common.min_score("Smallest detector score of a face that is checked.")
    json: bool = option(
        False, "Print one JSON array of verdicts instead of lines.", decls=("--json",)
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "videos", tuple(self.videos))
        check_fields(self)


FACES_REPORT_ENGINES = ("auto", "local", "ray")  # where pipelines/faces_report/driver.py works


@dataclass(frozen=True)
class FacesReportConfig:
    """Settings of `rayswap faces report`."""

    faces: str = argument(
        "Faces Parquet: a folder or URI as extract writes it (OUT/faces/<identity>, or "
        "OUT/faces for every identity), or one .parquet file.",
        given("a faces folder or URI"),
        path=True,
    )
    out: str = common.out(
        "Folder or URI for report.json, contact_sheet.png and, with filters, the cleaned "
        "dataset (OUT/faces/<identity>). Never inside FACES."
    )
    min_sharpness: float | None = option(
        None,
        "Filter: drop faces whose sharpness (variance of Laplacian) is below.",
        at_least(0),
        show_default=False,
    )
    drop_duplicates: bool = option(
        False, "Filter: drop near-duplicates, keeping the first of each."
    )
    duplicate_threshold: float = option(
        2.0,
        "Near-duplicate: mean absolute difference of 16x16 grey thumbnails below this many "
        "grey levels (0-255).",
        (lambda v: 0 < v <= 64, "must be in (0, 64] grey levels"),
    )
    max_identity_distance: float | None = option(
        None,
        "Filter: drop faces whose identity embedding is farther than this from their "
        "identity's centre (dlib distance; the report suggests a cutoff).",
        above(0),
        show_default=False,
    )
    identity: bool = option(
        True, "Embed faces with dlib for identity outliers (needs the eval extra)."
    )
    top: int = option(10, "How many of the farthest faces to list.", at_least(1))
    sheet_faces: int = option(48, "Faces on the contact sheet.", within(0, 400))
    engine: str = option(
        "auto",
        "Where the per-face work runs: auto (this process for small datasets, Ray for large "
        "ones or with --address), local or ray.",
        one_of(FACES_REPORT_ENGINES),
    )
    workers: int | None = common.workers("Ray actors that decode and embed. Default: one per CPU.")
    address: str | None = common.address()

    def __post_init__(self) -> None:
        check_fields(self)
        require(
            self.identity or self.max_identity_distance is None,
            "max_identity_distance",
            self.max_identity_distance,
            "needs identity embeddings; drop --no-identity",
        )

    @property
    def filtering(self) -> bool:
        return (
            self.min_sharpness is not None
            or self.drop_duplicates
            or self.max_identity_distance is not None
        )


@dataclass(frozen=True)
class DemoConfig:
    """Settings of `rayswap demo`."""

    out: str = option(
        "rayswap-demo",
        "Folder for the sample clips and every output.",
        given("a folder"),
        path=True,
    )
    frames: int = option(60, "Frames per generated sample clip.", at_least(8))
    steps: int = option(60, "Training steps of the demo model.", at_least(1))

    def __post_init__(self) -> None:
        check_fields(self)
