"""Swap quality of a model on held-out aligned faces: `rayswap evaluate`'s numbers, no video.

    scorer = HoldoutScorer(held, embed, detect, gallery_a, gallery_b, distances)
    quality = scorer.score(model)      # at every checkpoint

`held` holds aligned crops of A and of B that training never saw (whole held-out videos,
`pipelines.train.data`), at the model's resolution and coverage. Each side is swapped to the
other identity and reconstructed as itself. The swapped face is then put into its source
crop as render puts it into the frame (`ops.blend`: colour-matched inside the template oval,
blended with the decoder's mask eroded and feathered at render's defaults), so what is
scored is what a render would show, hair, ears and background of the source included; then,
per direction:

- id_retrieval: share of swapped faces nearer the target's gallery than the source's
  (`ops.identity` embeddings against galleries of the training faces), id_margin: mean of
  distance-to-source minus distance-to-target, as `ops.metrics` defines them for renders;
- pose_error: mean distance between the 5 landmarks the detector finds on the swapped face
  and on its source face, divided by the source's inter-ocular distance. Both crops are
  detected the same way (upscaled to DETECT_PX and padded, for the detector needs context
  around a tight crop), so the number measures the swap and not the detector;
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

from ops.blend import blend_mask, match_color, template_oval
from ops.losses import ssim_map
from ops.metrics import pose_errors
from ops.smooth import face_scale, match_face
from ops.types import Detection, Frame

DETECT_PX = 192  # crops are upscaled to this side before detection
DETECT_PAD = 64  # and padded by this much on every side (replicated border)
PREFIX = "holdout_"


@dataclass
class HeldOutFaces:
    """Aligned held-out faces of both sides: (N, R, R, 3) uint8 and (N, 5, 2) crop px."""

    faces_a: np.ndarray
    landmarks_a: np.ndarray
    faces_b: np.ndarray
    landmarks_b: np.ndarray
    coverage: float = 1.5  # of the crops (the model's), for render's template oval


def _tensor(faces: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2).float() / 255.0


def _images(rgb: torch.Tensor) -> np.ndarray:
    return (rgb.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).contiguous().numpy()


class HoldoutScorer:
    """Scores a swap model on held-out faces against two galleries of embeddings.

    Args:
        held: the held-out faces; the detector's landmarks of them are found once, here.
        embed: (N, R, R, 3) uint8 crops, (N, 5, 2) landmarks -> (N, D) embeddings
            (`ops.identity.IdentityEmbedder.embed`).
        detect: frames -> detections per frame (`ops.detect.RetinaFaceDetector.detect_batch`).
        gallery_a, gallery_b: (M, D) embeddings of training faces of A and of B.
        distances: (N, D) embeddings, (M, D) gallery -> (N,) distances
            (`ops.identity.identity_distances`).
    """

    def __init__(
        self,
        held: HeldOutFaces,
        embed: Callable[[np.ndarray, np.ndarray], np.ndarray],
        detect: Callable[[list[Frame]], list[list[Detection]]],
        gallery_a: np.ndarray,
        gallery_b: np.ndarray,
        distances: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        self.embed = embed
        self.detect = detect
        self.galleries = {"a": np.asarray(gallery_a), "b": np.asarray(gallery_b)}
        self.distances = distances
        self.sides = {"a": (held.faces_a, held.landmarks_a), "b": (held.faces_b, held.landmarks_b)}
        self.source_points = {side: self._landmarks(*arrays) for side, arrays in self.sides.items()}
        self.oval = template_oval(held.faces_a.shape[1], held.coverage)

    @torch.no_grad()
    def score(self, model: torch.nn.Module) -> dict[str, float | int | None]:
        """`PREFIX`-named numbers of both directions, the SSIMs, face counts and seconds."""
        started = time.perf_counter()
        model = model.eval()
        found: dict[str, float | int | None] = {}
        for source, (faces, landmarks) in self.sides.items():
            target = "b" if source == "a" else "a"
            x = _tensor(faces)
            rgb, mask = model.swap(x, target)
            swapped = self._pasted(_images(rgb), mask[:, 0].float().clamp(0, 1).numpy(), faces)
            own = model.swap(x, source)[0]
            found[f"{PREFIX}ssim_{source}"] = float(ssim_map(own, x).mean())
            direction = f"{source}2{target}"
            found |= {
                f"{PREFIX}{k}_{direction}": v
                for k, v in self._direction(landmarks, swapped, source, target).items()
            }
        found[f"{PREFIX}faces"] = int(sum(len(faces) for faces, _ in self.sides.values()))
        found[f"{PREFIX}seconds"] = time.perf_counter() - started
        return found

    def _pasted(self, swapped: np.ndarray, masks: np.ndarray, sources: np.ndarray) -> np.ndarray:
        """Swapped crops put into their sources as render pastes them (uint8, like sources)."""
        pasted = np.empty_like(sources)
        for i, (rgb, learned, source) in enumerate(zip(swapped, masks, sources, strict=True)):
            rgb = match_color(rgb, source, self.oval)
            weight = blend_mask(learned, self.oval)[..., None]
            mixed = weight * rgb.astype(np.float32) + (1 - weight) * source.astype(np.float32)
            pasted[i] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
        return pasted

    def _direction(
        self,
        landmarks: np.ndarray,
        swapped: np.ndarray,
        source: str,
        target: str,
    ) -> dict[str, float | int | None]:
        embeddings = self.embed(swapped, landmarks)
        to_source = self.distances(embeddings, self.galleries[source])
        to_target = self.distances(embeddings, self.galleries[target])
        source_points = self.source_points[source]
        output_points = self._landmarks(swapped, landmarks)
        kept = np.isfinite(source_points).all((1, 2)) & np.isfinite(output_points).all((1, 2))
        pose = pose_errors(output_points[kept], source_points[kept]) if kept.any() else None
        return {
            "id_retrieval": float(np.mean(to_target < to_source)),
            "id_margin": float(np.mean(to_source - to_target)),
            "pose_error": None if pose is None else float(np.mean(pose)),
            "pose_faces": int(kept.sum()),
        }

    def _landmarks(self, crops: np.ndarray, near: np.ndarray) -> np.ndarray:
        """(N, 5, 2) landmarks the detector finds on each crop, in crop px (NaN: none
        near `near`, the crop's known landmarks)."""
        side = crops.shape[1]
        scale = DETECT_PX / side
        canvases = [
            cv2.copyMakeBorder(
                cv2.resize(crop, (DETECT_PX, DETECT_PX), interpolation=cv2.INTER_CUBIC),
                *(DETECT_PAD,) * 4,
                cv2.BORDER_REPLICATE,
            )
            for crop in crops
        ]
        points = np.full((len(crops), 5, 2), np.nan, np.float32)
        for index, found in enumerate(self.detect(canvases)):
            expect = near[index].reshape(5, 2) * scale + DETECT_PAD
            match = match_face(expect, found, 0.5 * face_scale(expect))
            if match is not None:
                points[index] = (match.landmarks.reshape(5, 2) - DETECT_PAD) / scale
        return points
