import av
import numpy as np
import pytest

from ops.samples import animate, portrait, write_clip
from ops.video import (
    every_n_for_fps,
    frame_timestamps,
    iter_frames,
    probe_video,
    split_frames,
    write_video,
)
from tests.vfr_clip import read_stamp, write_vfr_clip


def _numbered_clip(path: str, frames: int = 30, fps: int = 25) -> list[np.ndarray]:
    """A clip whose frames carry their index as a flat grey level (robust to H.264)."""
    clip = [np.full((64, 64, 3), 8 * i % 256, np.uint8) for i in range(frames)]
    write_video(clip, path, fps)
    return clip


def test_probe_video_reads_size_fps_and_count(tmp_path):
    path = str(tmp_path / "c.mp4")
    _numbered_clip(path, 30, 25)
    info = probe_video(path)
    assert (info.width, info.height, info.fps, info.frame_count) == (64, 64, 25.0, 30)
    assert info.rotation == 0 and not info.has_audio


def test_probe_video_records_the_exact_frame_rate(tmp_path):
    """The rate segment rows carry: exact (30000/1001), equal to the reader of outputs."""
    from fractions import Fraction

    from ops.video_out import frame_rate_of

    path = str(tmp_path / "ntsc.mp4")
    write_video([np.zeros((64, 64, 3), np.uint8)] * 6, path, Fraction(30000, 1001))
    info = probe_video(path)
    assert Fraction(info.frame_rate) == Fraction(30000, 1001) == frame_rate_of(path)
    assert info.fps == pytest.approx(29.97, abs=1e-3)


def test_iter_frames_can_start_at_any_frame(tmp_path):
    path = str(tmp_path / "c.mp4")
    _numbered_clip(path, 30)
    whole = list(iter_frames(path))
    assert [i for i, _, _ in whole] == list(range(30))
    part = list(iter_frames(path, start=13, stop=21))
    assert [i for i, _, _ in part] == list(range(13, 21))
    for (index, _, frame), (_, _, reference) in zip(part, whole[13:21], strict=True):
        assert np.array_equal(frame, reference), index


def test_iter_frames_every_n_keeps_the_global_phase(tmp_path):
    path = str(tmp_path / "c.mp4")
    _numbered_clip(path, 30)
    assert [i for i, _, _ in iter_frames(path, start=7, stop=20, every_n=5)] == [10, 15]
    assert [round(t, 3) for _, t, _ in iter_frames(path, stop=10, every_n=5)] == [0.0, 0.2]


def _vfr_clip(path: str, frames: int = 40) -> list[float]:
    return write_vfr_clip([np.full((64, 64, 3), 128, np.uint8)] * frames, path)


def test_iter_frames_numbers_vfr_frames_in_display_order(tmp_path):
    path = str(tmp_path / "vfr.mp4")
    times = _vfr_clip(path, 60)
    frames = list(iter_frames(path))
    assert [i for i, _, _ in frames] == list(range(60))  # unique and gapless
    assert [read_stamp(frame) for _, _, frame in frames] == list(range(60))
    assert [t for _, t, _ in frames] == pytest.approx(times, abs=1e-9)  # time_s from pts
    assert len(frame_timestamps(path)) == 60


def test_split_frames_seek_points_land_on_the_planned_frame_of_a_vfr_clip(tmp_path):
    path = str(tmp_path / "vfr.mp4")
    _vfr_clip(path, 40)
    ranges = split_frames(path, probe_video(path).frame_count, 16, context=3)
    assert [(r.start, r.stop, r.seek_frame) for r in ranges] == [
        (0, 16, 0),
        (16, 32, 13),
        (32, -1, 29),
    ]
    read = []
    for r in ranges:
        stop = None if r.stop < 0 else r.stop
        part = list(iter_frames(path, r.start, stop, seek=r.seek))
        assert [read_stamp(frame) for _, _, frame in part] == [i for i, _, _ in part]
        read += [i for i, _, _ in part]
    assert read == list(range(40))
    for start in (1, 7, 23, 39):  # no seek point: found from the packets
        part = list(iter_frames(path, start, start + 2))
        assert [i for i, _, _ in part] == list(range(start, min(start + 2, 40)))
        assert read_stamp(part[0][2]) == start


def test_iter_frames_honours_rotation_metadata(tmp_path):
    path = str(tmp_path / "rot.mp4")
    frames = [np.ascontiguousarray(animate(portrait("a"), i, 128)[:, :96]) for i in range(3)]
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 128, "yuv420p"
        stream.set_display_rotation(90)  # counter-clockwise, as a phone writes it
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe_video(path)
    assert (info.width, info.height) == (128, 96)
    _, _, upright = next(iter_frames(path))
    assert upright.shape == (96, 128, 3)
    expected = np.rot90(frames[0], 1)
    assert np.abs(upright.astype(int) - expected).mean() < 10


def test_probe_video_names_the_file_when_it_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    with pytest.raises(ValueError, match="notes.mp4: not a readable video"):
        probe_video(str(path))


def test_write_clip_carries_an_audio_track(tmp_path):
    path = str(tmp_path / "a.mp4")
    write_clip([animate(portrait("a"), i, 64) for i in range(10)], path, fps=25)
    assert probe_video(path).has_audio


def test_every_n_for_fps():
    assert every_n_for_fps(30.0, None, 3) == 3
    assert every_n_for_fps(30.0, 5.0, 1) == 6
    assert every_n_for_fps(25.0, 100.0, 1) == 1
