"""Every stage against a real S3-protocol server (moto) on 127.0.0.1: object-store URIs in
and out, on the shared local Ray. The endpoint and credentials travel in the URI query, so
the Ray workers need no environment of their own."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ops import schema, storage
from ops.sources import expand_inputs
from pipelines.config import ExtractConfig
from pipelines.extract.driver import run_extract

pytestmark = pytest.mark.ray


def read_s3_table(s3, prefix: str):
    keys = [k for k in s3.keys(prefix) if k.endswith(".parquet")]
    tables = [
        pq.read_table(io.BytesIO(s3.client().get_object(Bucket=s3.bucket, Key=k)["Body"].read()))
        for k in keys
    ]
    return tables


def test_storage_lists_globs_and_joins_s3_uris_with_query(s3_server, s3_videos):
    prefix = s3_server.uri("videos/")
    found = storage.list_files(prefix)
    assert [storage.strip_query(f) for f in found] == [
        s3_server.plain(key) for key in sorted(s3_videos.values())
    ]
    assert all(f.startswith("s3://testing:testing@") for f in found)  # credentials kept
    assert all(f.endswith("&region=us-east-1") for f in found)  # and the query
    matched = storage.expand_glob(s3_server.uri("videos/*/*.mp4"))
    assert [storage.strip_query(m) for m in matched] == [storage.strip_query(f) for f in found]
    sources = expand_inputs([s3_server.uri("videos/a/")], identity="a")
    assert [storage.strip_query(s.uri) for s in sources] == [s3_server.plain(s3_videos["a"])]
    target = storage.join(s3_server.uri("out"), "x", "y.bin")
    storage.write_bytes_atomic(target, b"payload")
    assert storage.read_bytes(target) == b"payload" and storage.exists(target)
    assert s3_server.keys("out/") == ["out/x/y.bin"]


def test_extract_reads_s3_videos_and_writes_s3_parquet(ray_local, s3_server, s3_videos):
    cfg = ExtractConfig(
        inputs=(s3_server.uri("videos/a/"),),
        out=s3_server.uri("extract-run/"),
        identity="a",
        size=128,
        workers=1,
    )
    summary = run_extract(cfg)
    assert summary.n_failed == 0 and summary.counts.faces == 12  # one face per frame
    keys = s3_server.keys("extract-run/")
    assert "extract-run/_config.json" in keys
    tables = read_s3_table(s3_server, "extract-run/faces/a/")
    assert len(tables) == 1 and tables[0].num_rows == 12
    schema.check_faces_schema(tables[0].schema, "faces/a")
    videos = set(tables[0].column(schema.VIDEO).to_pylist())
    assert videos == {s3_server.plain(s3_videos["a"])}  # no credentials in the rows
    saved = json.loads(
        s3_server.client()
        .get_object(Bucket=s3_server.bucket, Key="extract-run/_config.json")["Body"]
        .read()
    )
    assert saved["config"]["identity"] == "a"
    # a rerun resumes: the segment is already in the bucket
    again = run_extract(cfg)
    assert again.counts.skipped == 1 and again.counts.faces == 0


@pytest.fixture(scope="module")
def s3_trained(ray_local, s3_server, tmp_path_factory) -> dict:
    """Train 2 steps from faces Parquet in S3 to a checkpoint folder in S3."""
    from pipelines.config import TrainConfig
    from pipelines.train.driver import run_train
    from tests.pipelines.faces_data import write_faces

    root = tmp_path_factory.mktemp("s3faces")
    for identity, seed in (("a", 0), ("b", 1)):
        folder = write_faces(root / identity, identity, 8, seed=seed)
        for path in sorted(Path(folder).glob("*.parquet")):
            s3_server.client().upload_file(
                str(path), s3_server.bucket, f"train-faces/{identity}/{path.name}"
            )
    cfg = TrainConfig(
        a=s3_server.uri("train-faces/a/"),
        b=s3_server.uri("train-faces/b/"),
        out=s3_server.uri("train-out/"),
        workers=1,
        batch_size=4,
        steps=2,
        save_every=2,
        log_every=1,
        model="original",
        width=4,
        latent_dim=16,
        preview_faces=2,
    )
    return {"cfg": cfg, "summary": run_train(cfg)}


def test_train_reads_s3_faces_and_writes_s3_checkpoints(s3_server, s3_trained):
    summary = s3_trained["summary"]
    assert summary.step == 2 and summary.checkpoint
    keys = s3_server.keys("train-out/")
    assert any(k.endswith("/model.pt") for k in keys), keys
    assert any(k.endswith("/config.json") for k in keys)
    assert "testing:testing" not in storage.strip_query(summary.checkpoint)
