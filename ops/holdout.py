"""Swap quality of a model on held-out aligned faces: `rayswap evaluate`'s numbers, no video.

    scorer = HoldoutScorer(held, embed, detect, gallery_a, gallery_b, distances)
    quality = scorer.score(model)      # at every checkpoint

`held` holds faces of A and of B that training never saw (whole held-out videos,
`pipelines.train.data`), each twice: as the model sees it (its resolution and coverage)
and as extract stored it (the context crop: its coverage, up to CONTEXT_PX). Each side is
swapped to the other identity and reconstructed as itself. The swapped face is put back
into the context crop exactly as render puts it into the frame (`ops.blend`: colour-matched
inside the template oval, blended with the decoder's mask eroded and feathered at render's
defaults, pasted through the crop-to-model map), so what is scored is what a render shows:
the source's hair, ears and background around the swap, at the stored crop's resolution,
not a tight 64 px crop (on a quality benchmark checkpoint the tight crop read 0.4-0.5 of
id_retrieval off evaluate's on the same frames, in both directions; docs/benchmarks.md).
Then, per direction, as `rayswap evaluate` scores a rendered frame:

- given `mark`, the pasted crop is marked with render's invisible watermark where the
  detector finds the swapped face (its source's landmarks where it finds none), as render
  marks a frame; then the detector finds the face again on the marked crop, as evaluate
  does on the rendered frame, and its 5 landmarks place the identity embedding and give
  the pose. The mark's faint grain moves both on soft faces: unmarked, b2a read 0.16 of
  id_retrieval under evaluate's on the same faces of a benchmark checkpoint (marked 0.03),
  and the same frames' a2b pose_error 0.069 where the marked render read 0.080-0.085;
- id_retrieval: share of swapped faces nearer the target's gallery than the source's
  (`ops.identity` embeddings against galleries of the training faces), id_margin: mean of
  distance-to-source minus distance-to-target, as `ops.metrics` defines them for renders;
- pose_error: mean distance between the 5 landmarks the detector finds on the swapped face
  and on its source face, divided by the source's inter-ocular distance. Both crops are
  detected the same way: resized so that the face has its size in the source frame (the
  side's `frame_scale`; evaluate detects the frame itself, and the detector's landmarks
  move with the face's size: on one checkpoint's a2b frames, detected at the stored
  crop's 256 px instead of the frame's 305, a render read 0.070 where evaluate read 0.085)
  and padded by a quarter of that on every side, for the detector needs context around a
  crop. So the number measures the swap and not the detector;
- shape_error: the pose_error left once the swapped face's 5 points are moved, scaled and
  turned as one onto the source's: the face's shape (expression, proportions), not its
  placement;
- ssim: mean SSIM of each side's reconstruction against its input.

A face the detector misses on either crop is left out of the pose error (`pose_faces`
counts those kept). Everything runs on the CPU, in float32, without gradients.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ops.augment import centre_affine
from ops.blend import blend_mask, match_color, paste_back, template_oval
from ops.losses import ssim_map
from ops.metrics import pose_errors, shape_errors
from ops.smooth import face_scale, match_face
from ops.types import Detection, Frame

CONTEXT_PX = 256  # context crops larger than this are scored at this side
DETECT_PX = 256  # crops of an unknown frame scale are resized to this side before detection
DETECT_PAD_SHARE = 0.25  # and padded by this share of it on every side (replicated border)
MAX_DETECT_PX = 1024  # the largest detection canvas side, before the padding
PREFIX = "holdout_"


@dataclass
class HeldOutSide:
    """One person's held-out faces, as the model sees them and as extract stored them.

    faces: (N, R, R, 3) uint8 at the model's resolution and coverage, landmarks (N, 5, 2)
    in their px; context: (N, S, S, 3) uint8 crops of extract's coverage, context_landmarks
    (N, 5, 2) in their px; zoom: the context's coverage over the model's (>= 1), so the
    model's crop is the context's centre 1/zoom (`ops.augment.centre_affine`);
    frame_scale: context px per source-frame px (the faces' median; 0: unknown, detected
    at DETECT_PX).
    """

    faces: np.ndarray
    landmarks: np.ndarray
    context: np.ndarray
    context_landmarks: np.ndarray
    zoom: float = 1.0
    frame_scale: float = 0.0

    def __len__(self) -> int:
        return len(self.faces)


@dataclass
class HeldOutFaces:
    """Held-out faces of both sides and the model's coverage (for render's template oval)."""

    a: HeldOutSide
    b: HeldOutSide
    coverage: float = 1.5


def _tensor(faces: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float() / 255.0


def _images(rgb: torch.Tensor) -> np.ndarray:
    return (rgb.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).contiguous().numpy()


class HoldoutScorer:
    """Scores a swap model on held-out faces against two galleries of embeddings.

    Args:
        held: the held-out faces; the detector's landmarks of their context crops are
            found once, here.
        embed: (N, S, S, 3) uint8 crops, (N, 5, 2) landmarks -> (N, D) embeddings
            (`ops.identity.IdentityEmbedder.embed`).
        detect: frames -> detections per frame (`ops.detect.RetinaFaceDetector.detect_batch`).
        gallery_a, gallery_b: (M, D) embeddings of training faces of A and of B.
        distances: (N, D) embeddings, (M, D) gallery -> (N,) distances
            (`ops.identity.identity_distances`).
        mark: (S, S, 3) crop, (5, 2) landmarks -> the crop marked as render marks a swapped
            face (`ops.watermark.embed_watermark`); None: scored unmarked.
    """

    def __init__(
        self,
        held: HeldOutFaces,
        embed: Callable[[np.ndarray, np.ndarray], np.ndarray],
        detect: Callable[[list[Frame]], list[list[Detection]]],
        gallery_a: np.ndarray,
        gallery_b: np.ndarray,
        distances: Callable[[np.ndarray, np.ndarray], np.ndarray],
        mark: Callable[[Frame, np.ndarray], Frame] | None = None,
    ) -> None:
        self.embed = embed
        self.mark = mark
        self.detect = detect
        self.galleries = {"a": np.asarray(gallery_a), "b": np.asarray(gallery_b)}
        self.distances = distances
        self.sides = {"a": held.a, "b": held.b}
        self.source_points = {
            side: self._landmarks(faces.context, faces.context_landmarks, faces.frame_scale)
            for side, faces in self.sides.items()
        }
        self.oval = template_oval(held.a.faces.shape[1], held.coverage)

    @torch.no_grad()
    def score(self, model: torch.nn.Module) -> dict[str, float | int | None]:
        """`PREFIX`-named numbers of both directions, the SSIMs, face counts and seconds."""
        started = time.perf_counter()
        model = model.eval()
        found: dict[str, float | int | None] = {}
        for source, faces in self.sides.items():
            target = "b" if source == "a" else "a"
            x = _tensor(faces.faces)
            own = model.swap(x, source)[0]
            found[f"{PREFIX}ssim_{source}"] = float(ssim_map(own, x).mean())
            pasted = self.pasted(model, source)
            direction = f"{source}2{target}"
            found |= {
                f"{PREFIX}{k}_{direction}": v
                for k, v in self._direction(pasted, source, target).items()
            }
        found[f"{PREFIX}faces"] = int(sum(len(faces) for faces in self.sides.values()))
        found[f"{PREFIX}seconds"] = time.perf_counter() - started
        return found

    @torch.no_grad()
    def pose_floors(self, model: torch.nn.Module) -> dict[str, float | None]:
        """What part of each direction's pose_error is not the swap, per source side:
        `source_a`: the source's own face, its context crop marked and detected again as a
        swap is (the watermark and the detector alone); `own_a`: the model's reconstruction
        of it by its own decoder, pasted and marked as a swap is (adding the model's
        resolution and blur); and `swap_a`: the swap a2b itself (likewise for b). Each
        with its `shape_error` beside it (`own_shape_a`, ...: `ops.metrics.shape_errors`,
        what is left once the face's placement, size and tilt are fitted)."""
        model = model.eval()
        found: dict[str, float | None] = {}
        for source, faces in self.sides.items():
            target = "b" if source == "a" else "a"
            crops = {
                "source": faces.context,
                "own": self.pasted(model, source, to=source),
                "swap": self.pasted(model, source),
            }
            for name, pasted in crops.items():
                scored = self._direction(pasted, source, target)
                found[f"{name}_{source}"] = scored["pose_error"]
                found[f"{name}_shape_{source}"] = scored["shape_error"]
        return found

    @torch.no_grad()
    def pasted(self, model: torch.nn.Module, source: str, to: str | None = None) -> np.ndarray:
        """`source`'s held-out faces swapped to the other side (or decoded as `to`) and put
        into their context crops as render pastes a swap into its frame: (N, S, S, 3)
        uint8."""
        faces = self.sides[source]
        rgb, mask = model.swap(_tensor(faces.faces), to or ("b" if source == "a" else "a"))
        swapped, masks = _images(rgb), mask[:, 0].float().clamp(0, 1).numpy()
        affine = centre_affine(faces.context.shape[1], faces.faces.shape[1], faces.zoom)
        pasted = np.empty_like(faces.context)
        for i, (face, learned, crop) in enumerate(zip(swapped, masks, faces.faces, strict=True)):
            face = match_color(face, crop, self.oval)
            pasted[i] = paste_back(faces.context[i], face, blend_mask(learned, self.oval), affine)
        return pasted

    def watermarked(self, crops: np.ndarray, points: np.ndarray) -> np.ndarray:
        """`crops` marked as render marks a swapped face, at `points` (given `mark`)."""
        if self.mark is None:
            return crops
        return np.stack([self.mark(crop, p) for crop, p in zip(crops, points, strict=True)])

    def _direction(
        self, pasted: np.ndarray, source: str, target: str
    ) -> dict[str, float | int | None]:
        faces, source_points = self.sides[source], self.source_points[source]
        known = faces.context_landmarks
        if self.mark is not None:  # as render: marked where the swapped face is found
            first = self._landmarks(pasted, known, faces.frame_scale)
            placed = np.where(np.isfinite(first).all((1, 2))[:, None, None], first, known)
            pasted = self.watermarked(pasted, placed)
        # as evaluate, on what render wrote: the output's own landmarks, else the source's
        output_points = self._landmarks(pasted, known, faces.frame_scale)
        found = np.isfinite(output_points).all((1, 2))
        placed = np.where(found[:, None, None], output_points, known)
        embeddings = self.embed(pasted, placed)
        to_source = self.distances(embeddings, self.galleries[source])
        to_target = self.distances(embeddings, self.galleries[target])
        kept = np.isfinite(source_points).all((1, 2)) & found
        pose = pose_errors(output_points[kept], source_points[kept]) if kept.any() else None
        shape = shape_errors(output_points[kept], source_points[kept]) if kept.any() else None
        return {
            "id_retrieval": float(np.mean(to_target < to_source)),
            "id_margin": float(np.mean(to_source - to_target)),
            "pose_error": None if pose is None else float(np.mean(pose)),
            "shape_error": None if shape is None else float(np.mean(shape)),
            "pose_faces": int(kept.sum()),
        }

    def _landmarks(self, crops: np.ndarray, near: np.ndarray, frame_scale: float) -> np.ndarray:
        """(N, 5, 2) landmarks the detector finds on each crop, in crop px (NaN: none
        near `near`, the crop's known landmarks), at the face's size in its source frame."""
        side = crops.shape[1]
        canvas = round(side / frame_scale) if frame_scale > 0 else DETECT_PX
        canvas = int(min(max(canvas, 32), MAX_DETECT_PX))
        scale, pad = canvas / side, round(DETECT_PAD_SHARE * canvas)
        interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
        canvases = [
            cv2.copyMakeBorder(
                cv2.resize(crop, (canvas, canvas), interpolation=interpolation),
                *(pad,) * 4,
                cv2.BORDER_REPLICATE,
            )
            for crop in crops
        ]
        points = np.full((len(crops), 5, 2), np.nan, np.float32)
        for index, found in enumerate(self.detect(canvases)):
            expect = near[index].reshape(5, 2) * scale + pad
            match = match_face(expect, found, 0.5 * face_scale(expect))
            if match is not None:
                points[index] = (match.landmarks.reshape(5, 2) - pad) / scale
        return points
