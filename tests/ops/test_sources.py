import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ops import storage
from ops.sources import DEFAULT_IDENTITY, expand_inputs, video_id


@pytest.fixture
def archive(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "deep").mkdir()
    for name in ("a/one.mp4", "a/deep/two.MOV", "a/readme.txt", "b.mkv"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_expand_inputs_walks_folders_for_video_files(archive):
    sources = expand_inputs([str(archive / "a")], "a")
    assert [os.path.basename(s.uri) for s in sources] == ["two.MOV", "one.mp4"]
    assert {s.identity for s in sources} == {"a"}


def test_expand_inputs_globs_and_keeps_missing_paths(archive):
    sources = expand_inputs([str(archive / "**/*.mp4"), str(archive / "gone.mp4")], None)
    assert [os.path.basename(s.uri) for s in sources] == ["one.mp4", "gone.mp4"]
    assert sources[0].identity == DEFAULT_IDENTITY


def test_expand_inputs_reads_csv_and_parquet_manifests(archive):
    (archive / "m.csv").write_text("uri,identity\na/one.mp4,a\nb.mkv,b\n")
    table = pa.table({"uri": [str(archive / "b.mkv")]})
    pq.write_table(table, archive / "m.parquet")
    sources = expand_inputs([str(archive / "m.csv"), str(archive / "m.parquet")], None)
    assert [(os.path.basename(s.uri), s.identity) for s in sources] == [
        ("one.mp4", "a"),
        ("b.mkv", "b"),
        ("b.mkv", DEFAULT_IDENTITY),
    ]
    assert all(os.path.isabs(s.uri) for s in sources)


def test_manifest_without_uri_column_is_a_clear_error(archive):
    (archive / "m.csv").write_text("path\nb.mkv\n")
    with pytest.raises(ValueError, match="'uri' column"):
        expand_inputs([str(archive / "m.csv")], None)


def test_video_id_is_stable_and_changes_with_the_file(archive):
    path = str(archive / "b.mkv")
    first = video_id(path)
    assert first == video_id(path) and len(first) == 16
    (archive / "b.mkv").write_bytes(b"longer content")
    assert video_id(path) != first
    assert len(video_id(str(archive / "nothing.mp4"))) == 16


def test_storage_join_keeps_uri_queries():
    uri = "s3://bucket/out?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.join(uri, "faces", "a") == (
        "s3://bucket/out/faces/a?endpoint_override=127.0.0.1:9000&scheme=http"
    )
    assert storage.join("/data/out", "faces") == "/data/out/faces"


def test_write_bytes_atomic_replaces_whole_files(tmp_path):
    path = str(tmp_path / "x" / "f.bin")
    storage.write_bytes_atomic(path, b"one")
    storage.write_bytes_atomic(path, b"two")
    assert open(path, "rb").read() == b"two"
    assert os.listdir(tmp_path / "x") == ["f.bin"]  # no temp files left behind
