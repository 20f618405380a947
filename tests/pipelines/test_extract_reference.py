"""extract --reference: reference loading (no Ray) and the filter on real multi-person material."""

from __future__ import annotations

import os
import re

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ops import schema
from ops.align import align_face
from ops.detect import RetinaFaceDetector, select_faces
from ops.identity import DEFAULT_MAX_DISTANCE, EMBEDDING_DIM
from ops.quality import encode_crop
from ops.video import iter_frames, probe_video
from pipelines.cli import app
from pipelines.config import ExtractConfig, config_json
from pipelines.extract.plan import check_resume
from pipelines.extract.reference import load_reference
from tests.conftest import shared_image, shared_video

PERSON_A = "person_a__mead_M030_front_neutral.mp4"
PERSON_A_OTHER_CLIP = "person_a__mead_M030_front_sad.mp4"
PERSON_B = "person_b__mead_W009_front_happy.mp4"
MULTI_FACE_CLIP = "hard_multiface_profiles__face_recognition_short_hamilton_clip.mp4"
TWO_FACES = "two_faces_obama_biden__face_recognition_two_people.jpg"


def write_frame_png(video, index: int, path) -> str:
    """One frame of a clip as a PNG under tmp_path (media never enter the repository)."""
    frame = next(iter_frames(str(video), index, index + 1))[2]
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return str(path)


def write_faces_dataset(video, folder, every_n: int = 40, size: int = 96) -> str:
    """A faces dataset of a clip's largest faces, written as extract writes its rows."""
    detector = RetinaFaceDetector(threads=1)
    rows = []
    for index, time_s, frame in iter_frames(str(video), every_n=every_n):
        detection = select_faces(detector.detect_batch([frame])[0], which="largest")[0]
        crop, affine = align_face(frame, detection.landmarks, size, 1.5)
        rows.append(
            {
                schema.IDENTITY: "a",
                schema.VIDEO: str(video),
                schema.VIDEO_ID: "v",
                schema.FRAME: index,
                schema.TIME_S: time_s,
                schema.FACE: 0,
                schema.LANDMARKS: detection.landmarks.reshape(-1).tolist(),
                schema.AFFINE: affine.reshape(-1).tolist(),
                schema.SIZE: size,
                schema.COVERAGE: 1.5,
                schema.IMAGE: encode_crop(crop, "png"),
                schema.IMAGE_FORMAT: "png",
            }
        )
    rows.append({**rows[0], schema.IMAGE: None, schema.ERROR: "ValueError: bad"})  # skipped
    os.makedirs(folder, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema.FACES_SCHEMA), f"{folder}/0.parquet")
    return str(folder)


def test_load_reference_embeds_an_image_and_a_faces_dataset(tmp_path):
    faces = write_faces_dataset(shared_video(PERSON_A_OTHER_CLIP), tmp_path / "faces")
    image = write_frame_png(shared_video(PERSON_A), 0, tmp_path / "a.png")
    gallery = load_reference((image, faces))
    frames = len(range(0, probe_video(str(shared_video(PERSON_A_OTHER_CLIP))).frame_count, 40))
    assert gallery.shape == (1 + frames, EMBEDDING_DIM) and gallery.dtype == np.float32
    one_person = np.linalg.norm(gallery[1:] - gallery[0], axis=1)
    assert one_person.max() < DEFAULT_MAX_DISTANCE  # the still and the other clip agree


@pytest.mark.parametrize("kind", ["missing", "text", "faceless", "not_faces_parquet"])
def test_load_reference_rejects_a_bad_reference_naming_the_flag(tmp_path, kind):
    path = tmp_path / {"text": "notes.txt", "faceless": "grey.png"}.get(kind, "x.parquet")
    if kind == "text":
        path.write_text("not an image")
    elif kind == "faceless":
        cv2.imwrite(str(path), np.full((200, 200, 3), 128, np.uint8))
    elif kind == "not_faces_parquet":
        pq.write_table(pa.table({"uri": ["a.mp4"]}), path)
    with pytest.raises(ValueError, match=re.escape(f"--reference {path}")):
        load_reference((str(path),))


def test_extract_config_max_distance_needs_reference_and_has_a_default():
    with pytest.raises(ValueError, match="--max-distance"):
        ExtractConfig(inputs=("c.mp4",), out="o", max_distance=0.4)
    cfg = ExtractConfig(inputs=("c.mp4",), out="o", reference=["r.jpg"])
    assert cfg.reference == ("r.jpg",) and cfg.max_distance == DEFAULT_MAX_DISTANCE
    assert ExtractConfig(inputs=("c.mp4",), out="o").max_distance is None


def test_resume_with_another_reference_is_refused_naming_the_flag(tmp_path):
    first = ExtractConfig(inputs=("c.mp4",), out=str(tmp_path), reference=("a.jpg",))
    (tmp_path / "_config.json").write_text(config_json(first, stage="extract"))
    check_resume(first)  # the same reference resumes
    for other, flag in (
        (("b.jpg",), "--reference"),
        ((), "--reference"),
        (("a.jpg",), "--max-distance"),
    ):
        distance = 0.4 if flag == "--max-distance" else None
        cfg = ExtractConfig(
            inputs=("c.mp4",), out=str(tmp_path), reference=other, max_distance=distance
        )
        with pytest.raises(ValueError, match=flag):
            check_resume(cfg)


def test_resume_of_an_output_without_reference_refuses_to_add_one(tmp_path):
    before = ExtractConfig(inputs=("c.mp4",), out=str(tmp_path))
    saved = config_json(before, stage="extract").replace('"reference": []', '"x": 0')
    (tmp_path / "_config.json").write_text(saved)  # as written before --reference existed
    check_resume(before)
    with pytest.raises(ValueError, match="--reference"):
        check_resume(ExtractConfig(inputs=("c.mp4",), out=str(tmp_path), reference=("a.jpg",)))


def read_rows(out) -> list[dict]:
    columns = [schema.VIDEO, schema.FRAME, schema.FACE, schema.BBOX, schema.IDENTITY_DISTANCE]
    return pads.dataset(str(out / "faces"), format="parquet").to_table(columns=columns).to_pylist()


@pytest.mark.ray
def test_extract_keeps_only_the_reference_person_among_others(ray_local, tmp_path):
    person_a, person_b = shared_video(PERSON_A), shared_video(PERSON_B)
    multi, two_faces = shared_video(MULTI_FACE_CLIP), shared_image(TWO_FACES)
    reference = write_faces_dataset(shared_video(PERSON_A_OTHER_CLIP), tmp_path / "ref")
    out = tmp_path / "out"
    flags = ["--out", str(out), "--faces", "all", "--every-n", "60", "--size", "96"]
    inputs = [str(p) for p in (person_a, person_b, multi, two_faces)]
    result = CliRunner().invoke(
        app, ["extract", *inputs, *flags, "--workers", "2", "--reference", reference]
    )
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert {r[schema.VIDEO] for r in rows} == {str(person_a)}  # person_a's clip only
    assert len(rows) == len(range(0, probe_video(str(person_a)).frame_count, 60))  # all of it
    assert all(r[schema.IDENTITY_DISTANCE] <= DEFAULT_MAX_DISTANCE for r in rows)
    summary = re.search(r"\((\d+) rejected as someone else: farther than 0.5 ", result.output)
    assert summary, result.output
    # person_b in 2 frames, both people of the still, the stage cast in 5 frames
    assert int(summary.group(1)) >= 2 + 2 + 5, result.output


@pytest.mark.ray
def test_extract_keeps_the_referenced_face_of_a_multi_face_image(ray_local, tmp_path):
    from pipelines.extract.driver import run_extract

    two_faces = shared_image(TWO_FACES)  # Obama on the left, Biden on the right
    cfg = ExtractConfig(
        inputs=(str(two_faces),),
        out=str(tmp_path / "out"),
        faces="all",
        size=96,
        workers=1,
        reference=(str(shared_image("obama__face_recognition_obama.jpg")),),
    )
    summary = run_extract(cfg)
    rows = read_rows(tmp_path / "out")
    assert len(rows) == 1 and summary.counts.rejected == 1
    x0, _, x1, _ = rows[0][schema.BBOX]
    assert (x0 + x1) / 2 < 1126 / 2  # the left face
    assert 0 < rows[0][schema.IDENTITY_DISTANCE] < DEFAULT_MAX_DISTANCE
