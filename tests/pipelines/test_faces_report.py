"""`rayswap faces report` on faces extracted from real clips of ../shared/data.

The input: person_a's neutral and happy clips every 12th frame, 3 faces of person_b mixed
in under the same identity (the outliers), a re-ingested copy of 4 of person_a's faces
under another video id (near-duplicates), one row extract marked with an error and one
whose image bytes are garbage (frames 998 and 999).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ops import schema
from ops.face_stats import robust_cutoff
from pipelines.cli import app
from pipelines.cli.faces import report_lines
from pipelines.config import ExtractConfig, FacesReportConfig, TrainConfig
from pipelines.extract.driver import run_extract
from pipelines.faces_report import driver as report_stage
from pipelines.faces_report.driver import run_faces_report
from pipelines.faces_report.features import OK, Features
from pipelines.faces_report.stats import (
    OUTLIER_MIN_DISTANCE,
    identity_outliers,
    yaw_classes,
)
from pipelines.train.data import inspect_faces
from tests.conftest import shared_video

pytest.importorskip("dlib", reason="identity embeddings need the eval extra")

A_CLIPS = ("person_a__mead_M030_front_neutral.mp4", "person_a__mead_M030_front_happy.mp4")
B_CLIP = "person_b__mead_W009_front_neutral.mp4"
COPY_VIDEO_ID = "zz-copy"  # sorts after the hash ids: the copies come after their originals
runner = CliRunner()


@dataclass
class Input:
    path: Path
    digest: dict[str, str]
    table: pa.Table  # every input row


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def faces_input(ray_local, tmp_path_factory) -> Input:
    clips = [str(shared_video(name)) for name in (*A_CLIPS, B_CLIP)]
    root = tmp_path_factory.mktemp("faces_report")
    cfg = ExtractConfig(
        inputs=tuple(clips), out=str(root / "extract"), identity="a", every_n=12, size=128
    )
    assert run_extract(cfg).n_failed == 0
    folder = root / "input" / "a"
    folder.mkdir(parents=True)
    first_a = None
    for path in sorted((root / "extract" / "faces" / "a").glob("*.parquet")):
        table = pq.read_table(path)
        if table.column(schema.VIDEO)[0].as_py().endswith(B_CLIP):
            table = table.slice(0, 3)  # a few faces of someone else
        elif first_a is None:
            first_a = table
        pq.write_table(table, folder / path.name)
    rows = first_a.slice(2, 4).to_pylist()
    for row in rows:
        row[schema.VIDEO], row[schema.VIDEO_ID] = "archive/copy_of_clip.mp4", COPY_VIDEO_ID
    failed = dict(rows[0], **{schema.FRAME: 998, schema.IMAGE: None, schema.ERROR: "Bad: x"})
    corrupt = dict(rows[0], **{schema.FRAME: 999, schema.IMAGE: b"not an image"})
    planted = pa.Table.from_pylist([*rows, failed, corrupt], schema=first_a.schema)
    pq.write_table(planted, folder / "c.parquet")
    table = pads.dataset(str(folder), format="parquet").to_table()
    return Input(folder, _digest(folder.parent), table)


@pytest.fixture(scope="module")
def min_sharpness(faces_input) -> float:
    return float(np.percentile(faces_input.table.column(schema.SHARPNESS).to_numpy(), 20))


@pytest.fixture(scope="module")
def local_report(faces_input, min_sharpness, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("report") / "clean"
    cfg = FacesReportConfig(
        faces=str(faces_input.path),
        out=str(out),
        min_sharpness=min_sharpness,
        drop_duplicates=True,
        max_identity_distance=0.5,
        engine="local",
    )
    return run_faces_report(cfg), out


def _readable(faces_input: Input) -> np.ndarray:
    """Rows that are not the planted error and corrupt rows."""
    return faces_input.table.column(schema.FRAME).to_numpy() < 998


def _rows_of(table: pa.Table, video_suffix: str) -> int:
    return sum(v.endswith(video_suffix) for v in table.column(schema.VIDEO).to_pylist())


def test_faces_report_counts_pose_and_sharpness_are_sane(faces_input, local_report):
    report, out = local_report
    assert report["engine"] == "local"
    counts = [report[k] for k in ("rows", "faces", "error_rows", "unreadable")]
    assert counts == [25, 23, 1, 1]
    faces = {v["name"]: v["faces"] for v in report["videos"]}
    assert faces == {A_CLIPS[0]: 8, A_CLIPS[1]: 8, B_CLIP: 3, "copy_of_clip.mp4": 4}
    assert report["pose"]["yaw_classes"]["frontal"] > 0.8  # MEAD's frontal camera
    assert abs(report["pose"]["yaw"]["p95"]) < 0.2 and abs(report["pose"]["pitch"]["p50"]) < 0.2
    sharpness = faces_input.table.column(schema.SHARPNESS).to_numpy()[_readable(faces_input)]
    assert report["sharpness"]["p50"] == pytest.approx(np.percentile(sharpness, 50), rel=1e-3)
    assert sum(report["sharpness"]["histogram"]["counts"]) == 23
    assert json.loads((out / "report.json").read_text()) == report
    lines = "\n".join(report_lines(report))
    assert "near-duplicates:" in lines and B_CLIP in lines and "OUTLIER" in lines


def test_faces_report_ranks_the_other_person_first(local_report):
    report, out = local_report
    identity = report["identity"]
    worst = identity["worst"]
    assert [w["video"].endswith(B_CLIP) for w in worst[:4]] == [True, True, True, False]
    assert [w["outlier"] for w in worst[:4]] == [True, True, True, False]
    assert identity["per_identity"]["a"]["outliers"] == 3
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert report["contact_sheet"]["faces"] == 23 and sheet.shape[1] == 8 * 96


def test_faces_report_finds_the_reingested_copies(local_report):
    report, _ = local_report
    copies = next(v for v in report["videos"] if v["video_id"] == COPY_VIDEO_ID)
    assert copies["duplicates"] == 4
    assert report["duplicates"]["count"] >= 4
    assert report["duplicates"]["share"] == pytest.approx(report["duplicates"]["count"] / 23, 1e-3)


def test_faces_report_filters_drop_what_they_should(faces_input, local_report, min_sharpness):
    report, out = local_report
    dropped = report["filters"]["dropped"]
    table = faces_input.table
    fine = _readable(faces_input)
    blurry = fine & (table.column(schema.SHARPNESS).to_numpy() < min_sharpness)
    other = np.array([v.endswith(B_CLIP) for v in table.column(schema.VIDEO).to_pylist()])
    assert dropped["unreadable"] == 2 and dropped["blurry"] == blurry.sum() > 0
    assert dropped["identity"] == (other & ~blurry).sum()
    cleaned = pads.dataset(str(out / "faces" / "a"), format="parquet").to_table()
    assert cleaned.num_rows == report["filters"]["kept"] == 25 - sum(dropped.values())
    assert _rows_of(cleaned, B_CLIP) == 0 and _rows_of(cleaned, "copy_of_clip.mp4") == 0
    assert pa.compute.min(cleaned.column(schema.SHARPNESS)).as_py() >= min_sharpness
    assert pa.compute.all(pa.compute.is_null(cleaned.column(schema.ERROR))).as_py()
    per_face = pq.read_table(out / "per_face.parquet").column("dropped").to_pylist()
    assert {k: per_face.count(k) for k in dropped} == dropped and len(per_face) == 25
    source = {(r[schema.VIDEO_ID], r[schema.FRAME]): r[schema.IMAGE] for r in table.to_pylist()}
    assert all(
        source[(r[schema.VIDEO_ID], r[schema.FRAME])] == r[schema.IMAGE]
        for r in cleaned.to_pylist()
    )


def test_faces_report_cleaned_dataset_keeps_the_schema_and_trains(faces_input, local_report):
    _, out = local_report
    for path in sorted((out / "faces" / "a").glob("*.parquet")):
        source = pq.read_schema(faces_input.path / path.name)
        assert pq.read_schema(path).equals(source, check_metadata=True)
    clean = str(out / "faces" / "a")
    cfg = TrainConfig(a=clean, b=str(faces_input.path), out=str(out / "ckpt"), batch_size=2)
    info = inspect_faces(clean, "a", cfg)  # the pre-flight of `rayswap train`
    assert info.rows > 0 and info.error_rows == 0
    assert _digest(faces_input.path.parent) == faces_input.digest  # the input is untouched


def test_faces_report_ray_engine_gives_the_same_numbers(faces_input, local_report, tmp_path):
    report, _ = local_report
    cfg = FacesReportConfig(faces=str(faces_input.path), out=str(tmp_path), engine="ray", workers=1)
    on_ray = run_faces_report(cfg)
    assert on_ray["engine"] == "ray" and on_ray["filters"] is None
    for key in ("rows", "faces", "videos", "pose", "sharpness", "duplicates"):
        assert on_ray[key] == report[key], key
    distances = [w["distance"] for w in on_ray["identity"]["worst"]]
    assert distances == pytest.approx(
        [w["distance"] for w in report["identity"]["worst"]], abs=1e-3
    )
    assert _digest(faces_input.path.parent) == faces_input.digest


def test_faces_report_cli_prints_the_table(faces_input, tmp_path):
    args = ["faces", "report", str(faces_input.path), "--out", str(tmp_path), "--no-identity"]
    result = runner.invoke(app, [*args, "--engine", "local", "--sheet-faces", "8"])
    assert result.exit_code == 0, result.output
    assert "faces report:" in result.output and "identity: not computed" in result.output
    assert (tmp_path / "contact_sheet.png").exists() and (tmp_path / "report.json").exists()


def _one_clip(distances: list[float], seed: int = 0) -> Features:
    """Features of one clip of identity "a": embeddings at `distances` from one centre."""
    rng = np.random.default_rng(seed)
    n = len(distances)
    centre = rng.normal(0, 0.09, 128)  # dlib descriptors have norms near 1
    directions = rng.normal(size=(n, 128))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    embedding = centre + np.asarray(distances)[:, None] * directions
    return Features(
        identity=np.full(n, "a", object),
        video=np.full(n, "clip.mp4", object),
        video_id=np.full(n, "v", object),
        frame=np.arange(n, dtype=np.int64),
        face=np.zeros(n, np.int64),
        path=np.full(n, "part-0.parquet", object),
        sharpness=np.full(n, 100.0, np.float32),
        yaw=np.zeros(n, np.float32),
        pitch=np.zeros(n, np.float32),
        status=np.full(n, OK, object),
        thumb=np.zeros((n, 256), np.uint8),
        embedding=embedding.astype(np.float32),
    )


def test_identity_outliers_one_clean_clip_has_none():
    # 135 faces of one man in one clip, close together (0.12 +- 0.015 from their centre),
    # and two at 0.21 and 0.23: far out for the spread, but the same person
    rng = np.random.default_rng(1)
    distances = [*np.clip(rng.normal(0.12, 0.015, 133), 0.05, 0.18), 0.21, 0.23]
    distance, outlier, per_identity = identity_outliers(_one_clip(distances))
    assert distance.max() < OUTLIER_MIN_DISTANCE
    assert (distance > robust_cutoff(distance, 4.0)).sum() >= 2  # without the floor
    assert not outlier.any() and per_identity["a"]["outliers"] == 0
    assert per_identity["a"]["outlier_cutoff"] == OUTLIER_MIN_DISTANCE


def test_identity_outliers_flags_another_person_above_the_floor():
    rng = np.random.default_rng(2)
    distances = [*np.clip(rng.normal(0.12, 0.015, 133), 0.05, 0.18), 0.23, 0.7]
    distance, outlier, per_identity = identity_outliers(_one_clip(distances))
    assert distance[-1] > 0.6 and outlier[-1]
    assert not outlier[:-1].any() and per_identity["a"]["outliers"] == 1


def test_yaw_classes_a_frontal_news_anchor_is_frontal():
    rng = np.random.default_rng(3)
    anchor = rng.normal(0.12, 0.02, 135)  # nose a little off the midline, looking at us
    shares = yaw_classes(anchor)
    assert shares["frontal"] >= 0.95 and shares["right"] == shares["turned"] <= 0.05
    turned = yaw_classes(np.concatenate([rng.normal(0.27, 0.02, 90), [-0.5, 0.7]]))
    assert turned["turned"] == pytest.approx(90 / 92, abs=0.02) and turned["frontal"] < 0.05
    one = pytest.approx(1 / 92, abs=1e-3)
    assert turned["strong"] == turned["profile"] == turned["left"] == one


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a bad invocation gets as far as reading faces or starting Ray."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("work started for a bad invocation")

    monkeypatch.setattr(report_stage, "compute_local", refuse)
    monkeypatch.setattr(report_stage, "compute_ray", refuse)


@pytest.mark.parametrize("command", [["faces"], ["faces", "report"]])
def test_faces_help(command):
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "Usage" in result.output
    if command == ["faces", "report"]:
        for flag in ("--out", "--min-sharpness", "--drop-duplicates", "--max-identity-distance"):
            assert flag in result.output


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--bogus"], "--bogus"),
        (["--engine", "gpu"], "--engine"),
        (["--duplicate-threshold", "0"], "--duplicate-threshold"),
        (["--min-sharpness", "-1"], "--min-sharpness"),
        (["--no-identity", "--max-identity-distance", "0.5"], "--max-identity-distance"),
        (["--top", "0"], "--top"),
    ],
)
def test_faces_report_bad_flag_exits_2(no_work, tmp_path, extra, flag):
    result = runner.invoke(app, ["faces", "report", str(tmp_path), "--out", "o", *extra])
    assert result.exit_code == 2, result.output
    assert flag in result.output


def test_faces_report_bad_paths_exit_2(no_work, faces_input, local_report, tmp_path):
    _, cleaned_out = local_report
    cases = [
        ([str(tmp_path / "missing"), "--out", str(tmp_path / "o")], "not found"),
        ([str(faces_input.path), "--out", str(faces_input.path / "r")], "overlap"),
        ([str(faces_input.path), "--out", str(cleaned_out), "--drop-duplicates"], "new --out"),
        ([str(faces_input.path)], "--out"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["faces", "report", *args], terminal_width=200)
        assert result.exit_code == 2, result.output
        assert message in re.sub(r"[\s│]+", " ", result.output), result.output
    assert _digest(faces_input.path.parent) == faces_input.digest


def test_choose_engine_weighs_ray_start_against_the_cpus(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(report_stage, "local_cpus", lambda: 2)
    cfg = FacesReportConfig(faces="f", out="o")
    assert report_stage.choose_engine(cfg, 1000) == "local"
    assert report_stage.choose_engine(cfg, 5000) == "ray"
    no_identity = FacesReportConfig(faces="f", out="o", identity=False)
    assert report_stage.choose_engine(no_identity, 5000) == "local"
    assert report_stage.choose_engine(FacesReportConfig("f", "o", engine="ray"), 1) == "ray"
    assert report_stage.choose_engine(FacesReportConfig("f", "o", address="ray://h:1"), 1) == "ray"
    monkeypatch.setattr(report_stage, "local_cpus", lambda: 1)
    assert report_stage.choose_engine(cfg, 10**6) == "local"
