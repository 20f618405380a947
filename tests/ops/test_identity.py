"""Identity embedder on real faces of ../shared/data: ranking, shapes, inputs, missing extra."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ops.align import align_face, transform_points
from ops.detect import RetinaFaceDetector, select_faces
from ops.identity import EMBEDDING_DIM, IdentityEmbedder, identity_distances
from ops.video import iter_frames
from tests.conftest import shared_video

CLIPS = {
    "a_neutral": "person_a__mead_M030_front_neutral.mp4",
    "a_sad": "person_a__mead_M030_front_sad.mp4",
    "b_happy": "person_b__mead_W009_front_happy.mp4",
}


@pytest.fixture(scope="module")
def embedder() -> IdentityEmbedder:
    return IdentityEmbedder()


@pytest.fixture(scope="module")
def real_faces() -> dict[str, dict[str, np.ndarray]]:
    """Three 128 px aligned faces of each clip (frames 0, 30, 60), as extract cuts them."""
    detector = RetinaFaceDetector(threads=1)
    found = {}
    for name, clip in CLIPS.items():
        crops, landmarks, frames, landmarks_frame = [], [], [], []
        for _, _, frame in iter_frames(str(shared_video(clip)), 0, 61, every_n=30):
            detection = select_faces(detector.detect_batch([frame])[0], which="largest")[0]
            crop, affine = align_face(frame, detection.landmarks, 128, coverage=1.5)
            crops.append(crop)
            landmarks.append(transform_points(detection.landmarks, affine))
            frames.append(frame)
            landmarks_frame.append(detection.landmarks)
        found[name] = {
            "faces": np.stack(crops),
            "landmarks": np.stack(landmarks),
            "frames": np.stack(frames),
            "landmarks_frame": np.stack(landmarks_frame),
        }
    return found


@pytest.fixture(scope="module")
def embeddings(embedder, real_faces) -> dict[str, np.ndarray]:
    return {
        name: embedder.embed(face["faces"], face["landmarks"]) for name, face in real_faces.items()
    }


def test_embed_same_person_nearer_than_another_person(embeddings):
    gallery = embeddings["a_neutral"]
    same = identity_distances(embeddings["a_sad"], gallery)  # another clip of person_a
    other = identity_distances(embeddings["b_happy"], gallery)
    assert same.max() < other.min()
    nearest = identity_distances(embeddings["a_sad"], gallery, k=1)
    assert nearest.max() < identity_distances(embeddings["b_happy"], gallery, k=1).min()


def test_embed_gives_finite_float32_descriptors_of_similar_norm(embeddings):
    descriptors = np.concatenate(list(embeddings.values()))
    assert descriptors.shape == (9, EMBEDDING_DIM) and descriptors.dtype == np.float32
    norms = np.linalg.norm(descriptors, axis=1)
    assert np.isfinite(descriptors).all() and (norms > 0.5).all()
    assert norms.max() < 1.5 * norms.min()  # dlib's descriptors have nearly one length


def test_embed_of_any_crop_size_and_of_the_frame_agree(embedder, real_faces, embeddings):
    face = real_faces["a_neutral"]
    crop, affine = align_face(face["frames"][0], face["landmarks_frame"][0], 256, coverage=1.0)
    at_256 = embedder.embed(crop[None], transform_points(face["landmarks_frame"][0], affine)[None])
    from_frame = embedder.embed_frame(face["frames"][0], face["landmarks_frame"][0])
    assert from_frame.shape == (EMBEDDING_DIM,) and from_frame.dtype == np.float32
    reference = embeddings["a_neutral"][0]
    between_people = np.linalg.norm(reference - embeddings["b_happy"][0])
    assert np.linalg.norm(at_256[0] - reference) < 0.3 * between_people
    assert np.linalg.norm(from_frame - reference) < 0.3 * between_people


def test_embed_of_no_faces_is_empty(embedder):
    empty = embedder.embed(np.zeros((0, 64, 64, 3), np.uint8), np.zeros((0, 5, 2)))
    assert empty.shape == (0, EMBEDDING_DIM) and empty.dtype == np.float32


@pytest.mark.parametrize(
    ("faces", "landmarks", "message"),
    [
        (np.zeros((1, 64, 64, 3), np.float32), np.zeros((1, 5, 2)), "uint8"),
        (np.zeros((1, 64, 48, 3), np.uint8), np.zeros((1, 5, 2)), "square"),
        (np.zeros((2, 64, 64, 3), np.uint8), np.zeros((1, 5, 2)), r"\(N, 5, 2\)"),
        (np.zeros((1, 64, 64, 3), np.uint8), np.full((1, 5, 2), np.nan), "finite"),
    ],
)
def test_embed_rejects_bad_input(embedder, faces, landmarks, message):
    with pytest.raises(ValueError, match=message):
        embedder.embed(faces, landmarks)


def test_embedder_rejects_unknown_alignment_and_network():
    with pytest.raises(ValueError, match="alignment"):
        IdentityEmbedder(alignment="nearest")
    with pytest.raises(ValueError, match="network"):
        IdentityEmbedder(network="onnx")


def test_torch_network_gives_dlibs_descriptors(embedder, real_faces, embeddings):
    """The torch rebuild of dlib's network against dlib's own, on the same real chips (more
    than one torch batch, so the batches are joined in order)."""
    native = IdentityEmbedder(network="dlib")
    faces = np.concatenate([face["faces"] for face in real_faces.values()])
    landmarks = np.concatenate([face["landmarks"] for face in real_faces.values()])
    faces, landmarks = np.concatenate([faces] * 4), np.concatenate([landmarks] * 4)  # 36
    torch_found, dlib_found = embedder.embed(faces, landmarks), native.embed(faces, landmarks)
    assert torch_found.shape == dlib_found.shape == (36, EMBEDDING_DIM)
    assert np.abs(torch_found - dlib_found).max() < 1e-4
    assert np.linalg.norm(dlib_found, axis=1).min() > 0.1  # real descriptors, not zeros


def test_torch_network_refuses_a_file_of_another_network(tmp_path):
    from ops.identity import _model_dir
    from ops.identity_net import DlibFaceNet

    other = Path(_model_dir()) / "shape_predictor_5_face_landmarks.dat"
    with pytest.raises(ValueError, match="shape_predictor_5_face_landmarks.dat"):
        DlibFaceNet.from_dat(str(other))
    broken = tmp_path / "net.dat"  # dlib's file with its last layer cut off
    data = (Path(_model_dir()) / "dlib_face_recognition_resnet_model_v1.dat").read_bytes()
    broken.write_bytes(data[: data.rindex(b"fc_2") - 2])
    with pytest.raises(ValueError, match="net.dat"):
        DlibFaceNet.from_dat(str(broken))


def test_embedder_without_the_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'rayswap\[eval\]'"):
        IdentityEmbedder()


def test_identity_distances_to_the_gallery_mean_or_the_k_nearest():
    gallery = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]], np.float32)
    queries = np.array([[4.0, 0.0], [4.0, 3.0]], np.float32)
    assert np.allclose(identity_distances(queries, gallery), [0.0, 3.0])
    assert np.allclose(identity_distances(queries, gallery, k=1), [2.0, np.hypot(2, 3)])
    capped = [4.0, (5.0 + np.hypot(2, 3) + np.hypot(6, 3)) / 3]  # k is capped at 3 faces
    assert np.allclose(identity_distances(queries, gallery, k=9), capped)
    with pytest.raises(ValueError, match="empty"):
        identity_distances(queries, gallery[:0])
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        identity_distances(queries[:, :1], gallery)
