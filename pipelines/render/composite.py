"""The two compositors of a render: swap the faces of pending frames and blend them in.

Both take the frames a `SegmentRenderer` holds (with their smoothed faces), run every face
through the model in fixed-size batches, colour-match, mask, paste back, watermark and
label, with the same steps:

- `HostCompositor`: cv2 per face on the host (`ops.blend`, `ops.watermark`); the CPU default.
- `DeviceCompositor`: torch for all faces at once on the model's device (`ops.blend_torch`,
  `ops.watermark_torch`); the default on CUDA. The frames with a face are uploaded once,
  cropped, swapped, colour-matched, pasted and marked there, and downloaded once for the
  label and the encoder (and once for the re-detection, for a detector that takes host
  frames only).

The renderer picks one when it is built; nothing switches between them per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ops.align import align_face, estimate_affine
from ops.blend import blend_mask, match_color, paste_back
from ops.blend_torch import blend_masks, crop_faces, match_colors, paste_faces
from ops.label import draw_label
from ops.types import Detection, Frame, Landmarks
from ops.watermark import embed_watermark
from ops.watermark_torch import embed_watermarks

if TYPE_CHECKING:
    from pipelines.render.segment import SegmentRenderer


@dataclass
class Pending:
    """A decoded frame waiting for its faces to be swapped."""

    index: int
    frame: Frame
    faces: list[tuple[Detection, Landmarks]]


class HostCompositor:
    """Faces swapped in batches, blended per face with cv2 on the host."""

    def __init__(self, renderer: SegmentRenderer, oval: np.ndarray) -> None:
        self.renderer = renderer
        self.oval = oval  # (R, R) float32 template face region

    @torch.inference_mode()
    def swap(self, crops: list[Frame]) -> tuple[list[Frame], list[np.ndarray]]:
        """(R, R, 3) uint8 crops -> swapped (R, R, 3) uint8 crops and (R, R) float32 masks."""
        r = self.renderer
        size = r.cfg.batch_size
        rgbs: list[Frame] = []
        masks: list[np.ndarray] = []
        for begin in range(0, len(crops), size):
            chunk = np.stack(crops[begin : begin + size])  # (n, R, R, 3)
            batch = np.zeros((size, *chunk.shape[1:]), dtype=np.uint8)
            batch[: len(chunk)] = chunk
            x = torch.from_numpy(batch).to(r.device).permute(0, 3, 1, 2).float() / 255.0
            rgb, mask = r.model.swap(x, to=r.to)  # (B, 3, R, R), (B, 1, R, R) in [0, 1]
            rgb = (rgb.clamp(0, 1) * 255.0).round().byte().permute(0, 2, 3, 1).cpu().numpy()
            mask = mask[:, 0].float().cpu().numpy()
            rgbs += list(rgb[: len(chunk)])
            masks += list(mask[: len(chunk)])
        return rgbs, masks

    def composite(self, pending: list[Pending]) -> list[Frame]:
        """Swap every face of the pending frames (one model pass for all) and blend them in."""
        r, cfg = self.renderer, self.renderer.cfg
        jobs = []  # (frame number in `pending`, crop, affine, landmarks)
        for i, item in enumerate(pending):
            for _, landmarks in item.faces:
                crop, affine = align_face(item.frame, landmarks, r.resolution, r.coverage)
                jobs.append((i, crop, affine, landmarks))
        swapped, masks = self.swap([crop for _, crop, _, _ in jobs])
        frames = [item.frame for item in pending]
        for (i, crop, affine, _), rgb, learned in zip(jobs, swapped, masks, strict=True):
            rgb = match_color(rgb, crop, self.oval, cfg.color)
            mask = blend_mask(learned, self.oval, cfg.mask_erode, cfg.mask_feather)
            frames[i] = paste_back(frames[i], rgb, mask, affine)
        for i, landmarks in r.mark_points(frames, jobs):
            frames[i] = embed_watermark(
                frames[i], landmarks, cfg.watermark_key, cfg.watermark_strength
            )
        if cfg.label:
            frames = [
                draw_label(f) if item.faces else f for f, item in zip(frames, pending, strict=True)
            ]
        return frames


class DeviceCompositor:
    """The frames with a face on the model's device, all faces swapped and blended at once."""

    def __init__(self, renderer: SegmentRenderer, oval: np.ndarray) -> None:
        self.renderer = renderer
        self.oval = torch.from_numpy(oval).to(renderer.device)  # (R, R) float32

    @torch.inference_mode()
    def swap(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, R, R) float32 whole numbers in [0, 255] -> swapped crops (N, 3, R, R)
        rounded to whole numbers, and (N, R, R) float32 masks (as `HostCompositor.swap`)."""
        r = self.renderer
        size = r.cfg.batch_size
        rgbs: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        for begin in range(0, len(crops), size):
            chunk = crops[begin : begin + size]
            batch = chunk.new_zeros((size, *chunk.shape[2:], 3))  # channels last, as on the host
            batch[: len(chunk)] = chunk.permute(0, 2, 3, 1)
            rgb, mask = r.model.swap(batch.permute(0, 3, 1, 2) / 255.0, to=r.to)
            rgbs.append((rgb[: len(chunk)].clamp(0, 1) * 255.0).round())
            masks.append(mask[: len(chunk), 0].float())
        return torch.cat(rgbs), torch.cat(masks)

    def composite(self, pending: list[Pending]) -> list[Frame]:
        """Swap every face of the pending frames and blend them in, on the device."""
        r, cfg = self.renderer, self.renderer.cfg
        rows = [i for i, item in enumerate(pending) if item.faces]
        out = [item.frame for item in pending]
        if not rows:
            return out
        frames = torch.from_numpy(np.stack([out[i] for i in rows])).to(r.device)
        jobs = []  # (frame number in `frames`, face number, affine, landmarks)
        for row, i in enumerate(rows):
            for _, landmarks in pending[i].faces:
                affine = estimate_affine(landmarks, r.resolution, r.coverage)
                jobs.append((row, len(jobs), affine, landmarks))
        face_rows = [row for row, *_ in jobs]
        affines = np.stack([affine for _, _, affine, _ in jobs])
        crops = crop_faces(frames, face_rows, affines, r.resolution)
        rgb, learned = self.swap(crops)
        rgb = match_colors(rgb, crops, self.oval, cfg.color)
        masks = blend_masks(learned, self.oval, cfg.mask_erode, cfg.mask_feather)
        paste_faces(frames, face_rows, rgb, masks, affines)
        marks = r.mark_points(frames, jobs)
        embed_watermarks(
            frames,
            [row for row, _ in marks],
            [points for _, points in marks],
            cfg.watermark_key,
            cfg.watermark_strength,
        )
        for row, frame in zip(rows, frames.cpu().numpy(), strict=True):
            out[row] = draw_label(frame) if cfg.label else frame
        return out
