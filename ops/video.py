"""Video probing, frame iteration and writing through PyAV.

Frames are (H, W, 3) uint8 RGB, rotated upright according to the container's display
matrix, so a phone video recorded sideways comes out the way a player shows it.
Frame numbers count frames in display order from the first (0-based), never from
timestamps × frame rate: on variable-frame-rate video (most phone footage) that product
repeats some numbers and skips others. To start at a later frame (a segment), a reader
seeks to a known (frame number, pts) pair from `split_frames` and counts from there.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np

from ops.types import Frame, FrameRange, VideoInfo
from ops.video_out import SegmentWriter, stream_frame_rate

SEEK_RETRIES = 4  # keyframes to step back when a seek lands after the wanted frame
REWIND_TS = -(2**62)  # a seek target before any timestamp: back to the first frame
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
        rate = stream_frame_rate(stream, path).limit_denominator(100000)
        fps = float(rate)
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
            frame_rate=str(rate),
        )


def every_n_for_fps(video_fps: float, target_fps: float | None, every_n: int) -> int:
    """Frame stride for sampling: `every_n`, or the stride that gives about `target_fps`."""
    if target_fps is None:
        return max(1, every_n)
    return max(1, int(round(video_fps / target_fps)))


def _frame_packets(
    container: av.container.InputContainer, stream: av.video.VideoStream
) -> Iterator[tuple[int | None, int | None]]:
    """(pts, dts) of each packet that decodes to a shown frame, in decode order."""
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:  # flush packets, edit-list cuts
            continue
        yield packet.pts, packet.dts


def frame_timestamps(source: Source) -> list[int]:
    """Presentation timestamps of every frame, in display order (stream time-base ticks).

    Reads packets only (no decoding), so it costs one pass over the file's bytes. Entry i
    is the pts of frame i, the frame `iter_frames` numbers i; planners use it to give a
    segment the pts it seeks to. Returns [] if a packet has no timestamp.
    """
    path = _name(source)
    with open_container(source) as container:
        stream = _open_video_stream(container, path)
        timestamps = []
        for pts, _ in _frame_packets(container, stream):
            if pts is None:
                return []
            timestamps.append(pts)
    return sorted(timestamps)


def split_frames(
    source: Source, frame_count: int, segment_frames: int, context: int = 0
) -> list[FrameRange]:
    """Split a video into ranges of `segment_frames` frames, each with where to seek.

    A video of more than one segment gets its exact frame count and every seek point from
    `frame_timestamps` (one packet pass); a single segment needs neither.

    Args:
        frame_count: the header's count (`probe_video`); only decides whether to split.
        context: frames before each range that its reader also decodes (render's
            smoothing window), so the seek point is `context` frames before `start`.
    """
    if frame_count <= segment_frames:
        return [FrameRange(0, -1)]
    timestamps = frame_timestamps(source)
    count = len(timestamps) or frame_count
    starts = list(range(0, max(count, 1), segment_frames))
    ranges = []
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else -1  # the last runs to the end
        seek = max(0, start - context)
        if timestamps:
            ranges.append(FrameRange(start, stop, seek, timestamps[seek]))
        else:  # no timestamps: each reader counts from the first frame
            ranges.append(FrameRange(start, stop))
    return ranges


def _pts_of_frame(
    container: av.container.InputContainer, stream: av.video.VideoStream, index: int
) -> int | None:
    """The pts of frame `index` (display order), from packets read from the start.

    Packets come in decode order and a packet's pts is never below its dts, so once a
    packet's dts passes the index-th smallest pts seen so far, no later packet can come
    before it. None if the video is shorter or a packet has no timestamp.
    """
    smallest: list[int] = []  # max-heap (negated) of the index + 1 smallest pts
    for pts, dts in _frame_packets(container, stream):
        if pts is None:
            return None
        if len(smallest) <= index:
            heapq.heappush(smallest, -pts)
        elif pts < -smallest[0]:
            heapq.heapreplace(smallest, -pts)
        if len(smallest) > index and dts is not None and dts > -smallest[0]:
            break
    return -smallest[0] if len(smallest) > index else None


def _decode_from(
    container: av.container.InputContainer, stream: av.video.VideoStream, pts: int | None
) -> Iterator[av.VideoFrame]:
    """Decoded frames from a keyframe at or before `pts` (None: from the first frame).

    A seek lands on a keyframe whose decode time is at or before `pts`; with B-frames its
    display time can be later, and some containers (MPEG-TS) seek only roughly, so step
    back until the first frame is not after `pts`; in the end, start from the beginning.
    """
    target, step = pts, max(1, round(1 / float(stream.time_base)))  # 1 s, then doubling
    for _ in range(SEEK_RETRIES if pts is not None else 0):
        container.seek(target, stream=stream, backward=True, any_frame=False)
        frames = container.decode(stream)
        first = next(frames, None)
        if first is not None and (first.pts is None or first.pts <= pts):
            return itertools.chain([first], frames)
        # before the keyframe it landed on, or further back (MPEG-TS seeks only roughly)
        stamps = [] if first is None else [t for t in (first.pts, first.dts) if t is not None]
        target = min(stamps) - 1 if stamps and min(stamps) - 1 < target else target - step
        step *= 2
    container.seek(REWIND_TS, stream=stream, backward=True, any_frame=False)
    return container.decode(stream)


def _start_frames(
    container: av.container.InputContainer,
    stream: av.video.VideoStream,
    start: int,
    seek: tuple[int, int] | None,
) -> tuple[int, int | None, Iterator[av.VideoFrame]]:
    """(index before the first frame, pts to skip up to, decoded frames) for `iter_frames`."""
    if seek is None and start > 0:
        pts = _pts_of_frame(container, stream, start)
        seek = (start, pts) if pts is not None else (0, 0)
        if seek[0] == 0:  # the packet scan moved the reader: rewind it
            return -1, None, _decode_from(container, stream, None)
    if seek is None or seek[0] == 0:
        return -1, None, container.decode(stream)
    return seek[0] - 1, seek[1], _decode_from(container, stream, seek[1])


def iter_frames(
    source: Source,
    start: int = 0,
    stop: int | None = None,
    every_n: int = 1,
    threads: int = 1,
    seek: tuple[int, int] | None = None,
) -> Iterator[tuple[int, float, Frame]]:
    """Yield (frame_index, time_s, frame) for frames start, start+every_n, ... < stop.

    Frame indices count frames in display order from the first (0-based), so they are
    unique and gapless on variable-frame-rate video too; time_s is the frame's own
    timestamp (pts) from the start of the stream. Frames are upright RGB uint8.

    Args:
        source: a local file path or a seekable binary stream.
        start, stop: frame range [start, stop); stop None means to the end.
        every_n: keep frames whose index is a multiple of every_n.
        threads: decoder threads (use the CPUs the caller owns; 0 = FFmpeg's default).
        seek: (frame index, pts) of a frame at or before `start`, from `split_frames`:
            decoding seeks to the keyframe before it and counts from it, about one GOP of
            extra work. Without it, a `start` > 0 is found by reading packets from the
            beginning (cheap, but it grows with `start`).
    """
    if every_n < 1:
        raise ValueError(f"every_n must be >= 1, got {every_n}")
    if seek is not None and seek[0] > start:
        raise ValueError(f"seek frame {seek[0]} is after start {start}")
    path = _name(source)
    with open_container(source) as container:
        stream = _open_video_stream(container, path)
        stream.thread_type = "AUTO"
        if threads > 0:  # 0 keeps FFmpeg's default (one thread per core)
            stream.codec_context.thread_count = threads
        fps = float(stream_frame_rate(stream, path))
        time_base = float(stream.time_base)
        origin = stream.start_time or 0
        index, seek_pts, frames = _start_frames(container, stream, start, seek)
        for frame in frames:
            if seek_pts is not None and frame.pts is not None and frame.pts < seek_pts:
                continue  # decoded from the keyframe, before the seek point
            seek_pts = None  # from here on, every frame is the next index
            index += 1
            if index < start:
                continue
            if stop is not None and index >= stop:
                break
            if index % every_n:
                continue
            time_s = (frame.pts - origin) * time_base if frame.pts is not None else index / fps
            rgb = frame.to_ndarray(format="rgb24")
            yield index, time_s, rotate_frame(rgb, _rotation_of(frame))


def write_video(frames: Iterable[Frame], path: str, fps: float, crf: int = 18) -> int:
    """Encode RGB frames to an H.264 MP4 with `SegmentWriter`; return the number written.

    The size comes from the first frame (odd sides are padded by one pixel); `fps` is
    taken as the nearest fraction with a denominator up to 1001 (29.97 -> 2997/100). No
    frames: no file.
    """
    rate = Fraction(fps).limit_denominator(1001)
    writer = None
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                writer = SegmentWriter(path, rate, width, height, crf)
            writer.write(frame)
    finally:
        if writer is not None:
            writer.close()
    return 0 if writer is None else writer.count


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Lists of `size` consecutive items (the last may be shorter), e.g. frames for a batch."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
