"""Streaming H.264 output: segment writers, a packet-level join, audio carry-over, metadata.

Render writes a long video as segments in parallel. Each segment is an H.264 MP4 of exactly
its frames (video only), encoded with the same settings, so every segment has the same
SPS/PPS and starts on an IDR frame. `join_segments` then remuxes their packets in order into
one MP4 (no re-encode, so no generation loss and no seam from the join itself), copies the
source's audio track (or re-encodes it to AAC when MP4 cannot carry its codec) and writes
the provenance metadata. Timestamps are frame numbers at the source's exact frame rate.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from fractions import Fraction
from types import TracebackType

import av
import numpy as np

from ops.types import Frame

# Audio codecs an MP4 can carry as they are; anything else is re-encoded to AAC.
MP4_AUDIO_COPY = ("aac", "mp3", "mp3float", "ac3", "eac3", "alac")
X264_PRESET = "veryfast"


def stream_frame_rate(stream: av.video.VideoStream, path: str) -> Fraction:
    """The exact frame rate of an open video stream; ValueError naming `path` if it has none."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise ValueError(f"{path}: video stream has no frame rate")
    return Fraction(rate)


def frame_rate_of(path: str) -> Fraction:
    """The exact frame rate of a file's first video stream (e.g. 30000/1001)."""
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        return stream_frame_rate(container.streams.video[0], path).limit_denominator(100000)


def even_size(width: int, height: int) -> tuple[int, int]:
    """The encoded size: yuv420p needs even sides, so odd ones grow by one pixel."""
    return width + width % 2, height + height % 2


def pad_even(frame: Frame) -> Frame:
    """An (H, W, 3) frame grown to `even_size` by repeating its last row and column."""
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


class SegmentWriter:
    """Encode RGB frames to an H.264 MP4 (video only), one frame at a time.

    Args:
        path: local output file.
        fps: exact frame rate; frame i gets pts i in a 1/fps time base.
        width, height: frame size in px (odd sides are padded by edge replication).
        crf: x264 quality (0 = lossless, 18 visually lossless, 28 small files).
    """

    def __init__(self, path: str, fps: Fraction, width: int, height: int, crf: int = 18) -> None:
        self.container = av.open(path, mode="w")
        self.stream = self.container.add_stream("libx264", rate=fps)
        self.stream.width, self.stream.height = even_size(width, height)
        self.stream.pix_fmt = "yuv420p"
        self.time_base = Fraction(1) / fps  # the muxer later changes stream.time_base
        self.stream.time_base = self.time_base
        # fixed settings: every segment must produce identical SPS/PPS for the join
        self.stream.options = {"crf": str(crf), "preset": X264_PRESET}
        self.stream.codec_context.thread_count = 1
        self.size = (height, width)
        self.count = 0

    def write(self, frame: Frame) -> None:
        """Append one (H, W, 3) uint8 RGB frame of the writer's size."""
        if frame.shape[:2] != self.size or frame.dtype != np.uint8:
            raise ValueError(
                f"frame must be uint8 {self.size + (3,)}, got {frame.dtype} {frame.shape}"
            )
        video_frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(pad_even(frame)), format="rgb24"
        )
        video_frame.pts = self.count
        video_frame.time_base = self.time_base
        for packet in self.stream.encode(video_frame):
            self.container.mux(packet)
        self.count += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self.container is None:
            return
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        self.container = None

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _video_packets(path: str, fps: Fraction) -> Iterator[tuple[int, int, av.Packet]]:
    """(frame_pts, frame_dts, packet) of a segment file, timestamps in frames."""
    container = av.open(path)
    stream = container.streams.video[0]
    per_frame = Fraction(1) / fps
    for packet in container.demux(stream):
        if packet.size == 0 or packet.pts is None:
            continue
        pts = round(packet.pts * stream.time_base / per_frame)
        dts = round(packet.dts * stream.time_base / per_frame) if packet.dts is not None else pts
        yield pts, dts, packet
    container.close()


def _extradata(path: str) -> bytes:
    with av.open(path) as container:
        return bytes(container.streams.video[0].codec_context.extradata or b"")


def join_segments(
    segments: list[tuple[str, int]],
    fps: Fraction,
    out_path: str,
    audio_source: str | None = None,
    metadata: dict[str, str] | None = None,
) -> int:
    """Remux segment MP4s into one MP4 and add the source's audio; return the frame count.

    Args:
        segments: (segment file, first frame number) in order; each segment's frames are
            placed at first frame + its own frame number.
        fps: the exact frame rate all segments were written at.
        out_path: local output file (MP4).
        audio_source: a file whose first audio stream is carried over (copied, or re-encoded
            to AAC when MP4 cannot hold its codec); None or no audio stream: silent output.
        metadata: container tags (MP4 keeps any key with movflags use_metadata_tags).
    Raises:
        ValueError if the segments were encoded with different parameters.
    """
    if not segments:
        raise ValueError("join_segments needs at least one segment")
    first_extra = _extradata(segments[0][0])
    for path, _ in segments[1:]:
        if _extradata(path) != first_extra:
            raise ValueError(f"{path}: encoded with different parameters than the first segment")
    options = {"movflags": "+faststart+use_metadata_tags"}
    with av.open(out_path, mode="w", options=options) as output:
        output.metadata.update(metadata or {})
        with av.open(segments[0][0]) as template:
            video_out = output.add_stream_from_template(template.streams.video[0])
        video_out.time_base = Fraction(1) / fps
        audio = _AudioCarrier(audio_source, output) if audio_source else None
        output.start_encoding()  # writes the header; the muxer may change the time bases now
        counter = _Counter()
        video = _video_out_packets(segments, fps, video_out, counter)
        streams = [video] if audio is None else [video, audio.packets()]
        # interleave by time, so the muxer never buffers a whole track
        for _, packet in heapq.merge(*streams, key=lambda item: item[0]):
            output.mux(packet)
    return counter.frames


class _Counter:
    frames = 0


def _video_out_packets(
    segments: list[tuple[str, int]], fps: Fraction, stream: av.video.VideoStream, counter: _Counter
) -> Iterator[tuple[float, av.Packet]]:
    """The segments' packets, renumbered into one timeline: (decode time s, packet)."""
    last_dts = None
    for path, start in segments:
        for pts, dts, packet in _video_packets(path, fps):
            if last_dts is not None and dts + start <= last_dts:
                raise ValueError(f"{path}: decode timestamps overlap the previous segment")
            last_dts = dts + start
            scale = 1 / (fps * stream.time_base)  # stream ticks per frame
            packet.pts, packet.dts = round((pts + start) * scale), round((dts + start) * scale)
            packet.time_base = stream.time_base
            packet.stream = stream
            counter.frames += 1
            yield float((dts + start) / fps), packet


class _AudioCarrier:
    """The first audio stream of a source file, copied or re-encoded into `output`."""

    def __init__(self, path: str, output: av.container.OutputContainer) -> None:
        self.source = av.open(path)
        self.in_stream = self.source.streams.audio[0] if self.source.streams.audio else None
        self.out_stream = None
        self.copy = False
        if self.in_stream is None:
            return
        self.copy = self.in_stream.codec_context.name in MP4_AUDIO_COPY
        if self.copy:
            self.out_stream = output.add_stream_from_template(self.in_stream)
        else:
            rate = self.in_stream.codec_context.sample_rate or 44100
            self.out_stream = output.add_stream("aac", rate=rate)
            mono = self.in_stream.codec_context.layout.name == "mono"
            self.out_stream.codec_context.layout = "mono" if mono else "stereo"

    def packets(self) -> Iterator[tuple[float, av.Packet]]:
        """(decode time s, packet) of the audio track, ready to mux."""
        try:
            if self.in_stream is None:
                return
            yield from self._copied() if self.copy else self._encoded()
        finally:
            self.source.close()

    def _copied(self) -> Iterator[tuple[float, av.Packet]]:
        # keep sync with the video: its first frame becomes time 0 in the output
        video = self.source.streams.video[0] if self.source.streams.video else None
        video_start_s = float((video.start_time or 0) * video.time_base) if video else 0.0
        origin = round(video_start_s / self.in_stream.time_base)
        for packet in self.source.demux(self.in_stream):
            if packet.size == 0 or packet.dts is None or packet.dts < origin:
                continue  # audio from before the first video frame has no place
            packet.pts = None if packet.pts is None else packet.pts - origin
            packet.dts -= origin
            packet.stream = self.out_stream
            yield float(packet.dts * self.in_stream.time_base), packet

    def _encoded(self) -> Iterator[tuple[float, av.Packet]]:
        for frame in itertools.chain(self.source.decode(self.in_stream), [None]):
            if frame is not None:
                frame.pts = None
            for packet in self.out_stream.encode(frame):
                yield float((packet.dts or 0) * packet.time_base), packet
