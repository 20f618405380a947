"""Render reliability: resume, a pinned checkpoint, a killed worker, faceless outputs.

Every run is compared with one uninterrupted run of the same command (`clean`): the
x264 encode is deterministic, so the output files must be equal byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ops import schema
from ops.samples import make_sample_clips, write_clip
from ops.video import iter_frames
from pipelines.config import RenderConfig
from pipelines.render.driver import prepare_render, run_render
from pipelines.segments import FAIL_MARKER
from tests.media_tags import read_metadata


def _save(path: Path, step: int, seed: int) -> str:
    """An untrained tiny model saved as a checkpoint; another seed gives other weights."""
    import torch

    from ops.checkpoint import save_checkpoint
    from ops.model import ModelConfig, SwapAutoencoder

    torch.manual_seed(seed)
    model = SwapAutoencoder(ModelConfig(resolution=64, width=8, latent_dim=32))
    return save_checkpoint(str(path), model, step=step, coverage=1.5, size=128)


@pytest.fixture(scope="module")
def training(tmp_path_factory) -> str:
    """A training output folder with one checkpoint (step 10)."""
    folder = tmp_path_factory.mktemp("run")
    _save(folder / "checkpoint_000010", step=10, seed=0)
    return str(folder)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("resume_clips")
    paths = make_sample_clips(str(folder), frames=40, size=128)
    faceless = str(folder / "faceless.mp4")
    write_clip([np.full((96, 128, 3), 40 + 5 * i, np.uint8) for i in range(10)], faceless)
    return {"a": paths["a"], "faceless": faceless}


def _cfg(checkpoint: str, clips: dict[str, str], out: Path, **fields) -> RenderConfig:
    inputs = (clips["a"], clips["faceless"])
    return RenderConfig(checkpoint, inputs, str(out), segment_frames=16, workers=2, **fields)


def _manifest(out: Path) -> dict[str, dict]:
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    return {Path(r[schema.VIDEO]).name: r for r in rows}


def _comparable(rows: dict[str, dict]) -> dict[str, dict]:
    """Manifest rows of two runs into two folders: the output's name, no timing."""
    same = {schema.SECONDS: None, schema.CHECKPOINT: None}  # checkpoint: asserted apart
    return {
        name: {**row, **same, schema.OUTPUT: Path(row[schema.OUTPUT]).name}
        for name, row in rows.items()
    }


@pytest.fixture(scope="module")
def clean(ray_local, training, clips, tmp_path_factory) -> Path:
    """One uninterrupted run: a video with a face (3 segments) and a faceless one."""
    out = tmp_path_factory.mktemp("clean")
    summary = run_render(_cfg(training, clips, out))
    assert summary.n_failed == 0
    return out


@pytest.mark.ray
def test_rerun_resumes_where_an_interrupted_run_stopped(training, clips, clean, tmp_path):
    out = tmp_path / "out"
    cfg = _cfg(training, clips, out)
    run_render(replace(cfg, inputs=(clips["faceless"],)))  # one video is finished first

    def interrupt(report: dict, totals: dict) -> None:  # Ctrl-C once a segment is rendered
        if report["video"] == clips["a"] and not report["status"]:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_render(cfg, on_progress=interrupt)
    assert not (out / "sample_a.mp4").exists() and list((out / "_parts").rglob("*.json"))

    summary = run_render(cfg)
    counts = summary.counts
    assert summary.n_failed == 0 and summary.n_skipped == counts.skipped_videos == 1
    assert counts.skipped_segments >= 1  # the segments rendered before the interrupt
    assert counts.segments + counts.skipped_segments == 3
    for name in ("sample_a.mp4", "faceless.mp4"):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
    assert _comparable(_manifest(out)) == _comparable(_manifest(clean))
    assert not (out / "_parts").exists()
    assert not list(out.glob("*.tmp-*"))


@pytest.mark.ray
def test_rerun_with_a_changed_setting_or_checkpoint_is_refused(training, clips, clean, tmp_path):
    cfg = _cfg(training, clips, clean)
    assert prepare_render(replace(cfg, workers=1)).checkpoint.step == 10  # not an output setting
    with pytest.raises(ValueError, match="--crf"):
        prepare_render(replace(cfg, crf=cfg.crf + 1))
    with pytest.raises(ValueError, match="--segment-frames"):
        prepare_render(replace(cfg, segment_frames=32))
    with pytest.raises(ValueError, match="--watermark-key") as refused:
        prepare_render(replace(cfg, watermark_key="another-secret"))
    assert "another-secret" not in str(refused.value)  # a key is never printed
    other = _save(tmp_path / "other", step=10, seed=1)
    with pytest.raises(ValueError, match="CHECKPOINT"):
        prepare_render(replace(cfg, checkpoint=other))


@pytest.mark.ray
def test_output_without_a_swapped_frame_claims_nothing(clips, clean):
    rows = _manifest(clean)
    faceless = rows["faceless.mp4"]
    assert faceless[schema.SWAPPED_FRAMES] == 0 and faceless[schema.FRAMES] == 10
    tags = read_metadata(faceless[schema.OUTPUT])
    assert tags["synthetic"] == "false" and "SYNTHETIC" not in tags["comment"]
    source = [frame for _, _, frame in iter_frames(clips["faceless"])]
    output = [frame for _, _, frame in iter_frames(faceless[schema.OUTPUT])]
    diffs = [np.abs(a.astype(int) - b).max() for a, b in zip(source, output, strict=True)]
    assert max(diffs) <= 4  # re-encoded, no label
    assert read_metadata(rows["sample_a.mp4"][schema.OUTPUT])["synthetic"] == "true"


@pytest.mark.ray
def test_killed_worker_restarts_on_the_pinned_checkpoint(clips, clean, tmp_path):
    """Training writes a newer checkpoint while a render runs, and a worker dies mid-segment.

    Ray restarts the worker, which loads the checkpoint the driver pinned (not the newest),
    and renders the segment again: each segment reported once, outputs equal a clean run's.
    """
    run = tmp_path / "run"
    pinned = _save(run / "checkpoint_000010", step=10, seed=0)  # the one `clean` used
    out = tmp_path / "out"
    cfg = _cfg(str(run), clips, out, fail_at_frame=20)  # frame 20: in sample_a's segment 16..31
    plan = prepare_render(cfg)
    _save(run / "checkpoint_000020", step=20, seed=1)  # other weights, written meanwhile
    summary = run_render(cfg, plan)

    assert (out / FAIL_MARKER).read_text() == "20"  # a worker did die there
    assert summary.n_failed == 0 and summary.counts.segments == 4  # each reported once
    rows = _manifest(out)
    assert len(rows) == 2 and rows["sample_a.mp4"][schema.FRAMES] == 40
    for name in ("sample_a.mp4", "faceless.mp4"):
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
    checkpoints = {(r[schema.CHECKPOINT], r[schema.CHECKPOINT_STEP]) for r in rows.values()}
    assert checkpoints == {(pinned, 10)}
    config = json.loads((out / "_config.json").read_text())
    assert config["checkpoint"] == {"path": pinned, "step": 10}
    assert prepare_render(cfg).checkpoint.path == pinned  # a rerun keeps it, too
    assert _comparable(rows) == _comparable(_manifest(clean))


@pytest.mark.ray
def test_rerun_with_nothing_left_finishes_without_ray_or_actors(
    training, clips, clean, tmp_path, monkeypatch
):
    """A rerun of a finished render writes the same manifest and starts nothing."""
    import shutil

    from pipelines.runtime import ray_setup

    out = tmp_path / "again"
    shutil.copytree(clean, out)
    before = _manifest(out)

    def refuse(*_args, **_kwargs):
        raise AssertionError("a render with nothing left to do joined Ray")

    monkeypatch.setattr(ray_setup, "connect_ray", refuse)
    summary = run_render(_cfg(training, clips, out))
    assert summary.plan is None  # no actors were planned
    assert summary.n_failed == 0 and summary.n_skipped == summary.counts.skipped_videos == 2
    assert summary.counts.segments == 0
    after = _manifest(out)  # the same rows, with the outputs where they now are
    assert _comparable(after) == _comparable(before)
    assert all(Path(r[schema.OUTPUT]).parent == out for r in after.values())
    assert (out / "sample_a.mp4").read_bytes() == (clean / "sample_a.mp4").read_bytes()
