"""Training data: pre-flight checks of the faces Parquet, and the Ray Data pipeline that
decodes them for the train workers.

    inspect_faces  Ray-free: files exist, schema, row counts, one coverage (exit 2 when bad),
                   and which faces are held out (whole videos, or each video's last frames)
    load_faces     read_parquet -> decode at the training resolution (corrupt and held-out
                   rows skipped, counted) -> materialize -> hold back preview faces
    held_out_faces Ray-free: a sample of the held-out faces, decoded as training decodes
                   them and as their context crops (for the held-out scorer)

The datasets carry decoded uint8 faces and crop landmarks only; augmentation runs on the
training device (`pipelines.train.feed`).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from ops import schema, storage
from ops.augment import crop_face, load_face
from ops.checkpoint import (
    MODEL_FLAGS,
    check_compatible,
    find_latest_checkpoint,
    model_config,
    model_differences,
    read_checkpoint_config,
)
from ops.faces_dataset import dataset_of, open_faces
from ops.holdout import CONTEXT_PX, HeldOutSide
from ops.model import ModelConfig
from ops.quality import decode_crop
from pipelines.config import TrainConfig
from pipelines.config.train import DEFAULT_COVERAGE
from pipelines.runtime.ray_setup import wait_for_free_cpu

READ_COLUMNS = [
    schema.IMAGE,
    schema.LANDMARKS,
    schema.AFFINE,
    schema.COVERAGE,
    schema.ERROR,
    schema.VIDEO,
    schema.FRAME,
]
MIN_VIDEOS_TO_HOLD_ONE = 3  # an identity with this many videos gives one whole video


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
    holdout: dict[str, int] = field(default_factory=dict)  # video -> first held-out frame
    held_out: int = 0  # usable rows held out of training

    @property
    def skipped(self) -> int:
        """Rows not trained on for a fault: error rows plus corrupt images."""
        return self.rows - self.held_out - self.decoded if self.decoded else self.error_rows


def inspect_faces(path: str, side: str, cfg: TrainConfig) -> FacesInfo:
    """Check one identity's faces Parquet without Ray; raise ValueError/FileNotFoundError."""
    faces = open_faces(path, f"--{side}", need_faces=False)
    files, dataset = faces.files, faces.dataset
    columns = [schema.COVERAGE, schema.SIZE, schema.ERROR, schema.VIDEO, schema.FRAME]
    table = dataset.to_table(columns=columns)
    errors = int(pc.sum(pc.is_valid(table[schema.ERROR])).as_py() or 0)
    good = table.filter(pc.is_null(table[schema.ERROR]))
    holdout = plan_holdout(good[schema.VIDEO].to_pylist(), good[schema.FRAME].to_pylist(), cfg)
    videos, frames = good[schema.VIDEO].to_pylist(), good[schema.FRAME].to_pylist()
    held_out = sum(is_held_out(holdout, v, f) for v, f in zip(videos, frames, strict=True))
    usable = table.num_rows - errors - held_out
    needed = cfg.batch_size * cfg.workers + cfg.preview_faces
    if usable < needed:
        kept = f" after {held_out} held out (--holdout-videos/--holdout-share)" if held_out else ""
        raise ValueError(
            f"--{side}: {path} has {usable} usable faces{kept}, fewer than one batch plus the "
            f"preview ({cfg.batch_size} x {cfg.workers} workers + {cfg.preview_faces} = "
            f"{needed}); extract more faces or lower --batch-size"
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
        holdout=holdout,
        held_out=held_out,
    )


def plan_holdout(videos: list[str], frames: list[int], cfg: TrainConfig) -> dict[str, int]:
    """Which faces of one identity training never sees: {video: first held-out frame}.

    --holdout-videos N: the last N videos by name, whole (frame 0 on). Not given: one whole
    video when there are at least MIN_VIDEOS_TO_HOLD_ONE, else the last --holdout-share of
    every video's frames. Empty when nothing is held out.
    """
    by_video: dict[str, list[int]] = {}
    for video, frame in zip(videos, frames, strict=True):
        by_video.setdefault(video, []).append(int(frame))
    names = sorted(by_video)
    count = cfg.holdout_videos
    if count is None and len(names) >= MIN_VIDEOS_TO_HOLD_ONE:
        count = 1
    if count is not None:
        if count and count >= len(names):
            raise ValueError(
                f"--holdout-videos: {count} of {len(names)} videos would leave none to train on"
            )
        return {name: 0 for name in names[len(names) - count :]} if count else {}
    if cfg.holdout_share <= 0:
        return {}
    cut = {}
    for name in names:
        ordered = sorted(by_video[name])
        first = int(np.ceil(len(ordered) * (1 - cfg.holdout_share)))
        if first < len(ordered):
            cut[name] = ordered[first]
    return cut


def model_coverage(cfg: TrainConfig, info: Any) -> float:
    """The coverage of the model's input: --coverage, else DEFAULT_COVERAGE or, when the
    extracted faces (`info.coverage`) are narrower, theirs."""
    if cfg.coverage is not None:
        return float(cfg.coverage)
    return min(DEFAULT_COVERAGE, float(info.coverage))


def is_held_out(holdout: dict[str, int], video: str, frame: int) -> bool:
    first = holdout.get(video)
    return first is not None and int(frame) >= first


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
    batch: dict[str, np.ndarray],
    resolution: int,
    coverage: float | None = None,
    holdout: dict[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Ray Data UDF: crop bytes -> (N, R, R, 3) uint8 faces, (N, 10) crop landmarks, coverage.

    coverage: the model's (--coverage), a centre region of each crop; None keeps the crop's.
    holdout: {video: first held-out frame} (`plan_holdout`); those rows are left out.

    Rows with an extract error or an undecodable image are left out; the driver counts
    them as rows read minus rows decoded. A batch without the error column has none.
    """
    faces, landmarks, coverages = [], [], []
    count = len(batch[schema.IMAGE])
    errors = batch.get(schema.ERROR, [None] * count)
    held = (
        [
            is_held_out(holdout, str(v), int(f))
            for v, f in zip(batch[schema.VIDEO], batch[schema.FRAME], strict=True)
        ]
        if holdout
        else [False] * count
    )
    for payload, points, affine, cov, error, skip in zip(
        batch[schema.IMAGE],
        batch[schema.LANDMARKS],
        batch[schema.AFFINE],
        batch[schema.COVERAGE],
        errors,
        held,
        strict=True,
    ):
        if error is not None or payload is None or skip:
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
            functools.partial(
                decode_faces,
                resolution=cfg.resolution,
                coverage=model_coverage(cfg, info),
                holdout=info.holdout,
            ),
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
            f"({info.skipped} corrupt or failed, {info.held_out} held out); need {needed}"
        )
    train, held = decoded.split_at_indices([info.decoded - cfg.preview_faces])
    preview = np.stack([row["face"] for row in held.take_all()])
    # Blocks are video segments in order: visit them in a new order every epoch; the
    # workers shuffle the faces within (on the device, or in a local shuffle buffer).
    return train.randomize_block_order(), preview


def held_out_faces(info: FacesInfo, cfg: TrainConfig, coverage: float) -> HeldOutSide:
    """Up to --holdout-faces held-out faces, spread evenly over them: each decoded as
    training decodes it (model resolution and coverage) and as its context crop (extract's
    crop, at most CONTEXT_PX), which the scorer pastes the swap into as render would; with
    the context's px per source-frame px (the median of the faces'), at which the scorer's
    detector sees each face at its size in the frame, as evaluate's does."""
    dataset = dataset_of(info.files)
    meta = dataset.to_table(columns=[schema.VIDEO, schema.FRAME, schema.ERROR])
    rows = [
        index
        for index, (video, frame, error) in enumerate(
            zip(
                *(meta[c].to_pylist() for c in (schema.VIDEO, schema.FRAME, schema.ERROR)),
                strict=True,
            )
        )
        if error is None and is_held_out(info.holdout, video, frame)
    ]
    zoom = float(info.coverage) / coverage
    picks = np.unique(np.linspace(0, len(rows) - 1, min(cfg.holdout_faces, len(rows))).round())
    columns = [schema.IMAGE, schema.LANDMARKS, schema.AFFINE]
    chosen = pa.array([rows[int(i)] for i in picks] if rows else [], pa.int64())
    kept: list[tuple] = []
    scales: list[float] = []  # context px per frame px, each face's
    side = 0  # the context crops' side: the first crop's, at most CONTEXT_PX
    for row in dataset.take(chosen, columns=columns).to_pylist():
        payload, points = row[schema.IMAGE], np.asarray(row[schema.LANDMARKS])
        affine = np.asarray(row[schema.AFFINE]).reshape(2, 3)
        try:
            crop = decode_crop(payload)
            side = side or min(crop.shape[0], CONTEXT_PX)
            face = crop_face(crop, points, affine, cfg.resolution, zoom)
            context = crop_face(crop, points, affine, side)
        except ValueError:
            continue  # a corrupt crop: not scored
        kept.append((*face, *context))
        scales.append(float(np.hypot(affine[0, 0], affine[1, 0])) * side / crop.shape[0])
    if not kept:
        empty = np.zeros((0, cfg.resolution, cfg.resolution, 3), np.uint8)
        return HeldOutSide(empty, np.zeros((0, 5, 2), np.float32), empty, np.zeros((0, 5, 2)))
    faces, landmarks, context, points = (np.stack(part) for part in zip(*kept, strict=True))
    return HeldOutSide(
        faces,
        landmarks.astype(np.float32),
        context,
        points.astype(np.float32),
        zoom,
        frame_scale=float(np.median(scales)),
    )
