"""The Parquet contracts of rayswap: column names and Arrow schemas, in one place.

Faces dataset (written by extract, read by train and render): one row per aligned face.
Errors dataset: one row per failed video or segment. Render manifest: one row per input video.
Every other module refers to columns through these constants.
"""

from __future__ import annotations

import pyarrow as pa

CONFIG_FILE = "_config.json"  # beside every output: the resolved config and library versions
SCHEMA_VERSION = 2  # 2: faces gained identity_distance (extract --reference)

# faces dataset
IDENTITY = "identity"
VIDEO = "video"
VIDEO_ID = "video_id"
FRAME = "frame"
TIME_S = "time_s"
FACE = "face"
SCORE = "score"
BBOX = "bbox"
LANDMARKS = "landmarks"
AFFINE = "affine"
SIZE = "size"
COVERAGE = "coverage"
IMAGE = "image"
IMAGE_FORMAT = "image_format"
SHARPNESS = "sharpness"
IDENTITY_DISTANCE = "identity_distance"
ERROR = "error"

FACES_SCHEMA = pa.schema(
    [
        pa.field(IDENTITY, pa.string(), nullable=False),
        pa.field(VIDEO, pa.string(), nullable=False),
        pa.field(VIDEO_ID, pa.string(), nullable=False),
        pa.field(FRAME, pa.int64(), nullable=False),
        pa.field(TIME_S, pa.float64(), nullable=False),
        pa.field(FACE, pa.int32(), nullable=False),
        pa.field(SCORE, pa.float32()),
        pa.field(BBOX, pa.list_(pa.float32(), 4)),  # x0, y0, x1, y1 in frame pixels
        pa.field(LANDMARKS, pa.list_(pa.float32(), 10)),  # 5 x (x, y) in frame pixels
        pa.field(AFFINE, pa.list_(pa.float32(), 6)),  # row-major 2x3, frame -> crop
        pa.field(SIZE, pa.int32()),
        pa.field(COVERAGE, pa.float32()),
        pa.field(IMAGE, pa.binary()),
        pa.field(IMAGE_FORMAT, pa.string()),  # "png", "jpeg" or "webp"
        pa.field(SHARPNESS, pa.float32()),
        # distance to the --reference person (ops.identity); null when extracted without one
        pa.field(IDENTITY_DISTANCE, pa.float32()),
        pa.field(ERROR, pa.string()),  # null when the row is fine
    ],
    metadata={b"rayswap.schema": b"faces", b"rayswap.schema_version": str(SCHEMA_VERSION).encode()},
)

# errors dataset
SEGMENT_START = "segment_start"
STAGE = "stage"
ACTION = "action"

ERRORS_SCHEMA = pa.schema(
    [
        pa.field(VIDEO, pa.string(), nullable=False),
        pa.field(VIDEO_ID, pa.string()),
        pa.field(IDENTITY, pa.string()),
        pa.field(SEGMENT_START, pa.int64()),
        pa.field(STAGE, pa.string(), nullable=False),  # "plan", "probe", "decode", "detect", ...
        pa.field(ERROR, pa.string(), nullable=False),  # "TypeName: message"
        pa.field(ACTION, pa.string(), nullable=False),  # what was done about it
    ],
    metadata={
        b"rayswap.schema": b"errors",
        b"rayswap.schema_version": str(SCHEMA_VERSION).encode(),
    },
)

# render manifest
OUTPUT = "output"
FRAMES = "frames"
SWAPPED_FRAMES = "swapped_frames"
FACES_MISSED = "faces_missed"  # frames without a face
SECONDS = "seconds"
CHECKPOINT = "checkpoint"  # the exact checkpoint directory the video was rendered with
CHECKPOINT_STEP = "checkpoint_step"

RENDER_MANIFEST_SCHEMA = pa.schema(
    [
        pa.field(VIDEO, pa.string(), nullable=False),
        pa.field(OUTPUT, pa.string()),
        pa.field(FRAMES, pa.int64()),
        pa.field(SWAPPED_FRAMES, pa.int64()),
        pa.field(FACES_MISSED, pa.int64()),
        pa.field(SECONDS, pa.float64()),
        pa.field(ERROR, pa.string()),
        pa.field(CHECKPOINT, pa.string()),
        pa.field(CHECKPOINT_STEP, pa.int64()),
    ],
    metadata={b"rayswap.schema": b"render_manifest"},
)


def format_error(exc: BaseException) -> str:
    """The one error format of every dataset: "TypeName: message"."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else "(no message)"
    return f"{type(exc).__name__}: {message}"


# faces columns added after schema version 1, with the version that added them: datasets
# written before them lack the column, and readers treat it as all null
ADDED_FACES_COLUMNS = {IDENTITY_DISTANCE: 2}


def check_faces_schema(schema: pa.Schema, where: str) -> None:
    """Raise ValueError naming `where` if `schema` lacks a faces column or has a wrong type.

    Columns of ADDED_FACES_COLUMNS may be missing (datasets of an earlier schema version).
    """
    for field in FACES_SCHEMA:
        if field.name not in schema.names:
            if field.name in ADDED_FACES_COLUMNS:
                continue
            raise ValueError(
                f"{where}: not a rayswap faces dataset (missing column {field.name!r})"
            )
        got = schema.field(field.name).type
        if got != field.type:
            raise ValueError(
                f"{where}: column {field.name!r} has type {got}, expected {field.type}"
            )
