"""Training data: pre-flight checks of the faces Parquet, and the Ray Data pipeline that
decodes them for the train workers.

    inspect_faces  Ray-free: files exist, schema, row counts, one coverage (exit 2 when bad)
    load_faces     read_parquet -> decode at the training resolution (corrupt rows skipped and
                   counted) -> materialize -> hold back preview faces

The datasets carry decoded uint8 faces and crop landmarks only; augmentation runs on the
training device (`pipelines.train.feed`).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc
import ray

from ops import schema, storage
from ops.augment import load_face
from ops.checkpoint import (
    MODEL_FLAGS,
    check_compatible,
    find_latest_checkpoint,
    model_config,
    model_differences,
    read_checkpoint_config,
)
from ops.faces_dataset import open_faces
from ops.model import ModelConfig
from pipelines.config import TrainConfig
from pipelines.runtime.ray_setup import wait_for_free_cpu

READ_COLUMNS = [schema.IMAGE, schema.LANDMARKS, schema.AFFINE, schema.COVERAGE, schema.ERROR]


@dataclass
class FacesInfo:
    """One identity's faces dataset as found before and after decoding."""

    path: str
    files: list[str]
    rows: int  # rows in the Parquet files
    error_rows: int  # rows extract marked with an error
    coverage: float
    size: int  # most common source crop side, px
    decoded: int = 0  # rows decoded fine (set by load_faces)

    @property
    def skipped(self) -> int:
        """Rows not trained on: error rows plus corrupt images."""
        return self.rows - self.decoded if self.decoded else self.error_rows


def inspect_faces(path: str, side: str, cfg: TrainConfig) -> FacesInfo:
    """Check one identity's faces Parquet without Ray; raise ValueError/FileNotFoundError."""
    faces = open_faces(path, f"--{side}", need_faces=False)
    files, dataset = faces.files, faces.dataset
    table = dataset.to_table(columns=[schema.COVERAGE, schema.SIZE, schema.ERROR])
    errors = int(pc.sum(pc.is_valid(table[schema.ERROR])).as_py() or 0)
    usable = table.num_rows - errors
    needed = cfg.batch_size * cfg.workers + cfg.preview_faces
    if usable < needed:
        raise ValueError(
            f"--{side}: {path} has {usable} usable faces, fewer than one batch plus the preview "
            f"({cfg.batch_size} x {cfg.workers} workers + {cfg.preview_faces} = {needed}); "
            f"extract more faces or lower --batch-size"
        )
    coverages = sorted({round(float(c), 4) for c in table[schema.COVERAGE].to_pylist()})
    if len(coverages) != 1:
        raise ValueError(f"--{side}: faces of several coverages {coverages} in {path}")
    sizes = Counter(int(s) for s in table[schema.SIZE].to_pylist())
    return FacesInfo(
        path=path,
        files=files,
        rows=table.num_rows,
        error_rows=errors,
        coverage=coverages[0],
        size=sizes.most_common(1)[0][0],
    )


def check_resume(cfg: TrainConfig, expect: ModelConfig, coverage: float) -> None:
    """A checkpoint already in OUT must hold the same model and face alignment; the error
    names the flags that differ (--model when it is another family)."""
    latest = find_latest_checkpoint(cfg.out) if storage.exists(cfg.out) else None
    if latest is None:
        return
    config = read_checkpoint_config(latest)
    found = model_config(config, latest)
    try:
        check_compatible(found, expect, latest)
    except ValueError as exc:
        flags = "/".join(
            dict.fromkeys(MODEL_FLAGS.get(key, key) for key in model_differences(found, expect))
        )
        raise ValueError(
            f"--out: {exc}; resume with the same {flags} or train into another --out"
        ) from exc
    if abs(float(config["coverage"]) - coverage) > 1e-4:
        raise ValueError(
            f"--out: checkpoint {latest} was trained on faces of coverage {config['coverage']}, "
            f"this run's model sees coverage {coverage} (--coverage, else the faces')"
        )


def decode_faces(
    batch: dict[str, np.ndarray], resolution: int, coverage: float | None = None
) -> dict[str, np.ndarray]:
    """Ray Data UDF: crop bytes -> (N, R, R, 3) uint8 faces, (N, 10) crop landmarks, coverage.

    coverage: the model's (--coverage), a centre region of each crop; None keeps the crop's.

    Rows with an extract error or an undecodable image are left out; the driver counts
    them as rows read minus rows decoded. A batch without the error column has none.
    """
    faces, landmarks, coverages = [], [], []
    errors = batch.get(schema.ERROR, [None] * len(batch[schema.IMAGE]))
    for payload, points, affine, cov, error in zip(
        batch[schema.IMAGE],
        batch[schema.LANDMARKS],
        batch[schema.AFFINE],
        batch[schema.COVERAGE],
        errors,
        strict=True,
    ):
        if error is not None or payload is None:
            continue
        zoom = 1.0 if coverage is None else float(cov) / coverage
        try:
            face, points_crop = load_face(
                payload, np.asarray(points), np.asarray(affine).reshape(2, 3), resolution, zoom
            )
        except ValueError:  # corrupt image bytes: skip, counted by the driver
            continue
        faces.append(face)
        landmarks.append(points_crop.reshape(-1))
        coverages.append(cov if coverage is None else coverage)
    return {
        "face": np.stack(faces) if faces else np.zeros((0, resolution, resolution, 3), np.uint8),
        "landmarks": np.asarray(landmarks, np.float32).reshape(-1, 10),
        "coverage": np.asarray(coverages, np.float32),
    }


def load_faces(path: str, side: str, cfg: TrainConfig, info: FacesInfo) -> tuple[Any, np.ndarray]:
    """Decode one identity once; return (training dataset, held-back preview faces)."""
    filesystem, _ = storage.resolve(path)
    wait_for_free_cpu()  # an earlier stage's actors may still be giving back their CPUs
    decoded = (
        ray.data.read_parquet(
            [storage.resolve(f)[1] for f in info.files],
            filesystem=filesystem,
            columns=READ_COLUMNS,
        )
        .map_batches(
            functools.partial(decode_faces, resolution=cfg.resolution, coverage=cfg.coverage),
            batch_format="numpy",
            batch_size=64,
        )
        .materialize()
    )
    info.decoded = decoded.count()
    needed = cfg.batch_size * cfg.workers + cfg.preview_faces
    if info.decoded < needed:
        raise ValueError(
            f"--{side}: only {info.decoded} of {info.rows} faces in {path} decode "
            f"({info.skipped} corrupt or failed); need {needed}"
        )
    train, held = decoded.split_at_indices([info.decoded - cfg.preview_faces])
    preview = np.stack([row["face"] for row in held.take_all()])
    # Blocks are video segments in order: visit them in a new order every epoch; the
    # workers shuffle the faces within (on the device, or in a local shuffle buffer).
    return train.randomize_block_order(), preview
