"""Extract end to end on one shared local Ray: real clips, generated clips and bad input."""

from __future__ import annotations

import shutil

import av
import numpy as np
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from ops import schema
from ops.align import template_landmarks, transform_points
from ops.quality import decode_crop
from ops.video import probe_video
from pipelines.config import ExtractConfig
from pipelines.extract.driver import run_extract
from pipelines.segments import FAIL_MARKER
from tests.conftest import shared_video
from tests.vfr_clip import write_vfr_clip

pytestmark = pytest.mark.ray


def read_faces(out, identity: str):
    return pads.dataset(str(out / "faces" / identity), format="parquet").to_table()


def face_key(row: dict) -> tuple:
    return row[schema.VIDEO_ID], row[schema.FRAME], row[schema.FACE]


def read_errors(out):
    folder = out / "errors"
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if not files:
        return []
    return pads.dataset([str(f) for f in files], format="parquet").to_table().to_pylist()


def extract(tmp_path, inputs, **overrides):
    fields = dict(
        inputs=tuple(str(i) for i in inputs),
        out=str(tmp_path / "out"),
        size=128,
        workers=2,
        segment_frames=40,
    )
    fields.update(overrides)
    cfg = ExtractConfig(**fields)
    return cfg, run_extract(cfg)


def test_extract_real_clips_gives_one_sane_face_per_sampled_frame(ray_local, tmp_path):
    clips = [
        shared_video("person_a__mead_M030_front_neutral.mp4"),
        shared_video("person_b__mead_W009_front_happy.mp4"),
    ]
    cfg, summary = extract(tmp_path, clips, identity="a", every_n=4)
    table = read_faces(tmp_path / "out", "a")
    schema.check_faces_schema(table.schema, "faces/a")
    expected = sum(len(range(0, probe_video(str(c)).frame_count, 4)) for c in clips)
    assert summary.n_failed == 0 and summary.counts.frames == expected
    assert table.num_rows == expected  # MEAD clips show one face in every frame
    rows = table.to_pylist()
    assert {r[schema.IDENTITY] for r in rows} == {"a"}
    assert len({(r[schema.VIDEO_ID], r[schema.FRAME], r[schema.FACE]) for r in rows}) == len(rows)
    for row in rows[::7]:
        crop = decode_crop(row[schema.IMAGE])
        assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
        landmarks = np.array(row[schema.LANDMARKS], np.float32).reshape(5, 2)
        x0, y0, x1, y1 = row[schema.BBOX]
        assert ((landmarks >= [x0 - 5, y0 - 5]) & (landmarks <= [x1 + 5, y1 + 5])).all()
        assert landmarks[0, 0] < landmarks[1, 0] and landmarks[3, 0] < landmarks[4, 0]
        affine = np.array(row[schema.AFFINE], np.float32).reshape(2, 3)
        landmarks_crop = transform_points(landmarks, affine)
        assert np.abs(landmarks_crop - template_landmarks(128, cfg.coverage)).max() < 8
        assert row[schema.SCORE] >= cfg.min_score and row[schema.ERROR] is None


def test_extract_segments_cover_every_frame_exactly_once(ray_local, tmp_path, sample_clips):
    _, one = extract(tmp_path / "one", [sample_clips["a"]], identity="a", segment_frames=1000)
    _, many = extract(tmp_path / "many", [sample_clips["a"]], identity="a", segment_frames=5)
    frames_one = sorted(read_faces(tmp_path / "one" / "out", "a").column(schema.FRAME).to_pylist())
    frames_many = sorted(
        read_faces(tmp_path / "many" / "out", "a").column(schema.FRAME).to_pylist()
    )
    assert many.counts.segments > one.counts.segments == 1
    assert frames_one == frames_many == list(range(12))


def test_extract_vfr_clip_gives_every_frame_once_with_its_own_time(ray_local, tmp_path):
    from ops.samples import animate, portrait

    clip = str(tmp_path / "phone.mp4")
    times = write_vfr_clip([animate(portrait("a"), i, 160) for i in range(60)], clip)
    _, summary = extract(tmp_path, [clip], identity="a", size=64, segment_frames=16)
    rows = read_faces(tmp_path / "out", "a").to_pylist()
    keys = [(r[schema.VIDEO_ID], r[schema.FRAME], r[schema.FACE]) for r in rows]
    assert summary.n_failed == 0 and summary.counts.segments == 4
    assert len(set(keys)) == len(keys) == 60  # no duplicate key, no missing frame
    assert sorted(r[schema.FRAME] for r in rows) == list(range(60))
    for row in rows:
        assert row[schema.TIME_S] == pytest.approx(times[row[schema.FRAME]], abs=1e-6)


def _bad_inputs(folder, good_clip):
    folder.mkdir()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is a text file, not a video\n")
    payload = open(good_clip, "rb").read()
    (folder / "truncated.mp4").write_bytes(payload[: len(payload) // 2])
    container = av.open(str(folder / "zero_frames.mp4"), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    container.start_encoding()
    container.close()
    blank = [np.full((96, 96, 3), 90, np.uint8) for _ in range(10)]
    from ops.video import write_video

    write_video(blank, str(folder / "no_face.mp4"), 25)
    shutil.copy(good_clip, folder / "good.mp4")
    return ["empty.mp4", "notes.mp4", "truncated.mp4", "zero_frames.mp4"]


def test_extract_bad_input_gets_error_rows_and_the_batch_goes_on(ray_local, tmp_path, sample_clips):
    folder = tmp_path / "batch"
    bad = _bad_inputs(folder, sample_clips["a"])
    missing = str(tmp_path / "missing.mp4")
    _, summary = extract(tmp_path, [folder, missing], identity="a")
    errors = read_errors(tmp_path / "out")
    failed = {r[schema.VIDEO].rsplit("/", 1)[-1] for r in errors}
    assert failed == {*bad, "missing.mp4"}
    for row in errors:
        name = row[schema.VIDEO].rsplit("/", 1)[-1]
        assert name in row[schema.ERROR] and ": " in row[schema.ERROR]
    assert summary.n_failed == 5 and summary.n_ok == 2
    table = read_faces(tmp_path / "out", "a")
    good = [r for r in table.to_pylist() if r[schema.VIDEO].endswith("good.mp4")]
    assert sorted(r[schema.FRAME] for r in good) == list(range(12))  # nothing good is lost
    assert not any(r[schema.VIDEO].endswith("no_face.mp4") for r in table.to_pylist())
    assert summary.counts.frames == 12 + 10  # the faceless clip was read, not an error


def test_extract_rerun_skips_finished_segments_and_adds_no_rows(ray_local, tmp_path, sample_clips):
    inputs = [sample_clips["a"], sample_clips["b"]]
    _, first = extract(tmp_path, inputs, identity="a", segment_frames=5)
    before = read_faces(tmp_path / "out", "a")
    _, second = extract(tmp_path, inputs, identity="a", segment_frames=5)
    after = read_faces(tmp_path / "out", "a")
    assert first.counts.faces == before.num_rows == after.num_rows == 24
    assert second.counts.skipped == second.counts.segments == first.counts.segments
    assert second.counts.faces == 0
    with pytest.raises(ValueError, match="--size"):
        extract(tmp_path, inputs, identity="a", segment_frames=5, size=64)


def test_extract_worker_killed_mid_segment_gives_the_clean_runs_rows(
    ray_local, tmp_path, sample_clips
):
    """A FaceExtractor dies at frame 7 (segment 5..9) of the first video to get there; Ray
    restarts it and the segment is extracted again: nothing duplicated, lost or changed."""
    inputs = [sample_clips["a"], sample_clips["b"]]
    _, clean = extract(tmp_path / "clean", inputs, identity="a", segment_frames=5)
    _, faulty = extract(
        tmp_path / "faulty", inputs, identity="a", segment_frames=5, fail_at_frame=7
    )

    out = tmp_path / "faulty" / "out"
    assert (out / FAIL_MARKER).read_text() == "7"  # a worker did die there
    assert faulty.n_failed == 0 and read_errors(out) == []
    assert faulty.counts.segments == clean.counts.segments == 6  # each reported once
    rows = sorted(read_faces(out, "a").to_pylist(), key=face_key)
    keys = [face_key(r) for r in rows]
    assert len(set(keys)) == len(keys) == 24  # no duplicate row
    for video_id in {k[0] for k in keys}:
        assert [k[1] for k in keys if k[0] == video_id] == list(range(12))  # no missing frame
    clean_rows = sorted(read_faces(tmp_path / "clean" / "out", "a").to_pylist(), key=face_key)
    assert rows == clean_rows  # crops, landmarks, scores: all equal


def test_extract_manifest_sets_identity_per_row(ray_local, tmp_path, sample_clips):
    manifest = tmp_path / "clips.csv"
    manifest.write_text(f"uri,identity\n{sample_clips['a']},a\n{sample_clips['b']},b\n")
    _, summary = extract(tmp_path, [manifest], every_n=3)
    assert summary.n_failed == 0
    for identity in ("a", "b"):
        table = read_faces(tmp_path / "out", identity)
        assert table.num_rows == 4 and set(table.column(schema.IDENTITY).to_pylist()) == {identity}
    config = pq.read_schema(next((tmp_path / "out" / "faces" / "a").glob("*.parquet")))
    assert config.metadata[b"rayswap.schema"] == b"faces"


def test_extract_faces_all_keeps_every_face_of_a_crowded_frame(ray_local, tmp_path):
    clip = shared_video("hard_multiface_profiles__face_recognition_short_hamilton_clip.mp4")
    _, every = extract(
        tmp_path / "all", [clip], identity="cast", every_n=25, faces="all", min_face=20
    )
    _, largest = extract(tmp_path / "one", [clip], identity="cast", every_n=25, min_face=20)
    rows_all = read_faces(tmp_path / "all" / "out", "cast").to_pylist()
    rows_one = read_faces(tmp_path / "one" / "out", "cast").to_pylist()
    per_frame = {}
    for row in rows_all:
        per_frame.setdefault(row[schema.FRAME], []).append(row[schema.FACE])
    assert max(len(faces) for faces in per_frame.values()) >= 2
    assert all(sorted(faces) == list(range(len(faces))) for faces in per_frame.values())
    assert len({r[schema.FRAME] for r in rows_one}) == len(rows_one) == len(per_frame)
    assert every.counts.frames == largest.counts.frames == 11


@pytest.mark.ray
def test_extract_with_the_torch_detector_finds_the_same_faces(ray_local, tmp_path):
    """The detector a --gpu actor uses (RetinaFace in torch), run here on CPU through the
    real pipeline: the same faces as onnxruntime, landmarks within a pixel."""
    clip = shared_video("person_a__mead_M030_front_neutral.mp4")
    found = {}
    for detector in ("onnxruntime", "torch"):
        run = tmp_path / detector
        run.mkdir()
        _, summary = extract(run, [clip], identity="a", every_n=12, detector=detector)
        assert summary.n_failed == 0 and summary.plan.gpus_each == 0.0
        rows = read_faces(run / "out", "a").to_pylist()
        found[detector] = {face_key(r): np.array(r[schema.LANDMARKS]) for r in rows}
    assert found["torch"].keys() == found["onnxruntime"].keys() and len(found["torch"]) >= 7
    for key, landmarks in found["torch"].items():
        assert np.abs(landmarks - found["onnxruntime"][key]).max() < 1.0
