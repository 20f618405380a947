"""Segment writer and packet-level join: frame count, rate, size, audio, metadata, seams."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ops.video import iter_frames, probe_video
from ops.video_out import SegmentWriter, frame_rate_of, join_segments
from tests.media_tags import read_metadata


def _frames(path: str) -> list[np.ndarray]:
    return [frame for _, _, frame in iter_frames(path)]


def _write(path: str, frames: list[np.ndarray], fps: Fraction, crf: int) -> None:
    height, width = frames[0].shape[:2]
    with SegmentWriter(path, fps, width, height, crf) as writer:
        for frame in frames:
            writer.write(frame)


def test_join_keeps_frames_rate_size_audio_and_metadata(sample_clips, tmp_path) -> None:
    source = str(sample_clips["a"])
    fps, frames = frame_rate_of(source), _frames(source)
    parts = []
    for i, (start, stop) in enumerate([(0, 5), (5, len(frames))]):
        part = str(tmp_path / f"part{i}.mp4")
        _write(part, frames[start:stop], fps, crf=18)
        parts.append((part, start))
    out = str(tmp_path / "joined.mp4")
    count = join_segments(parts, fps, out, source, {"comment": "synthetic", "synthetic": "true"})
    info, source_info = probe_video(out), probe_video(source)
    assert count == len(frames) == len(_frames(out))
    assert (info.width, info.height) == (source_info.width, source_info.height)
    assert info.fps == source_info.fps
    assert info.has_audio and source_info.has_audio
    assert read_metadata(out)["synthetic"] == "true"


def test_two_segment_join_equals_one_segment_lossless(sample_clips, tmp_path) -> None:
    source = str(sample_clips["b"])
    fps, frames = frame_rate_of(source), _frames(source)
    _write(str(tmp_path / "one.mp4"), frames, fps, crf=0)
    _write(str(tmp_path / "p0.mp4"), frames[:7], fps, crf=0)
    _write(str(tmp_path / "p1.mp4"), frames[7:], fps, crf=0)
    join_segments([(str(tmp_path / "one.mp4"), 0)], fps, str(tmp_path / "a.mp4"))
    parts = [(str(tmp_path / "p0.mp4"), 0), (str(tmp_path / "p1.mp4"), 7)]
    join_segments(parts, fps, str(tmp_path / "b.mp4"))
    one, two = _frames(str(tmp_path / "a.mp4")), _frames(str(tmp_path / "b.mp4"))
    assert len(one) == len(two) == len(frames)
    assert all(np.array_equal(x, y) for x, y in zip(one, two, strict=True))


def test_segment_writer_pads_odd_sizes(tmp_path) -> None:
    path = str(tmp_path / "odd.mp4")
    frame = np.full((31, 45, 3), 100, np.uint8)
    _write(path, [frame] * 3, Fraction(30000, 1001), crf=18)
    info = probe_video(path)
    assert (info.width, info.height) == (46, 32)
    assert abs(info.fps - 29.97) < 0.01
