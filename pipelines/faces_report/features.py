"""The per-face work of `rayswap faces report`: decode, thumbnail, pose, identity embedding.

Two engines compute the same `Features`:
- "local": this process reads the Parquet files batch by batch, with one embedder;
- "ray": Ray Data reads them and a pool of `FaceFeaturesUDF` actors (one embedder each,
  loaded once) does the work; only the small results (keys, a 16 x 16 thumbnail and a
  128-D embedding per face, under 1 KB) come back to the driver, never the images.
Decoding a crop takes about 1 ms; dlib's embedding about 90 ms of one core per face, so
with identity on the work is the embedding and spreads over the cluster's CPUs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ops import schema, storage
from ops.align import transform_points
from ops.face_stats import THUMB_PX, pose_proxies, thumbnails
from ops.quality import decode_crop

EMBEDDING_DIM = 128  # ops.identity.EMBEDDING_DIM, without importing dlib here
PATH = "path"  # the Parquet file a row came from (Ray Data's include_paths column)
OK, ERROR_ROW, UNREADABLE = "ok", "error", "unreadable"
KEY_COLUMNS = [schema.IDENTITY, schema.VIDEO, schema.VIDEO_ID, schema.FRAME, schema.FACE]
READ_COLUMNS = [
    *KEY_COLUMNS,
    schema.SHARPNESS,
    schema.LANDMARKS,
    schema.AFFINE,
    schema.IMAGE,
    schema.ERROR,
]
BATCH_ROWS = 32
BLOCK_ROWS_MAX = 256  # about 20 s of dlib on one core


@dataclass
class Features:
    """One entry per face row, sorted by (identity, video_id, frame, face)."""

    identity: np.ndarray  # (N,) object str
    video: np.ndarray  # (N,) object str
    video_id: np.ndarray  # (N,) object str
    frame: np.ndarray  # (N,) int64
    face: np.ndarray  # (N,) int64
    path: np.ndarray  # (N,) object str: inner path of the source Parquet file
    sharpness: np.ndarray  # (N,) float32
    yaw: np.ndarray  # (N,) float32
    pitch: np.ndarray  # (N,) float32
    status: np.ndarray  # (N,) object str: OK, ERROR_ROW or UNREADABLE
    thumb: np.ndarray  # (N, 16 * 16) uint8
    embedding: np.ndarray  # (N, 128) float32, zeros without identity

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def ok(self) -> np.ndarray:
        return self.status == OK


def _points(value: object, count: int) -> np.ndarray:
    if value is None:
        return np.full(count, np.nan, np.float32)
    return np.asarray(value, np.float32).reshape(count)


def face_features(batch: dict[str, np.ndarray], embedder: object | None) -> dict[str, np.ndarray]:
    """Features of a batch of face rows (numpy batch of READ_COLUMNS + PATH).

    Rows extract marked with an error are ERROR_ROW; rows whose image does not decode or
    whose landmarks are not finite are UNREADABLE; both keep their keys, zeros elsewhere.
    """
    n = len(batch[schema.FRAME])
    landmarks = np.stack([_points(v, 10) for v in batch[schema.LANDMARKS]]) if n else None
    yaw, pitch = pose_proxies(landmarks) if n else (np.zeros(0, np.float32),) * 2
    status = np.full(n, OK, object)
    thumbs = np.zeros((n, THUMB_PX * THUMB_PX), np.uint8)
    embeddings = np.zeros((n, EMBEDDING_DIM), np.float32)
    by_size: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for index in range(n):
        payload, error = batch[schema.IMAGE][index], batch[schema.ERROR][index]
        if error is not None or payload is None:
            status[index] = ERROR_ROW
            continue
        affine = _points(batch[schema.AFFINE][index], 6).reshape(2, 3)
        points = landmarks[index].reshape(5, 2)
        try:
            crop = decode_crop(bytes(payload))
        except ValueError:
            status[index] = UNREADABLE
            continue
        points_crop = transform_points(points, affine)
        if crop.shape[0] != crop.shape[1] or not np.isfinite(points_crop).all():
            status[index] = UNREADABLE
            continue
        by_size.setdefault(crop.shape[0], []).append((index, crop, points_crop))
    for items in by_size.values():  # crops of one size embed as one batch
        rows = np.array([i for i, _, _ in items])
        faces = np.stack([crop for _, crop, _ in items])
        thumbs[rows] = thumbnails(faces).reshape(len(rows), -1)
        if embedder is not None:
            embeddings[rows] = embedder.embed(faces, np.stack([p for _, _, p in items]))
    return {
        **{key: np.asarray(batch[key]) for key in KEY_COLUMNS},
        PATH: np.asarray(batch[PATH]),
        schema.SHARPNESS: np.asarray(batch[schema.SHARPNESS], np.float32),
        "yaw": yaw,
        "pitch": pitch,
        "status": status,
        "thumb": thumbs,
        "embedding": embeddings,
    }


def make_embedder(identity: bool) -> object | None:
    if not identity:
        return None
    from ops.identity import IdentityEmbedder

    return IdentityEmbedder()


class FaceFeaturesUDF:
    """Ray Data actor: holds one identity embedder (loaded once) and computes features."""

    def __init__(self, identity: bool) -> None:
        self.embedder = make_embedder(identity)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return face_features(batch, self.embedder)


def _numpy_batch(table: pa.Table, path: str) -> dict[str, np.ndarray]:
    batch = {name: table.column(name).to_numpy(zero_copy_only=False) for name in READ_COLUMNS}
    batch[PATH] = np.full(table.num_rows, path, object)
    return batch


def iter_local_batches(files: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Numpy batches of READ_COLUMNS + PATH, file by file, in this process."""
    for path in files:
        filesystem, inner = storage.resolve(path)
        with filesystem.open_input_file(inner) as handle:
            parquet = pq.ParquetFile(handle)
            for record_batch in parquet.iter_batches(BATCH_ROWS, columns=READ_COLUMNS):
                yield _numpy_batch(pa.Table.from_batches([record_batch]), inner)


def compute_local(files: list[str], identity: bool) -> Features:
    embedder = make_embedder(identity)
    return collect(face_features(batch, embedder) for batch in iter_local_batches(files))


def compute_ray(
    files: list[str], identity: bool, rows: int, workers: int | None, max_workers: int
) -> Features:
    """The same features through Ray Data: read_parquet -> actor pool -> driver."""
    import ray.data

    from pipelines.runtime.ray_setup import actor_pool

    filesystem, _ = storage.resolve(files[0])
    # [1] read the faces Parquet (images stay in the object store, next to the actors)
    dataset = ray.data.read_parquet(
        [storage.resolve(f)[1] for f in files],
        filesystem=filesystem,
        include_paths=True,
        num_cpus=0,  # I/O bound: the actors may own every CPU
    ).select_columns([*READ_COLUMNS, PATH])
    # Parquet readers make few large blocks, and one block goes to one actor: cut them
    # into blocks of a few seconds of embedding each, so every actor gets work
    block_rows = max(8, min(BLOCK_ROWS_MAX, -(-rows // (4 * max_workers))))
    dataset = dataset.repartition(target_num_rows_per_block=block_rows)
    # [2] decode + embed on a pool of actors, one embedder each
    features = dataset.map_batches(
        FaceFeaturesUDF,
        fn_constructor_kwargs={"identity": identity},
        batch_size=BATCH_ROWS,
        batch_format="numpy",
        compute=actor_pool(workers, max_workers),
        num_cpus=1,
    )
    # [3] only keys, thumbnails and embeddings come back to the driver
    return collect(features.iter_batches(batch_size=4096, batch_format="numpy"))


def collect(batches: Iterator[dict[str, np.ndarray]]) -> Features:
    """Concatenate feature batches and sort them by (identity, video_id, frame, face)."""
    parts: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        for key, value in batch.items():
            parts.setdefault(key, []).append(np.asarray(value))
    if not parts:
        raise ValueError("the faces dataset has no rows")
    merged = {key: np.concatenate(values) for key, values in parts.items()}
    order = np.lexsort(
        (
            merged[schema.FACE],
            merged[schema.FRAME],
            merged[schema.VIDEO_ID].astype(str),
            merged[schema.IDENTITY].astype(str),
        )
    )
    merged = {key: value[order] for key, value in merged.items()}
    return Features(
        identity=merged[schema.IDENTITY].astype(object),
        video=merged[schema.VIDEO].astype(object),
        video_id=merged[schema.VIDEO_ID].astype(object),
        frame=merged[schema.FRAME].astype(np.int64),
        face=merged[schema.FACE].astype(np.int64),
        path=merged[PATH].astype(object),
        sharpness=merged[schema.SHARPNESS].astype(np.float32),
        yaw=merged["yaw"].astype(np.float32),
        pitch=merged["pitch"].astype(np.float32),
        status=merged["status"].astype(object),
        thumb=merged["thumb"].astype(np.uint8).reshape(len(order), -1),
        embedding=merged["embedding"].astype(np.float32).reshape(len(order), -1),
    )
