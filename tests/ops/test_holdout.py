"""Held-out swap scores on real faces: a model that copies its input scores 0 identity and
no pose error; one that draws the other person scores full identity and a pose error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ops.align import align_face, transform_points
from ops.detect import RetinaFaceDetector, select_faces
from ops.holdout import HeldOutFaces, HoldoutScorer
from ops.identity import IdentityEmbedder, identity_distances
from ops.video import iter_frames
from tests.conftest import shared_video

RESOLUTION = 64
CLIPS = {
    "a": ("person_a__mead_M030_front_neutral.mp4", "person_a__mead_M030_front_fear.mp4"),
    "b": ("person_b__mead_W009_front_happy.mp4", "person_b__mead_W009_front_surprised.mp4"),
}


def _faces(clip: str, detector: RetinaFaceDetector) -> tuple[np.ndarray, np.ndarray]:
    """Four 64 px aligned faces of a clip (frames 0, 20, 40, 60) and their crop landmarks."""
    crops, points = [], []
    for _, _, frame in iter_frames(str(shared_video(clip)), 0, 61, every_n=20):
        detection = select_faces(detector.detect_batch([frame])[0], which="largest")[0]
        crop, affine = align_face(frame, detection.landmarks, RESOLUTION, coverage=1.5)
        crops.append(crop)
        points.append(transform_points(detection.landmarks, affine))
    return np.stack(crops), np.stack(points).astype(np.float32)


@pytest.fixture(scope="module")
def setting():
    """The held-out faces (each person's second clip) and a scorer with galleries of the
    first clips."""
    detector = RetinaFaceDetector(threads=1, score_threshold=0.5)
    embedder = IdentityEmbedder()
    gallery = {s: embedder.embed(*_faces(clips[0], detector)) for s, clips in CLIPS.items()}
    held = {s: _faces(clips[1], detector) for s, clips in CLIPS.items()}
    faces = HeldOutFaces(*held["a"], *held["b"])
    scorer = HoldoutScorer(
        faces, embedder.embed, detector.detect_batch, gallery["a"], gallery["b"], identity_distances
    )
    return faces, scorer


class CopyModel(torch.nn.Module):
    """Every swap returns its input: no identity change, no pose change."""

    def swap(self, x: torch.Tensor, to: str) -> tuple[torch.Tensor, torch.Tensor]:
        return x, torch.ones_like(x[:, :1])


class OtherPersonModel(torch.nn.Module):
    """Every swap to `to` returns that person's held-out faces, whatever the input."""

    def __init__(self, faces: HeldOutFaces) -> None:
        super().__init__()
        self.faces = {"a": faces.faces_a, "b": faces.faces_b}

    def swap(self, x: torch.Tensor, to: str) -> tuple[torch.Tensor, torch.Tensor]:
        rgb = torch.from_numpy(self.faces[to]).permute(0, 3, 1, 2).float() / 255.0
        return rgb[: len(x)], torch.ones_like(rgb[: len(x), :1])


def test_a_model_that_copies_its_input_keeps_the_identity_and_the_pose(setting):
    faces, scorer = setting
    score = scorer.score(CopyModel())
    for direction in ("a2b", "b2a"):
        assert score[f"holdout_id_retrieval_{direction}"] == 0.0
        assert score[f"holdout_id_margin_{direction}"] < 0
        assert score[f"holdout_pose_faces_{direction}"] == 4
        # the same crop found again, through the paste's colour match and rounding
        assert score[f"holdout_pose_error_{direction}"] < 0.01
    assert score["holdout_ssim_a"] == pytest.approx(1.0) == score["holdout_ssim_b"]
    assert score["holdout_faces"] == 8 and score["holdout_seconds"] > 0


def test_a_model_that_draws_the_other_person_swaps_identity_but_not_pose(setting):
    faces, scorer = setting
    score = scorer.score(OtherPersonModel(faces))
    for direction in ("a2b", "b2a"):
        assert score[f"holdout_id_retrieval_{direction}"] == 1.0
        assert score[f"holdout_id_margin_{direction}"] > 0.1
        assert score[f"holdout_pose_error_{direction}"] > 0.01  # another face, another pose
    assert score["holdout_ssim_a"] == pytest.approx(1.0)  # A drawn as A: the held-out A


class MaskedOutModel(OtherPersonModel):
    """Draws the other person but masks none of it: render would paste nothing."""

    def swap(self, x: torch.Tensor, to: str) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, mask = super().swap(x, to)
        return rgb, torch.zeros_like(mask)


def test_what_is_scored_is_what_render_would_paste(setting):
    """The swapped face is scored inside its source crop, blended by the decoder's mask as
    render blends it: a face drawn but masked out leaves the source, and reads as it."""
    faces, scorer = setting
    score = scorer.score(MaskedOutModel(faces))
    for direction in ("a2b", "b2a"):
        assert score[f"holdout_id_retrieval_{direction}"] == 0.0
        assert score[f"holdout_pose_error_{direction}"] < 1e-3  # the source crop itself


def test_landmarks_found_on_a_crop_are_the_crops_own(setting):
    faces, scorer = setting
    known_points = (faces.landmarks_a, faces.landmarks_b)
    for found, known in zip(scorer.source_points.values(), known_points, strict=True):
        assert np.isfinite(found).all()
        assert np.abs(found - known).max() < 0.06 * RESOLUTION  # within 4 px at 64 px
