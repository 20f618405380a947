import av
import numpy as np
import pytest

from ops.samples import animate, portrait, write_clip
from ops.video import every_n_for_fps, iter_frames, probe_video, write_video


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
