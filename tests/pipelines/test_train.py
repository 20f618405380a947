"""Train end to end on one shared local Ray: 2 gloo workers, resume, worker failure, bad input."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ops.checkpoint import load_checkpoint, save_checkpoint
from ops.model import ModelConfig, SwapAutoencoder
from pipelines.config import TrainConfig
from pipelines.train.driver import NonFiniteLossError, prepare_train, run_train
from pipelines.train.worker import FAIL_MARKER
from tests.pipelines.faces_data import write_faces

FACES = 16


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Faces of a and b; b's last 2 rows hold corrupt image bytes."""
    root = tmp_path_factory.mktemp("faces")
    return write_faces(root / "a", "a", FACES), write_faces(
        root / "b", "b", FACES, seed=1, corrupt=2
    )


def tiny_config(faces, out, **overrides) -> TrainConfig:
    fields = dict(
        a=str(faces[0]),
        b=str(faces[1]),
        out=str(out),
        workers=2,
        batch_size=4,
        steps=4,
        save_every=2,
        log_every=1,
        model="original",
        width=4,
        latent_dim=16,
        preview_faces=2,
        max_failures=1,
        holdout_videos=0,  # every face trains (held-out scoring: test_train_holdout.py, ops)
    )
    fields.update(overrides)
    return TrainConfig(**fields)


# liae with the dfl loss, warm-up, cosine decay, a warp-off phase and a weight average; the
# model sees a centre region of the faces' 1.5 crops (coverage 1.2), and render will too
RECIPE = dict(
    width=32,
    latent_dim=None,
    model="liae",
    encoder_dims=4,
    decoder_dims=4,
    mask_dims=2,
    loss="dfl",
    warmup_steps=2,
    lr_decay="cosine",
    warp_off_share=0.5,
    ema_decay=0.9,
    coverage=1.2,
)


@pytest.fixture(scope="module")
def first_run(ray_local, faces, tmp_path_factory):
    """2 DDP ranks with bf16 autocast on CPU (the mixed-precision loop of --gpu, stood in),
    training the recipe above."""
    out = tmp_path_factory.mktemp("run") / "out"
    cfg = tiny_config(faces, out, precision="bf16", **RECIPE)
    return cfg, run_train(cfg)


@pytest.mark.ray
def test_run_train_two_workers_write_checkpoint_with_equal_weights(first_run):
    cfg, summary = first_run
    assert summary.step == 4 and summary.resumed_from == summary.started_from == 0
    assert len(summary.weight_hashes) == 2 and len(set(summary.weight_hashes)) == 1
    assert summary.faces["a"].decoded == FACES
    assert summary.faces["b"].decoded == FACES - 2 and summary.faces["b"].skipped == 2
    assert summary.feed["cached"]  # a few faces: held on the device, not streamed
    loaded = load_checkpoint(summary.checkpoint)
    assert loaded.step == 4 and loaded.coverage == pytest.approx(1.2) and loaded.size == 64
    assert loaded.model_config.resolution == 64 and loaded.model_config.model == "liae"
    assert loaded.ema  # the weight average is what loads
    files = sorted(p.name for p in Path(summary.checkpoint).iterdir())
    assert files == ["config.json", "ema.pt", "model.pt", "optimizer.pt", "preview.png"]
    assert (Path(cfg.out) / "preview.png").exists()
    lines = [json.loads(line) for line in open(f"{cfg.out}/metrics.jsonl")]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    assert {"loss_a", "loss_b", "images_per_s"} <= set(lines[-1])
    # the phases: warm-up to --lr by step 2, then decaying; random warp off for the last half
    assert lines[0]["lr"] < lines[1]["lr"] == pytest.approx(cfg.lr) and lines[3]["lr"] < cfg.lr
    assert [line["warp"] for line in lines] == [True, True, False, False]


@pytest.mark.ray
def test_run_train_rerun_resumes_and_a_failed_worker_is_recovered(first_run):
    """Rerun to step 8 streaming the faces (no device cache): it resumes at 4, saves 6,
    rank 1 raises at 7, the retry resumes at 6."""
    cfg, _ = first_run
    rerun_started = time.time()
    summary = run_train(
        replace(cfg, steps=8, fail_at_step=7, device_cache_gb=0.0, precision="fp32")
    )
    assert not summary.feed["cached"]
    assert (Path(cfg.out) / FAIL_MARKER).read_text() == "7"  # the failure happened, once
    assert summary.resumed_from == 6 and summary.step == 8  # the retry began at checkpoint 6
    assert summary.started_from == 4  # where this command began
    assert len(set(summary.weight_hashes)) == 1
    assert load_checkpoint(cfg.out).step == 8
    lines = [json.loads(line) for line in open(f"{cfg.out}/metrics.jsonl")]
    assert [line["step"] for line in lines] == list(range(1, 9))
    # steps 1-4 are the first run's lines (kept because the rerun resumed at 4, not 0)
    assert all((line["time"] < rerun_started) == (line["step"] <= 4) for line in lines)


@pytest.mark.ray
def test_run_train_stops_at_a_non_finite_loss_without_checkpointing_it(ray_local, faces, tmp_path):
    """Rank 1's loss goes NaN at step 5: both ranks stop at the check at step 6, the error
    names step 5 and checkpoint 4, and no checkpoint after step 4 exists."""
    cfg = tiny_config(faces, tmp_path / "out", steps=8, save_every=2, log_every=3, nan_at_step=5)
    with pytest.raises(NonFiniteLossError, match=r"at step 5;.*checkpoint_00000004 \(step 4\)"):
        run_train(cfg)
    checkpoints = sorted(p.name for p in (tmp_path / "out" / "train").glob("checkpoint_0*"))
    assert checkpoints == ["checkpoint_00000002", "checkpoint_00000004"]
    loaded = load_checkpoint(str(tmp_path / "out"))
    assert loaded.step == 4
    assert all(torch.isfinite(t).all() for t in loaded.model.state_dict().values())
    lines = [json.loads(line) for line in open(tmp_path / "out" / "metrics.jsonl")]
    assert [line["step"] for line in lines] == [3]  # the window holding step 5 is not logged


def test_prepare_train_rejects_missing_empty_and_small_datasets(faces, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        prepare_train(tiny_config((tmp_path / "nope", faces[1]), tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="--a: no faces Parquet"):
        prepare_train(tiny_config((tmp_path / "empty", faces[1]), tmp_path / "out"))
    with pytest.raises(ValueError, match="--a: .* fewer than one batch"):
        prepare_train(tiny_config(faces, tmp_path / "out", batch_size=8))


def test_prepare_train_rejects_a_checkpoint_of_another_model(faces, tmp_path):
    other = ModelConfig(resolution=128, width=4, latent_dim=16)
    save_checkpoint(
        str(tmp_path / "out" / "train" / "checkpoint_00000002"), SwapAutoencoder(other), 2, 1.5, 64
    )
    with pytest.raises(ValueError, match="--out: .*resolution=128"):
        prepare_train(tiny_config(faces, tmp_path / "out"))


def test_progress_gets_every_metrics_line_once_and_waits_for_a_whole_line(tmp_path):
    from pipelines.train.driver import _show_new

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 10}\n{"step": 20}\n{"step": 3')  # the last one is being written
    seen: list[int] = []
    shown = _show_new(str(path), lambda m: seen.append(m["step"]), 0)
    assert seen == [10, 20] and shown == 2
    path.write_text('{"step": 10}\n{"step": 20}\n{"step": 30}\n{"step": 40}\n')
    _show_new(str(path), lambda m: seen.append(m["step"]), shown)
    assert seen == [10, 20, 30, 40]  # none skipped, none twice
