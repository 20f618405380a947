"""The faces of many people that `rayswap pretrain` trains on, balanced per identity.

    inspect_pool  Ray-free: the datasets open, one coverage, the identities and how many
                  faces each gives (at most --per-identity, by default the median count)
    load_pool     read_parquet -> keep a balanced share of each identity -> decode at the
                  training resolution -> materialize -> hold back two preview sets

Both sides of the model (a and b) draw from the same pool, so every decoder and code path
learns faces in general, of every identity; the identity column only decides how many of
each person's faces are kept, so no single person dominates. Which faces of a person are
kept is fixed by a hash of (identity, video, frame): a rerun trains on the same pool.
"""

from __future__ import annotations

import functools
import statistics
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc
import ray

from ops import schema, storage
from ops.faces_dataset import open_faces
from pipelines.config import PretrainConfig
from pipelines.runtime.ray_setup import wait_for_free_cpu
from pipelines.train.data import READ_COLUMNS, FacesInfo, decode_faces, model_coverage


@dataclass
class PoolInfo(FacesInfo):
    """The pool as found before decoding: FacesInfo of all FACES, and per identity."""

    found: dict[str, int] = field(default_factory=dict)  # usable faces per identity
    kept: dict[str, int] = field(default_factory=dict)  # drawn per identity (<= cap)
    cap: int = 0
    cutoff: dict[str, int] = field(default_factory=dict)  # highest hash kept per identity

    def to_dict(self) -> dict[str, Any]:
        return {"faces": self.path, "found": self.found, "kept": self.kept, "cap": self.cap}


def inspect_pool(cfg: PretrainConfig) -> PoolInfo:
    """Open every FACES dataset without Ray and plan the share of each identity."""
    files: list[str] = []
    found: Counter[str] = Counter()
    hashes: dict[str, list[int]] = {}
    coverages: set[float] = set()
    sizes: Counter[int] = Counter()
    rows = errors = 0
    for path in cfg.faces:
        faces = open_faces(path, "FACES")
        columns = [schema.IDENTITY, schema.VIDEO, schema.FRAME, schema.COVERAGE, schema.SIZE]
        table = faces.dataset.to_table(columns=[*columns, schema.ERROR])
        good = table.filter(pc.is_null(table[schema.ERROR]))
        for identity, video, frame in zip(
            *(good[c].to_pylist() for c in (schema.IDENTITY, schema.VIDEO, schema.FRAME)),
            strict=True,
        ):
            hashes.setdefault(identity, []).append(row_hash(identity, video, frame))
        files += faces.files
        rows += table.num_rows
        errors += table.num_rows - good.num_rows
        found.update(good[schema.IDENTITY].to_pylist())
        coverages |= {round(float(c), 4) for c in good[schema.COVERAGE].to_pylist()}
        sizes.update(int(s) for s in good[schema.SIZE].to_pylist())
    if len(set(files)) != len(files):
        raise ValueError("FACES: the same Parquet file is given twice (a folder and one inside it)")
    if len(found) < cfg.min_identities:
        raise ValueError(
            f"FACES: {len(found)} identities ({', '.join(sorted(found)) or 'none'}) in "
            f"{', '.join(cfg.faces)}; pretraining needs at least --min-identities "
            f"{cfg.min_identities} people"
        )
    if len(coverages) != 1:
        raise ValueError(
            f"FACES: faces of several coverages {sorted(coverages)}; extract every dataset "
            "of the pool with the same --coverage"
        )
    cap = cfg.per_identity or int(statistics.median(found.values()))
    kept = {name: min(count, cap) for name, count in sorted(found.items())}
    cutoff = {name: sorted(hashes[name])[kept[name] - 1] for name in kept}
    needed = cfg.batch_size * cfg.workers + 2 * cfg.preview_faces
    if sum(kept.values()) < needed:
        raise ValueError(
            f"FACES: {sum(kept.values())} faces kept, fewer than one batch plus two previews "
            f"({needed}); give more faces or lower --batch-size"
        )
    return PoolInfo(
        path=", ".join(cfg.faces),
        files=files,
        rows=rows,
        error_rows=errors,
        coverage=next(iter(coverages)),
        size=sizes.most_common(1)[0][0],
        found=dict(sorted(found.items())),
        kept=kept,
        cap=cap,
        cutoff=cutoff,
    )


def row_hash(identity: str, video: str, frame: int) -> int:
    """The fixed draw of one face: crc32 of identity/video/frame."""
    return zlib.crc32(f"{identity}/{video}/{int(frame)}".encode())


def keep_balanced(batch: dict[str, np.ndarray], cutoff: dict[str, int]) -> dict[str, np.ndarray]:
    """Ray Data UDF: the rows of a batch kept for the pool (those whose `row_hash` is at most
    their identity's `cutoff`); error rows are dropped."""
    keep = []
    for identity, video, frame, error in zip(
        batch[schema.IDENTITY],
        batch[schema.VIDEO],
        batch[schema.FRAME],
        batch[schema.ERROR],
        strict=True,
    ):
        limit = cutoff.get(str(identity), -1)
        keep.append(error is None and row_hash(str(identity), str(video), frame) <= limit)
    mask = np.asarray(keep, bool)
    # the error column goes: all None, Ray Data would hand it on as float NaN
    return {name: np.asarray(v)[mask] for name, v in batch.items() if name != schema.ERROR}


def load_pool(cfg: PretrainConfig, info: PoolInfo) -> tuple[Any, np.ndarray, np.ndarray]:
    """Decode the pool once; (training dataset, preview faces for a, preview faces for b)."""
    filesystem, _ = storage.resolve(info.files[0])
    wait_for_free_cpu()
    decoded = (
        ray.data.read_parquet(
            [storage.resolve(f)[1] for f in info.files],
            filesystem=filesystem,
            columns=[*READ_COLUMNS, schema.IDENTITY],
        )
        .map_batches(
            functools.partial(keep_balanced, cutoff=info.cutoff),
            batch_format="numpy",
            batch_size=256,
        )
        .map_batches(
            functools.partial(
                decode_faces, resolution=cfg.resolution, coverage=model_coverage(cfg, info)
            ),
            batch_format="numpy",
            batch_size=64,
        )
        .materialize()
    )
    info.decoded = decoded.count()
    previews = 2 * cfg.preview_faces
    if info.decoded < cfg.batch_size * cfg.workers + previews:
        raise ValueError(f"FACES: only {info.decoded} faces of the pool decode")
    # the last faces of the pool are held back for the previews, as train holds back its own
    train, held = decoded.split_at_indices([info.decoded - previews])
    faces = np.stack([row["face"] for row in held.take_all()])
    return train.randomize_block_order(), faces[: cfg.preview_faces], faces[cfg.preview_faces :]
