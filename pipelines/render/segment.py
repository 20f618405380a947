"""Render one segment of one video: decode -> detect -> smooth -> swap -> blend -> mark -> encode.

`SegmentRenderer` holds the model and the detector (built once per actor) and renders the
frames [start, stop) of a video (a local path, or a stream from `storage.open_media`)
into a segment MP4. It also decodes `smooth_frames` frames of context on each side, so
the centred landmark window sees the same frames as a single pass over the whole video:
segments join without a seam.

The watermark is embedded at the landmarks the detector finds on the swapped face (one
more detector pass over the swapped frames), which is where `verify` will look.

Faces of many frames go through the model together (`batch_size` faces per forward pass),
and every batch, of the detector and of the model, is padded to a fixed size, so a face's
result does not depend on which other faces shared its batch.

Swapping and paste-back are done by one of two compositors, picked once per renderer
(pipelines/render/composite.py): `HostCompositor` (cv2 per face on the host, the CPU
default) or `DeviceCompositor` (torch for the whole batch on the model's device, the
default on CUDA). They agree to a fraction of a grey level on average
(tests/pipelines/test_render_torch.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import torch

from ops.blend import template_oval
from ops.checkpoint import load_checkpoint
from ops.detect import RetinaFaceDetector, select_faces
from ops.detect_torch import make_detector
from ops.model import swap_target
from ops.smooth import face_scale, match_face, smooth_faces
from ops.types import Detection, Frame, Landmarks
from ops.video import iter_frames
from ops.video_out import SegmentWriter
from pipelines.config import RenderConfig
from pipelines.render.composite import DeviceCompositor, HostCompositor, Pending

PASTE_CHOICES = ("auto", "cv2", "torch")


@dataclass
class SegmentCounts:
    frames: int = 0
    swapped_frames: int = 0
    faces_missed: int = 0  # frames without a (kept) face


class SegmentRenderer:
    """Model + detector of one worker; `render` turns a segment of a video into an MP4.

    `paste` picks the compositor once: "cv2" (`HostCompositor`), "torch"
    (`DeviceCompositor`, on the model's device), or "auto": torch on CUDA, cv2 on CPU,
    where each is faster.
    """

    def __init__(
        self, cfg: RenderConfig, threads: int = 1, device: str = "cpu", paste: str = "auto"
    ) -> None:
        if paste not in PASTE_CHOICES:
            raise ValueError(f"paste must be one of {PASTE_CHOICES}, got {paste!r}")
        self.cfg = cfg
        torch.set_num_threads(max(1, threads))
        self.threads = threads
        self.device = torch.device(device)
        loaded = load_checkpoint(cfg.checkpoint, map_location=self.device)
        self.model = loaded.model.eval()
        self.checkpoint, self.step = loaded.path, loaded.step
        self.resolution = loaded.model_config.resolution
        self.coverage = loaded.coverage
        self.to = swap_target(cfg.direction)
        self.detector = make_detector(  # torch on CUDA; --detector picks on CPU
            str(self.device),
            threads=threads,
            max_side=cfg.detect_size,
            score_threshold=min(cfg.min_score, 0.99),
            backend=cfg.detector,
        )
        oval = template_oval(self.resolution, self.coverage)
        # picked once: torch on the model device, or cv2 on the host (render/composite.py)
        on_device = paste == "torch" or (paste == "auto" and self.device.type == "cuda")
        self.compositor = (DeviceCompositor if on_device else HostCompositor)(self, oval)
        # --evaluate: sees each (source, output) pair before it is encoded
        # (pipelines.evaluate.in_render.SegmentEvaluator); None renders only
        self.evaluator = None

    # -- detection -------------------------------------------------------------------------
    def detect(self, frames: list[Frame] | torch.Tensor) -> list[list[Detection]]:
        """Kept faces per frame; the batch is padded to `batch_size` frames.

        frames: (H, W, 3) uint8 frames, or a (B, H, W, 3) uint8 tensor for a detector
        that takes one.
        """
        size = self.cfg.batch_size
        found: list[list[Detection]] = []
        for begin in range(0, len(frames), size):
            chunk = frames[begin : begin + size]
            if isinstance(chunk, torch.Tensor):
                padded = torch.cat([chunk, chunk[-1:].expand(size - len(chunk), *chunk.shape[1:])])
            else:
                padded = chunk + [chunk[-1]] * (size - len(chunk))
            found += self.detector.detect_batch(padded)[: len(chunk)]
        cfg = self.cfg
        return [select_faces(f, cfg.min_face, cfg.min_score, cfg.faces) for f in found]

    def mark_points(
        self, frames: list[Frame] | torch.Tensor, jobs: list[tuple]
    ) -> list[tuple[int, Landmarks]]:
        """Where to embed the watermark: the landmarks a verifier will find on the new face.

        The swapped face has its own eyes and mouth, a few pixels off the target's; the
        mark is placed where the detector sees the swapped face, so `verify` re-aligns to
        the same canonical crop. Falls back to the target's landmarks if it sees none.
        `jobs` are (frame number, _, _, landmarks); `frames` a list, or a (F, H, W, 3)
        tensor, which a detector that takes host frames only gets downloaded.
        """
        rows = sorted({i for i, *_ in jobs})
        if not isinstance(frames, torch.Tensor):
            chosen = [frames[i] for i in rows]
        elif isinstance(self.detector, RetinaFaceDetector):  # onnxruntime: host frames
            chosen = list(frames[rows].cpu().numpy())
        else:
            chosen = frames[rows]
        redetected = dict(zip(rows, self.detect(chosen), strict=True))
        points = []
        for i, _, _, landmarks in jobs:
            match = match_face(landmarks, redetected[i], 0.5 * face_scale(landmarks))
            points.append((i, landmarks if match is None else match.landmarks))
        return points

    # -- the segment -----------------------------------------------------------------------
    def _windows(
        self, path: str, start: int, stop: int | None, seek: tuple[int, int] | None = None
    ) -> Iterator[tuple[int, Frame, list[tuple[Detection, Landmarks]]]]:
        """(index, frame, smoothed faces) for frames [start, stop), decoding context around."""
        radius = self.cfg.smooth_frames
        context_stop = None if stop is None else stop + radius
        stream = iter_frames(path, max(0, start - radius), context_stop, 1, self.threads, seek)
        indices: list[int] = []
        frames: list[Frame] = []
        found: list[list[Detection]] = []
        ended, following = False, 0  # following: buffer position of the next frame to yield
        while not ended:
            chunk = [item for _, item in zip(range(self.cfg.batch_size), stream, strict=False)]
            ended = len(chunk) < self.cfg.batch_size
            if chunk:
                indices += [index for index, _, _ in chunk]
                frames += [frame for _, _, frame in chunk]
                found += self.detect([frame for _, _, frame in chunk])
            ready = len(found) if ended else len(found) - radius  # centres with a full window
            for centre in range(following, ready):
                if start <= indices[centre] and (stop is None or indices[centre] < stop):
                    faces = smooth_faces(found, centre, radius, self.cfg.min_support)
                    yield indices[centre], frames[centre], faces
            following = max(following, ready)
            drop = max(0, following - radius)  # keep `radius` frames of history
            indices, frames, found = indices[drop:], frames[drop:], found[drop:]
            following -= drop

    def render(
        self,
        path: str,
        start: int,
        stop: int | None,
        out_path: str,
        fps: Fraction,
        seek: tuple[int, int] | None = None,
        on_frame: Callable[[int], None] | None = None,
    ) -> SegmentCounts:
        """Render frames [start, stop) of a video (path or stream) into the MP4 `out_path`.

        `seek` is the (frame, pts) the plan found `smooth_frames` before `start`
        (`ops.video.split_frames`), so a variable-frame-rate video lands on the right frame.
        `on_frame(index)` is called after each frame is encoded (fault injection in tests).
        """
        counts = SegmentCounts()
        writer: SegmentWriter | None = None
        pending: list[Pending] = []
        try:
            for index, frame, faces in self._windows(path, start, stop, seek):
                if writer is None:
                    height, width = frame.shape[:2]
                    writer = SegmentWriter(out_path, fps, width, height, self.cfg.crf)
                pending.append(Pending(index, frame, faces))
                faces_waiting = sum(len(p.faces) for p in pending)
                # a full model batch, or a bounded number of frames held (faceless stretches)
                if faces_waiting >= self.cfg.batch_size or len(pending) >= 2 * self.cfg.batch_size:
                    self._flush(pending, writer, counts, on_frame)
                    pending = []
            if pending and writer is not None:
                self._flush(pending, writer, counts, on_frame)
        finally:
            if writer is not None:
                writer.close()
        return counts

    def _flush(
        self,
        pending: list[Pending],
        writer: SegmentWriter,
        counts: SegmentCounts,
        on_frame: Callable[[int], None] | None,
    ) -> None:
        outputs = self.compositor.composite(pending)
        if self.evaluator is not None:
            self.evaluator.observe(pending, outputs)
        for item, frame in zip(pending, outputs, strict=True):
            writer.write(frame)
            counts.frames += 1
            counts.swapped_frames += bool(item.faces)
            counts.faces_missed += not item.faces
            if on_frame is not None:
                on_frame(item.index)
