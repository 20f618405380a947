"""Render: the Ray batch with bad inputs, segment seams, faceless frames, output properties."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ops import schema
from ops.samples import make_sample_clips, write_clip
from ops.video import iter_frames, probe_video
from ops.video_out import frame_rate_of, join_segments
from pipelines.config import RenderConfig
from pipelines.render.composite import Pending
from pipelines.render.driver import run_render
from pipelines.render.plan import (
    MIN_SEGMENT_FRAMES,
    output_name,
    output_names,
    plan_render_segments,
    segment_length,
    segments_per_video,
)
from pipelines.render.segment import SegmentRenderer
from tests.media_tags import read_metadata
from tests.vfr_clip import read_stamp, write_vfr_clip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """An untrained tiny model: enough to exercise every step of render."""
    import torch

    from ops.checkpoint import save_checkpoint
    from ops.model import ModelConfig, SwapAutoencoder

    torch.manual_seed(0)
    model = SwapAutoencoder(ModelConfig(resolution=64, width=8, latent_dim=32))
    path = str(tmp_path_factory.mktemp("ckpt") / "checkpoint")
    save_checkpoint(path, model, step=0, coverage=1.5, size=128)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("render_clips")
    paths = make_sample_clips(str(folder), frames=40, size=128)
    faceless = str(folder / "faceless.mp4")
    write_clip([np.full((96, 128, 3), 40 + 5 * i, np.uint8) for i in range(10)], faceless)
    paths["faceless"] = faceless
    return paths


def _frames(path: str) -> list[np.ndarray]:
    return [frame for _, _, frame in iter_frames(path)]


def test_output_names_are_sanitised_and_stay_in_out() -> None:
    assert output_name("/x/../../etc/pass wd!.mov") == "pass_wd.mp4"
    assert output_name("s3://b/clips/!!!.mp4") == "video.mp4"
    assert "/" not in output_name("/a/b/c d/é.mp4")
    from ops.sources import VideoSource

    names = output_names([VideoSource("/a/clip.mp4", "x"), VideoSource("/b/clip.mp4", "x")])
    assert len(set(names.values())) == 2


@pytest.mark.ray
def test_run_render_batch_with_bad_inputs(ray_local, checkpoint, clips, tmp_path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video" * 100)
    odd_name = tmp_path / "my clip (1).mp4"
    shutil.copy(clips["b"], odd_name)
    out = tmp_path / "out"
    inputs = (clips["a"], str(odd_name), clips["faceless"], str(corrupt), str(tmp_path / "no.mp4"))
    cfg = RenderConfig(checkpoint, inputs, str(out), segment_frames=16, workers=2)
    summary = run_render(cfg)
    rows = {Path(r["video"]).name: r for r in pq.read_table(out / "manifest.parquet").to_pylist()}
    assert len(rows) == 5 and summary.n_ok == 3 and summary.n_failed == 2
    assert "FileNotFoundError" in rows["no.mp4"][schema.ERROR]
    assert "ValueError" in rows["corrupt.mp4"][schema.ERROR]
    assert rows["faceless.mp4"][schema.SWAPPED_FRAMES] == 0
    assert rows["faceless.mp4"][schema.FACES_MISSED] == 10
    # the same contract as extract's: one errors-dataset row per failed item, naming it
    errors = pq.read_table(out / "errors").to_pylist()
    assert sorted(Path(e[schema.VIDEO]).name for e in errors) == ["corrupt.mp4", "no.mp4"]
    assert {e[schema.STAGE] for e in errors} == {"probe"}
    assert all(Path(e[schema.VIDEO]).name in e[schema.ERROR] for e in errors)
    assert errors[0][schema.ERROR] in rows[Path(errors[0][schema.VIDEO]).name][schema.ERROR]
    for name in ("sample_a.mp4", "my clip (1).mp4"):
        row = rows[name]
        assert row[schema.ERROR] is None and row[schema.SWAPPED_FRAMES] > 30
        source, output = probe_video(row[schema.VIDEO]), probe_video(row[schema.OUTPUT])
        assert Path(row[schema.OUTPUT]).parent == out
        assert row[schema.FRAMES] == len(_frames(row[schema.OUTPUT])) == 40
        assert (output.width, output.height, output.fps) == (128, 128, source.fps)
        assert output.has_audio and source.has_audio
        assert read_metadata(row[schema.OUTPUT])["synthetic"] == "true"
    assert not (out / "_parts").exists()
    assert not list(out.glob("*.tmp-*"))
    assert (summary.plan.workers, summary.plan.cpus_each) == (2, 1.0)
    assert summary.plan.gpus_each == 0.0
    assert json.loads((out / "_config.json").read_text())["segments_per_video"] == 1


def test_few_videos_are_split_finer_so_every_actor_has_work(clips, tmp_path) -> None:
    """One 40-frame clip, 900-frame segments, 2 actors: two segments, not one."""
    row = {"video": clips["a"], "output": "a.mp4"}
    plain = plan_render_segments(row, 900, str(tmp_path))
    split = plan_render_segments(row, 900, str(tmp_path), per_video=segments_per_video(1, 2))
    assert [(r["start"], r["stop"]) for r in plain] == [(0, -1)]
    assert [(r["start"], r["stop"]) for r in split] == [(0, 30), (30, -1)]
    assert segments_per_video(videos=40, workers=15) == 1  # many clips spread as they are
    assert segments_per_video(videos=2, workers=15) == 8
    assert segment_length(3600, 900, per_video=8) == 450
    assert segment_length(100, 900, per_video=15) == MIN_SEGMENT_FRAMES


def test_two_segment_render_equals_one_segment(checkpoint, clips, tmp_path) -> None:
    """Pixels before encoding are equal, so at CRF 0 the decoded frames are identical."""
    cfg = RenderConfig(checkpoint, ("x",), str(tmp_path), crf=0, smooth_frames=3)
    renderer = SegmentRenderer(cfg)
    source = clips["a"]
    fps = frame_rate_of(source)
    one, p0, p1 = (str(tmp_path / n) for n in ("one.mp4", "p0.mp4", "p1.mp4"))
    assert renderer.render(source, 0, None, one, fps).frames == 40
    assert renderer.render(source, 0, 17, p0, fps).frames == 17
    assert renderer.render(source, 17, None, p1, fps).frames == 23
    join_segments([(one, 0)], fps, str(tmp_path / "a.mp4"))
    join_segments([(p0, 0), (p1, 17)], fps, str(tmp_path / "b.mp4"))
    single, split = _frames(str(tmp_path / "a.mp4")), _frames(str(tmp_path / "b.mp4"))
    assert len(single) == len(split) == 40
    diffs = [int(np.abs(a.astype(int) - b).max()) for a, b in zip(single, split, strict=True)]
    assert max(diffs) == 0, diffs


def test_faceless_frames_pass_through_unchanged(checkpoint, clips, tmp_path) -> None:
    cfg = RenderConfig(checkpoint, ("x",), str(tmp_path))
    renderer = SegmentRenderer(cfg)
    frames = _frames(clips["faceless"])
    out = renderer.compositor.composite([Pending(i, f, []) for i, f in enumerate(frames)])
    assert all(np.array_equal(a, b) for a, b in zip(frames, out, strict=True))
    counts = renderer.render(
        clips["faceless"], 0, None, str(tmp_path / "f.mp4"), frame_rate_of(clips["faceless"])
    )
    assert counts.frames == 10 and counts.swapped_frames == 0 and counts.faces_missed == 10


@pytest.mark.ray
def test_run_render_vfr_clip_in_segments_keeps_every_frame(ray_local, checkpoint, tmp_path) -> None:
    from ops.samples import animate, portrait

    clip = str(tmp_path / "phone.mp4")
    write_vfr_clip([animate(portrait("a"), i, 128) for i in range(40)], clip)
    cfg = RenderConfig(checkpoint, (clip,), str(tmp_path / "out"), segment_frames=16, workers=2)
    summary = run_render(cfg)
    (row,) = pq.read_table(tmp_path / "out" / "manifest.parquet").to_pylist()
    assert summary.counts.segments == 3 and row[schema.ERROR] is None
    frames = _frames(row[schema.OUTPUT])
    assert row[schema.FRAMES] == len(frames) == 40
    assert [read_stamp(frame) for frame in frames] == list(range(40))  # in order, none twice
