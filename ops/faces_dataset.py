"""Opening a faces dataset (extract's Parquet): one file rule and one check for all readers.

    faces = open_faces("data/faces/a", "--a")   # FacesDataset(path, files, dataset)

A faces dataset is a Parquet file, or a folder / object-store prefix whose `.parquet` files
(searched recursively; a query string such as `?endpoint_override=...` is not part of the
name) are its parts. Readers get the files and a `pyarrow.dataset` over them, checked
against the faces schema (ops/schema.py); every problem is a ValueError or
FileNotFoundError naming the flag and the path.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.compute as pc
import pyarrow.dataset as pads

from ops import schema, storage


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
