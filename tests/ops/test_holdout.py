"""Held-out swap scores on real faces: a model that copies its input scores 0 identity and
no pose error; one that draws the other person scores full identity and a pose error."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ops.align import align_face, transform_points
from ops.augment import centre_affine
from ops.detect import RetinaFaceDetector, select_faces
from ops.holdout import DETECT_PX, HeldOutFaces, HeldOutSide, HoldoutScorer
from ops.identity import IdentityEmbedder, identity_distances
from ops.metrics import pose_errors
from ops.video import iter_frames
from ops.watermark import correlate_face, decide_watermark, embed_watermark
from tests.conftest import shared_video

RESOLUTION, COVERAGE = 64, 1.1  # the model's
CONTEXT, CONTEXT_COVERAGE = 128, 1.5  # extract's crops
CLIPS = {
    "a": ("person_a__mead_M030_front_neutral.mp4", "person_a__mead_M030_front_fear.mp4"),
    "b": ("person_b__mead_W009_front_happy.mp4", "person_b__mead_W009_front_surprised.mp4"),
}


def _faces(clip: str, detector: RetinaFaceDetector, size: int, coverage: float, scales=None):
    """Four aligned faces of a clip (frames 0, 20, 40, 60) and their crop landmarks; the
    crops' px per frame px are appended to `scales`."""
    crops, points = [], []
    for _, _, frame in iter_frames(str(shared_video(clip)), 0, 61, every_n=20):
        detection = select_faces(detector.detect_batch([frame])[0], which="largest")[0]
        crop, affine = align_face(frame, detection.landmarks, size, coverage=coverage)
        crops.append(crop)
        points.append(transform_points(detection.landmarks, affine))
        if scales is not None:
            scales.append(float(np.hypot(affine[0, 0], affine[1, 0])))
    return np.stack(crops), np.stack(points).astype(np.float32)


def _held_out(clip: str, detector: RetinaFaceDetector) -> HeldOutSide:
    """A clip's faces as extract stores them and as the model sees them: their centre
    region at the model's coverage (as training cuts it, `ops.augment.load_face`)."""
    scales: list[float] = []
    context, points = _faces(clip, detector, CONTEXT, CONTEXT_COVERAGE, scales)
    zoom = CONTEXT_COVERAGE / COVERAGE
    affine = centre_affine(CONTEXT, RESOLUTION, zoom)
    faces = [cv2.warpAffine(c, affine, (RESOLUTION,) * 2, flags=cv2.INTER_AREA) for c in context]
    landmarks = np.stack([transform_points(p, affine) for p in points]).astype(np.float32)
    return HeldOutSide(np.stack(faces), landmarks, context, points, zoom, np.median(scales))


@pytest.fixture(scope="module")
def setting():
    """The held-out faces (each person's second clip) and a scorer with galleries of the
    first clips."""
    detector = RetinaFaceDetector(threads=1, score_threshold=0.5)
    embedder = IdentityEmbedder()
    gallery = {
        s: embedder.embed(*_faces(clips[0], detector, CONTEXT, CONTEXT_COVERAGE))
        for s, clips in CLIPS.items()
    }
    held = {s: _held_out(clips[1], detector) for s, clips in CLIPS.items()}
    faces = HeldOutFaces(held["a"], held["b"], coverage=COVERAGE)
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
        self.faces = {"a": faces.a.faces, "b": faces.b.faces}

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
        # the same face found again, through the 64 px model crop's resampling, the
        # paste's colour match and rounding (the detector's own noise on a softer face)
        assert score[f"holdout_pose_error_{direction}"] < 0.03
    assert score["holdout_ssim_a"] == pytest.approx(1.0) == score["holdout_ssim_b"]
    assert score["holdout_faces"] == 8 and score["holdout_seconds"] > 0


def test_a_model_that_draws_the_other_person_swaps_identity_but_not_pose(setting):
    faces, scorer = setting
    score, copied = scorer.score(OtherPersonModel(faces)), scorer.score(CopyModel())
    for direction in ("a2b", "b2a"):
        assert score[f"holdout_id_retrieval_{direction}"] == 1.0
        assert score[f"holdout_id_margin_{direction}"] > 0.1
        pose = f"holdout_pose_error_{direction}"
        assert score[pose] > copied[pose] + 0.005  # another face, another pose
    assert score["holdout_ssim_a"] == pytest.approx(1.0)  # A drawn as A: the held-out A


class MaskedOutModel(OtherPersonModel):
    """Draws the other person but masks none of it: render would paste nothing."""

    def swap(self, x: torch.Tensor, to: str) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, mask = super().swap(x, to)
        return rgb, torch.zeros_like(mask)


def test_what_is_scored_is_what_render_would_paste(setting):
    """The swapped face is scored inside its source's context crop, blended by the
    decoder's mask as render blends it: a face drawn but masked out leaves the source
    crop exactly, and reads as it."""
    faces, scorer = setting
    model = MaskedOutModel(faces)
    assert np.array_equal(scorer.pasted(model, "a"), faces.a.context)
    score = scorer.score(model)
    for direction in ("a2b", "b2a"):
        assert score[f"holdout_id_retrieval_{direction}"] == 0.0
        assert score[f"holdout_pose_error_{direction}"] < 1e-3  # the source crop itself


def test_identity_is_scored_on_crops_marked_as_a_render_would_be(setting):
    """With `mark`, the crops the embedder sees carry render's watermark where the
    detector finds the swapped face (verify reads it off them, not off the plain paste);
    without, they are the paste itself. Marked, a face still reads as the person drawn."""
    faces, plain = setting
    galleries = plain.galleries["a"], plain.galleries["b"]
    marked = HoldoutScorer(
        faces, plain.embed, plain.detect, *galleries, plain.distances, mark=embed_watermark
    )
    model = OtherPersonModel(faces)
    pasted = plain.pasted(model, "a")
    points = marked._landmarks(pasted, faces.a.context_landmarks, faces.a.frame_scale)
    assert np.isfinite(points).all()
    assert np.array_equal(plain.watermarked(pasted, points), pasted)
    shown = marked.watermarked(pasted, points)

    def verdict(crops):
        found = [correlate_face(c, p) for c, p in zip(crops, points, strict=True)]
        return decide_watermark(np.stack(found))

    assert verdict(shown).marked and not verdict(pasted).marked
    score, unmarked = marked.score(model), plain.score(model)
    assert score["holdout_id_retrieval_a2b"] == 1.0 == score["holdout_id_retrieval_b2a"]
    assert score["holdout_id_margin_a2b"] != unmarked["holdout_id_margin_a2b"]  # marked
    # the pose, as evaluate's, is of the face found again on the marked crop
    found = marked._landmarks(shown, faces.a.context_landmarks, faces.a.frame_scale)
    pose = pose_errors(found, marked.source_points["a"]).mean()
    assert score["holdout_pose_error_a2b"] == pytest.approx(pose, abs=1e-6)
    assert abs(pose - unmarked["holdout_pose_error_a2b"]) > 1e-3  # the mark moved the points


def test_faces_are_detected_at_their_size_in_the_source_frame(setting):
    """The detector sees each crop resized to the face's size in its frame (context px /
    frame_scale), padded by a quarter of that; without a frame scale, at DETECT_PX."""
    faces, scorer = setting
    seen: list[tuple[int, ...]] = []

    def detect(canvases):
        seen.append(canvases[0].shape)
        return scorer.detect(canvases)

    probe = HoldoutScorer(faces, scorer.embed, detect, *scorer.galleries.values(), scorer.distances)
    canvas = round(CONTEXT / faces.a.frame_scale)
    assert faces.a.frame_scale < 1 and canvas != DETECT_PX  # the clips' faces fill their frame
    assert seen[0] == (canvas + 2 * round(canvas / 4),) * 2 + (3,)
    assert np.abs(probe.source_points["a"] - faces.a.context_landmarks).max() < 0.06 * CONTEXT
    unknown = HeldOutSide(
        faces.a.faces, faces.a.landmarks, faces.a.context, faces.a.context_landmarks
    )
    probe._landmarks(unknown.context, unknown.context_landmarks, unknown.frame_scale)
    assert seen[-1] == (DETECT_PX + 2 * DETECT_PX // 4,) * 2 + (3,)


def test_the_swap_lands_on_the_face_of_its_context_crop(setting):
    """Pasted through the crop-to-model map: the model's own crop put back (a copy) lands
    where it was cut from, and nothing outside the model's crop moves."""
    faces, scorer = setting
    pasted = scorer.pasted(CopyModel(), "b").astype(np.float32)
    context = faces.b.context.astype(np.float32)
    margin = round(CONTEXT * (1 - 1 / faces.b.zoom) / 2) - 2  # outside the model's crop
    outside = np.ones(context.shape[1:3], bool)
    outside[margin:-margin, margin:-margin] = False
    assert np.array_equal(pasted[:, outside], context[:, outside])
    changed = np.abs(pasted - context).mean(-1)[:, ~outside]
    assert changed.max() > 0  # the copy was pasted (64 px, resampled)
    assert changed.mean() < 6  # and onto the same face: a misplaced paste moves far more


def test_landmarks_found_on_a_crop_are_the_crops_own(setting):
    faces, scorer = setting
    known_points = (faces.a.context_landmarks, faces.b.context_landmarks)
    for found, known in zip(scorer.source_points.values(), known_points, strict=True):
        assert np.isfinite(found).all()
        assert np.abs(found - known).max() < 0.06 * CONTEXT  # within 8 px at 128 px


def test_pose_floors_part_the_swap_from_the_detector_and_the_redrawing(setting):
    faces, scorer = setting
    copied = scorer.pose_floors(CopyModel())
    drawn = scorer.pose_floors(OtherPersonModel(faces))
    for side in "ab":
        # unmarked, the source crop found again is found exactly where it was
        assert copied[f"source_{side}"] == 0.0 == drawn[f"source_{side}"]
        # a copy either way; then the 64 px crop's resampling and the paste, not the swap
        assert copied[f"own_{side}"] == copied[f"swap_{side}"] < 0.03
        # drawn as its own person, a face is its own face: as the copy
        assert drawn[f"own_{side}"] == copied[f"own_{side}"]
        assert drawn[f"swap_{side}"] > drawn[f"own_{side}"] + 0.005  # another face
    assert drawn["swap_a"] == scorer.score(OtherPersonModel(faces))["holdout_pose_error_a2b"]
