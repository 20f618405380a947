"""Video probing, frame iteration and writing through PyAV.

Frames are (H, W, 3) uint8 RGB, rotated upright according to the container's display
matrix, so a phone video recorded sideways comes out the way a player shows it.
Frame numbers count decoded frames from the start of the stream (0-based) and are
derived from timestamps, so iteration can start at any frame (segments) after a seek.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import BinaryIO

import av
import numpy as np

from ops.types import Frame, VideoInfo

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv")


def _rotation_of(frame: av.VideoFrame) -> int:
    """Clockwise degrees to turn a decoded frame upright (0, 90, 180 or 270)."""
    ccw = int(round(getattr(frame, "rotation", 0) or 0))
    return (-ccw) % 360


def rotate_frame(frame: Frame, clockwise_deg: int) -> Frame:
    """Rotate an (H, W, 3) frame clockwise by a multiple of 90 degrees."""
    if clockwise_deg % 360 == 0:
        return frame
    return np.ascontiguousarray(np.rot90(frame, k=-(clockwise_deg // 90)))


def _open_video_stream(container: av.container.InputContainer, path: str) -> av.video.VideoStream:
    if not container.streams.video:
        raise ValueError(f"{path}: no video stream (an empty or audio-only container)")
    return container.streams.video[0]


def _fps_of(stream: av.video.VideoStream, path: str) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or float(rate) <= 0:
        raise ValueError(f"{path}: video stream has no frame rate")
    return float(rate)


Source = str | BinaryIO  # a local path, or a seekable binary stream (object-store file)


def _name(source: Source) -> str:
    return source if isinstance(source, str) else str(getattr(source, "name", "<stream>"))


def open_container(source: Source) -> av.container.InputContainer:
    """Open a media file for reading; a file FFmpeg cannot parse raises ValueError naming it."""
    path = _name(source)
    try:
        return av.open(source)
    except av.error.InvalidDataError as exc:
        raise ValueError(
            f"{path}: not a readable video (truncated, corrupt or not a video file)"
        ) from exc


def probe_video(source: Source) -> VideoInfo:
    """Read a video's header and its first frame; raise ValueError if it has no frames.

    Args:
        source: a local file path or a seekable binary stream.
    Returns:
        VideoInfo with the displayed (rotated) size.
    """
    path = _name(source)
    container = open_container(source)
    with container:
        stream = _open_video_stream(container, path)
        fps = _fps_of(stream, path)
        duration_s = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        frame_count = stream.frames or int(round(duration_s * fps))
        first = next(container.decode(stream), None)
        if first is None:
            raise ValueError(f"{path}: video has zero decodable frames")
        rotation = _rotation_of(first)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=fps,
            frame_count=max(frame_count, 1),
            duration_s=duration_s,
            codec=stream.codec_context.name,
            rotation=rotation,
            has_audio=bool(container.streams.audio),
        )


def every_n_for_fps(video_fps: float, target_fps: float | None, every_n: int) -> int:
    """Frame stride for sampling: `every_n`, or the stride that gives about `target_fps`."""
    if target_fps is None:
        return max(1, every_n)
    return max(1, int(round(video_fps / target_fps)))


def iter_frames(
    source: Source,
    start: int = 0,
    stop: int | None = None,
    every_n: int = 1,
    threads: int = 1,
) -> Iterator[tuple[int, float, Frame]]:
    """Yield (frame_index, time_s, frame) for frames start, start+every_n, ... < stop.

    Seeks to the keyframe before `start` and decodes forward, so a segment in the middle
    of a long video costs about one GOP of extra decoding. Frames are upright RGB uint8.

    Args:
        source: a local file path or a seekable binary stream.
        start, stop: frame range [start, stop); stop None means to the end.
        every_n: keep frames whose index is a multiple of every_n.
        threads: decoder threads (use the CPUs the caller owns; 0 = FFmpeg's default).
    """
    if every_n < 1:
        raise ValueError(f"every_n must be >= 1, got {every_n}")
    path = _name(source)
    with open_container(source) as container:
        stream = _open_video_stream(container, path)
        stream.thread_type = "AUTO"
        if threads > 0:  # 0 keeps FFmpeg's default (one thread per core)
            stream.codec_context.thread_count = threads
        fps = _fps_of(stream, path)
        time_base = float(stream.time_base)
        origin = stream.start_time or 0
        if start > 0:
            target = origin + int(math.floor((start / fps) / time_base))
            container.seek(target, stream=stream, backward=True, any_frame=False)
        counter = None  # fall back to counting when timestamps are missing
        for frame in container.decode(stream):
            if frame.pts is not None:
                index = int(round((frame.pts - origin) * time_base * fps))
            else:
                counter = 0 if counter is None else counter + 1
                index = counter
            if index < start:
                continue
            if stop is not None and index >= stop:
                break
            if index % every_n:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            yield index, index / fps, rotate_frame(rgb, _rotation_of(frame))


def write_video(frames: list[Frame] | Iterator[Frame], path: str, fps: float, crf: int = 18) -> int:
    """Encode RGB frames to H.264 (yuv420p) in an MP4; return the number of frames written.

    Odd sizes are padded by one pixel on the right/bottom, as yuv420p needs even sizes.
    """
    count = 0
    with av.open(path, mode="w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                height, width = frame.shape[:2]
                stream = container.add_stream("libx264", rate=_fraction(fps))
                stream.width, stream.height = width + width % 2, height + height % 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "veryfast"}
            padded = _pad_even(frame)
            for packet in stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
                container.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return count


def _fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def _pad_even(frame: Frame) -> Frame:
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
