import numpy as np
import pytest

from ops.align import align_face, template_landmarks, transform_points
from ops.detect import FACES_CHOICES, RetinaFaceDetector, select_faces
from ops.types import Detection, Frame
from tests.conftest import shared_image


def detect_faces(detector: RetinaFaceDetector, frame: Frame) -> list[Detection]:
    """Detect faces in one frame; no face is an empty list, not an error."""
    return detector.detect_batch([frame])[0]


@pytest.fixture(scope="module")
def detector():
    return RetinaFaceDetector(threads=1, max_side=640)


def _check_sane(detection: Detection) -> None:
    x0, y0, x1, y1 = detection.bbox
    right_eye, left_eye, nose, right_mouth, left_mouth = detection.landmarks
    assert x0 < x1 and y0 < y1
    inside = (detection.landmarks[:, 0] >= x0 - 5) & (detection.landmarks[:, 0] <= x1 + 5)
    assert inside.all()
    assert right_eye[0] < left_eye[0] and right_mouth[0] < left_mouth[0]  # image left to right
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(right_mouth[1], left_mouth[1])


def test_detect_faces_finds_the_portrait_with_sane_landmarks(detector, astronaut):
    found = detect_faces(detector, astronaut)
    assert len(found) == 1 and found[0].score > 0.9
    _check_sane(found[0])
    x0, y0, x1, y1 = found[0].bbox
    assert 140 < (x0 + x1) / 2 < 260 and 60 < (y0 + y1) / 2 < 180  # the astronaut's face


def test_detect_batch_maps_downscaled_boxes_back_to_frame_pixels(astronaut):
    full = RetinaFaceDetector(max_side=1024).detect_batch([astronaut])[0][0]
    small = RetinaFaceDetector(max_side=256).detect_batch([astronaut])[0][0]
    face_px = full.width
    assert small.width > 0.8 * face_px  # not reported at the downscaled size
    assert np.abs(full.landmarks - small.landmarks).max() < 0.08 * face_px
    assert np.abs(full.bbox - small.bbox).max() < 0.12 * face_px


def test_detect_batch_returns_one_list_per_frame(detector, astronaut):
    blank = np.zeros_like(astronaut)
    results = detector.detect_batch([astronaut, blank, astronaut])
    assert [len(r) for r in results] == [1, 0, 1]


def test_detect_batch_rejects_float_frames(detector):
    with pytest.raises(ValueError, match="uint8"):
        detector.detect_batch([np.zeros((64, 64, 3), np.float32)])


def test_detect_on_real_still_aligns_face_to_template(detector):
    import cv2

    path = shared_image("person_d__liveportrait_d19.jpg")
    frame = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    found = select_faces(detect_faces(detector, frame), which="largest")
    assert len(found) == 1
    _check_sane(found[0])
    crop, affine = align_face(frame, found[0].landmarks, 256, 1.5)
    assert crop.shape == (256, 256, 3)
    moved = transform_points(found[0].landmarks, affine)
    assert np.abs(moved - template_landmarks(256, 1.5)).max() < 12.0  # a real face is not exact


def test_select_faces_filters_by_size_and_score():
    def det(side: float, score: float) -> Detection:
        return Detection(
            np.array([0, 0, side, side], np.float32), np.zeros((5, 2), np.float32), score
        )

    faces = [det(30, 0.99), det(100, 0.95), det(80, 0.5)]
    assert [d.width for d in select_faces(faces, min_face_px=40)] == [100, 80]
    assert [d.width for d in select_faces(faces, min_score=0.9)] == [100, 30]
    assert [d.width for d in select_faces(faces, which="largest")] == [100]
    assert [len(select_faces(faces, which=which)) for which in FACES_CHOICES] == [3, 1]
    with pytest.raises(ValueError, match="which"):
        select_faces(faces, which="biggest")
