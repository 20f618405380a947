"""One opener for faces datasets: one file rule and one set of errors for every reader."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ops.faces_dataset import faces_parquet_files, open_faces
from tests.pipelines.faces_data import write_faces


def test_open_faces_finds_parquet_files_in_nested_folders(tmp_path):
    write_faces(tmp_path / "faces" / "a", "a", 4)
    write_faces(tmp_path / "faces" / "b", "b", 3)
    (tmp_path / "faces" / "_config.json").write_text("{}")  # not a part of the dataset
    faces = open_faces(str(tmp_path / "faces"), "--a")
    assert len(faces.files) == 2 and all(f.endswith(".parquet") for f in faces.files)
    assert faces.dataset.count_rows() == faces.usable_rows() == 7


def test_open_faces_takes_one_parquet_file_and_refuses_other_files(tmp_path):
    folder = write_faces(tmp_path / "a", "a", 3)
    (path,) = faces_parquet_files(str(folder))
    assert open_faces(path, "--a").files == [path]
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ValueError, match="--a: no faces Parquet files in .*notes.txt"):
        open_faces(str(other), "--a")


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda p: p / "missing", FileNotFoundError, "--b: faces dataset not found"),
        (lambda p: p, ValueError, "--b: no faces Parquet files in"),
    ],
)
def test_open_faces_names_the_flag_and_the_path(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        open_faces(str(make(tmp_path)), "--b")


def test_open_faces_refuses_another_schema_and_unreadable_files(tmp_path):
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="FACES"):
        open_faces(str(tmp_path / "other.parquet"), "FACES")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "part.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="cannot be read as Parquet"):
        open_faces(str(tmp_path / "broken"), "FACES")


def test_open_faces_without_a_usable_face(tmp_path):
    folder = write_faces(tmp_path / "a", "a", 2)
    (path,) = faces_parquet_files(str(folder))
    table = pq.read_table(path)
    errors = pa.array(["ValueError: bad"] * table.num_rows, pa.string())
    table = table.set_column(table.schema.get_field_index("error"), "error", errors)
    pq.write_table(table, path)
    with pytest.raises(ValueError, match="holds no usable face"):
        open_faces(str(folder), "--a")
    assert open_faces(str(folder), "--a", need_faces=False).usable_rows() == 0
