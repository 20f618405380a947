"""Array aliases and small records shared by the ops modules.

Conventions used everywhere in rayswap:
- `Frame`: (H, W, 3) uint8 RGB, full video frame.
- `Landmarks`: (5, 2) float32, x, y in pixels; order: right eye, left eye, nose,
  right mouth corner, left mouth corner (RetinaFace order, "right" = subject's right).
- `Affine`: (2, 3) float32, maps frame pixels to crop pixels (frame -> crop).
- `BBox`: (4,) float32 (x0, y0, x1, y1) in frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Frame = np.ndarray
Landmarks = np.ndarray
Affine = np.ndarray
BBox = np.ndarray


@dataclass(frozen=True)
class Detection:
    """One detected face in frame pixels."""

    bbox: BBox  # (4,) float32 x0, y0, x1, y1
    landmarks: Landmarks  # (5, 2) float32
    score: float

    @property
    def width(self) -> float:
        return float(self.bbox[2] - self.bbox[0])

    @property
    def height(self) -> float:
        return float(self.bbox[3] - self.bbox[1])


@dataclass(frozen=True)
class VideoInfo:
    """What `probe_video` learns from a container without decoding it all."""

    path: str
    width: int  # displayed width, after rotation
    height: int  # displayed height, after rotation
    fps: float
    frame_count: int  # from the header; may be an estimate for some containers
    duration_s: float
    codec: str
    rotation: int  # degrees clockwise to apply to decoded frames (0, 90, 180, 270)
    has_audio: bool
    frame_rate: str = ""  # exact, as "num/den" ("30000/1001"); Fraction(frame_rate)


@dataclass(frozen=True)
class FrameRange:
    """Frames [start, stop) of a video (stop -1: to the end) and where reading them seeks.

    `seek_frame` is a frame at or before `start` and `seek_pts` its timestamp (stream
    time-base ticks); -1 for both when reading starts at frame 0 or must find its place.
    """

    start: int
    stop: int
    seek_frame: int = -1
    seek_pts: int = -1

    @property
    def seek(self) -> tuple[int, int] | None:
        """(frame, pts) for `iter_frames(seek=...)`, or None."""
        return None if self.seek_frame < 0 else (self.seek_frame, self.seek_pts)
