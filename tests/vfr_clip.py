"""A variable-frame-rate test clip, written with PyAV the way phones store video.

Phones record at a variable frame rate: the gap between frames changes with light and
load. The clip's frames sit at uneven timestamps (a repeating cycle of steps), and each
frame carries its number in two grey corner blocks, so a reader can check which frame
it got.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

TIME_BASE = Fraction(1, 900)
STEPS = (30, 60, 15, 45, 30)  # ticks of 1/900 s: 30, 15, 60 and 20 fps gaps mixed
STAMP_PX = 16  # side of each of the two corner blocks that carry the frame number
STAMP_LEVEL = 32  # grey step per digit: each block holds one base-8 digit (0..63 in all)


def vfr_timestamps(count: int) -> list[int]:
    """The pts (in TIME_BASE ticks) of each frame of a clip of `count` frames."""
    return [sum(STEPS[i % len(STEPS)] for i in range(n)) for n in range(count)]


def stamp(frame: np.ndarray, index: int) -> np.ndarray:
    """A copy of `frame` with `index` % 64 written into two top-left blocks (base-8 digits)."""
    out = frame.copy()
    high, low = divmod(index % 64, 8)
    out[:STAMP_PX, :STAMP_PX] = 16 + STAMP_LEVEL * high
    out[:STAMP_PX, STAMP_PX : 2 * STAMP_PX] = 16 + STAMP_LEVEL * low
    return out


def read_stamp(frame: np.ndarray) -> int:
    """The frame number `stamp` wrote (the blocks' inner pixels, rounded to a digit)."""
    inner = slice(3, STAMP_PX - 3)
    digits = []
    for left in (0, STAMP_PX):
        block = frame[inner, left + 3 : left + STAMP_PX - 3].astype(np.float64)
        digits.append(int(round((block.mean() - 16) / STAMP_LEVEL)))
    return 8 * digits[0] + digits[1]


def write_vfr_clip(frames: list[np.ndarray], path: str) -> list[float]:
    """Write stamped RGB frames as H.264 (with B-frames) at uneven timestamps.

    Returns each frame's time in seconds.
    """
    timestamps = vfr_timestamps(len(frames))
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = TIME_BASE  # keep every tick
        stream.options = {"crf": "18", "bf": "2", "g": "12"}
        for index, (frame, pts) in enumerate(zip(frames, timestamps, strict=True)):
            video_frame = av.VideoFrame.from_ndarray(stamp(frame, index), format="rgb24")
            video_frame.pts, video_frame.time_base = pts, TIME_BASE
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return [float(pts * TIME_BASE) for pts in timestamps]
