"""Opening a faces dataset (extract's Parquet): one file rule and one check for all readers.

    faces = open_faces("data/faces/a", "--a")   # FacesDataset(path, files, dataset)

A faces dataset is a Parquet file, or a folder / object-store prefix whose `.parquet` files
(searched recursively; a query string such as `?endpoint_override=...` is not part of the
name) are its parts. Readers get the files and a `pyarrow.dataset` over them, checked
against the faces schema (ops/schema.py); every problem is a ValueError or
FileNotFoundError naming the flag and the path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from ops import schema, storage
from ops.align import transform_points
from ops.quality import decode_crop


@dataclass(frozen=True)
class FacesDataset:
    """A checked faces dataset: where it is, its Parquet files, and a dataset over them."""

    path: str
    files: list[str]
    dataset: pads.Dataset

    def usable_rows(self) -> int:
        """Rows that hold a face (no extract error)."""
        return self.dataset.count_rows(filter=pc.field(schema.ERROR).is_null())


def faces_parquet_files(path: str) -> list[str]:
    """The Parquet files of `path`: itself if it is a `.parquet` file, else those under it."""
    if storage.is_dir(path):
        found = storage.list_files(path)
    else:
        found = [path]
    return [f for f in found if storage.strip_query(f).endswith(".parquet")]


def dataset_of(files: list[str]) -> pads.Dataset:
    """A `pyarrow.dataset` over Parquet files of one filesystem (local or object store)."""
    filesystem, _ = storage.resolve(files[0])
    return pads.dataset(
        [storage.resolve(f)[1] for f in files], filesystem=filesystem, format="parquet"
    )


def open_faces(path: str, flag: str, need_faces: bool = True) -> FacesDataset:
    """Open and check the faces dataset at `path`, given by `flag`.

    Raises FileNotFoundError when nothing is there, ValueError when it holds no Parquet
    file, cannot be read as Parquet, has another schema, or (with `need_faces`) holds no
    usable face.
    """
    if not storage.exists(path):
        raise FileNotFoundError(f"{flag}: faces dataset not found: {path} (run `rayswap extract`)")
    files = faces_parquet_files(path)
    if not files:
        raise ValueError(f"{flag}: no faces Parquet files in {path}")
    try:
        dataset = dataset_of(files)
    except Exception as exc:  # noqa: BLE001 - any unreadable file makes the dataset unusable
        raise ValueError(f"{flag}: {path} cannot be read as Parquet ({exc})") from exc
    schema.check_faces_schema(dataset.schema, f"{flag} {path}")
    faces = FacesDataset(path, files, dataset)
    if need_faces and faces.usable_rows() == 0:
        raise ValueError(f"{flag}: {path} holds no usable face")
    return faces


def sample_faces(
    files: list[str], limit: int, skip: Callable[[str, int], bool] | None = None
) -> tuple[dict[int, list], dict[int, list]]:
    """Up to `limit` usable faces spread evenly over a dataset, grouped by crop size.

    skip: (video, frame) -> True for rows to leave out (e.g. a training run's held-out
    faces). Returns (crops, landmarks) by size: (R, R, 3) uint8 crops and (5, 2) crop-px
    landmarks; corrupt crops are left out.
    """
    dataset = dataset_of(files)
    meta = dataset.to_table(columns=[schema.ERROR, schema.VIDEO, schema.FRAME])
    usable = pc.is_null(meta[schema.ERROR]).to_numpy(zero_copy_only=False)
    if skip is not None:
        videos, frames = meta[schema.VIDEO].to_pylist(), meta[schema.FRAME].to_pylist()
        usable &= ~np.asarray([skip(v, f) for v, f in zip(videos, frames, strict=True)], bool)
    usable = np.flatnonzero(usable)
    chosen = usable[np.linspace(0, len(usable) - 1, min(limit, len(usable))).round().astype(int)]
    rows = dataset.take(
        pa.array(np.unique(chosen)), columns=[schema.IMAGE, schema.LANDMARKS, schema.AFFINE]
    )
    crops: dict[int, list] = {}
    points: dict[int, list] = {}
    for row in rows.to_pylist():
        try:
            crop = decode_crop(row[schema.IMAGE])
        except ValueError:
            continue
        affine = np.asarray(row[schema.AFFINE], np.float32).reshape(2, 3)
        landmarks = transform_points(np.asarray(row[schema.LANDMARKS]).reshape(5, 2), affine)
        crops.setdefault(crop.shape[0], []).append(crop)
        points.setdefault(crop.shape[0], []).append(landmarks)
    return crops, points
