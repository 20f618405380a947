"""Sample clips made from scikit-image's public-domain astronaut portrait, with no download.

The portrait is animated (small head turns, zoom and drift) so detection, alignment and
training see motion. Identity "a" is the portrait; identity "b" is a mirrored, re-lit
version, enough for a demo of the two-identity pipeline. Each clip carries a quiet tone
as its audio track, so render can show that sound is carried over.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction

import av
import cv2
import numpy as np

from ops.types import Frame


def portrait(identity: str = "a") -> Frame:
    """The portrait for identity "a" or "b", (512, 512, 3) uint8 RGB."""
    from skimage import data

    image = data.astronaut()
    if identity == "a":
        return image
    if identity == "b":
        mirrored = np.ascontiguousarray(image[:, ::-1])
        lab = cv2.cvtColor(mirrored, cv2.COLOR_RGB2LAB).astype(np.float32)
        lab[..., 1] += 10  # warmer skin, a different look for the demo
        lab[..., 0] = np.clip(lab[..., 0] * 0.92 + 12, 0, 255)
        return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
    raise ValueError(f"identity must be 'a' or 'b', got {identity!r}")


def animate(image: Frame, index: int, size: int, seed: int = 0) -> Frame:
    """Frame `index` of a smooth motion over `image`: rotation, zoom and drift, (size, size, 3)."""
    phase = index / 12.0 + seed
    angle = 8.0 * math.sin(phase)
    scale = 1.0 + 0.08 * math.sin(0.7 * phase + 1.0)
    shift = np.array([10.0 * math.sin(0.5 * phase), 6.0 * math.cos(0.9 * phase)])
    centre = (230.0, 190.0)  # roughly the face of the portrait
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 2] += shift
    moved = cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT101)
    top, left = 0, 70
    return cv2.resize(
        moved[top : top + 320, left : left + 320], (size, size), interpolation=cv2.INTER_AREA
    )


def write_clip(
    frames: list[Frame], path: str, fps: int = 25, tone_hz: float | None = 440.0
) -> None:
    """Write RGB frames as H.264 MP4, with a quiet sine tone as AAC audio when tone_hz is set."""
    sample_rate = 44100
    with av.open(path, mode="w") as container:
        video = container.add_stream("libx264", rate=Fraction(fps))
        video.width, video.height = frames[0].shape[1], frames[0].shape[0]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "18", "preset": "veryfast"}
        audio = container.add_stream("aac", rate=sample_rate) if tone_hz else None
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            total = int(sample_rate * len(frames) / fps)
            t = np.arange(total) / sample_rate
            wave = (0.1 * np.sin(2 * math.pi * tone_hz * t)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = wave[start : start + 1024][None, :]
                audio_frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                audio_frame.sample_rate = sample_rate
                for packet in audio.encode(audio_frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)


def make_sample_clips(
    folder: str, frames: int = 50, size: int = 256, fps: int = 25
) -> dict[str, str]:
    """Write one clip per identity ("a", "b") into `folder`; return {identity: path}."""
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for seed, identity in enumerate(("a", "b")):
        image = portrait(identity)
        clip = [animate(image, i, size, seed=seed) for i in range(frames)]
        path = os.path.join(folder, f"sample_{identity}.mp4")
        write_clip(clip, path, fps=fps, tone_hz=440.0 + 110 * seed)
        paths[identity] = path
    return paths
