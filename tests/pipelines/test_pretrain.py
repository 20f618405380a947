"""Pretrain on a pool of many identities, then fine-tune a pair from it with --init."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ops.checkpoint import find_latest_checkpoint, load_state, read_checkpoint_config
from ops.init_weights import REINITIALISED
from pipelines.config import PretrainConfig
from pipelines.train.driver import prepare_train, run_train
from pipelines.train.pool import inspect_pool
from pipelines.train.pretrain import prepare_pretrain, run_pretrain
from tests.pipelines.faces_data import write_faces
from tests.pipelines.test_train import tiny_config

DFL_SIZES = dict(model="df", encoder_dims=4, decoder_dims=4, mask_dims=2, latent_dim=16)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """Three people in one faces folder (as extract's OUT/faces): p1 has twice the faces."""
    root = tmp_path_factory.mktemp("pool")
    write_faces(root / "p1", "a", 24, seed=3, name="p1")
    write_faces(root / "p2", "b", 12, seed=4, name="p2")
    write_faces(root / "p3", "a", 12, seed=5, name="p3", corrupt=1)
    return root


def _pretrain_config(pool: Path, out: Path, **overrides) -> PretrainConfig:
    fields = dict(
        faces=(str(pool),),
        out=str(out),
        workers=2,
        batch_size=4,
        steps=4,
        save_every=2,
        log_every=1,
        preview_faces=2,
        ema_decay=0.0,  # --init then copies model.pt itself, which the tests compare with
        **DFL_SIZES,
    )
    return PretrainConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def pretrained(ray_local, pool, tmp_path_factory):
    cfg = _pretrain_config(pool, tmp_path_factory.mktemp("pretrain") / "out")
    return cfg, run_pretrain(cfg)


def test_the_pool_keeps_at_most_the_median_count_of_each_identity(pool, tmp_path):
    info = inspect_pool(_pretrain_config(pool, tmp_path / "out"))
    assert info.found == {"p1": 24, "p2": 12, "p3": 12}
    assert info.cap == 12 and info.kept == {"p1": 12, "p2": 12, "p3": 12}
    capped = inspect_pool(_pretrain_config(pool, tmp_path / "out", per_identity=5))
    assert capped.kept == {"p1": 5, "p2": 5, "p3": 5}
    with pytest.raises(ValueError, match="at least --min-identities 4"):
        inspect_pool(_pretrain_config(pool, tmp_path / "out", min_identities=4))
    with pytest.raises(ValueError, match="same Parquet file is given twice"):
        inspect_pool(_pretrain_config(pool, tmp_path / "out", faces=(str(pool), str(pool / "p1"))))
    with pytest.raises(ValueError, match="is for `rayswap train`"):
        _pretrain_config(pool, tmp_path / "out", init=str(tmp_path))


@pytest.mark.ray
def test_pretrain_trains_both_sides_on_the_balanced_pool(pretrained):
    cfg, summary = pretrained
    assert summary.step == 4 and len(set(summary.weight_hashes)) == 1  # 2 DDP ranks agree
    pool = summary.faces["pool"]
    assert pool.kept == {"p1": 12, "p2": 12, "p3": 12}
    assert pool.decoded == 12 + 12 + 11  # p3's corrupt image is skipped at decoding
    config = read_checkpoint_config(summary.checkpoint)
    assert config["pretrain"]["kept"] == pool.kept and config["pretrain"]["cap"] == 12
    assert config["model"]["model"] == "df"
    out = Path(cfg.out)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tags = _event_tags(out / "tensorboard")
    assert {"train/loss_a", "train/loss_b", "train/lr", "train/images_per_s"} <= tags
    assert "preview" in tags


@pytest.mark.ray
def test_train_init_copies_the_pretrained_parts_and_can_hold_the_encoder(
    pretrained, ray_local, tmp_path
):
    pre_cfg, pre = pretrained
    faces = (pre_cfg.faces[0] + "/p1", pre_cfg.faces[0] + "/p2")
    cfg = tiny_config(faces, tmp_path / "pair", init=pre_cfg.out, freeze_encoder_steps=4)
    cfg = replace(cfg, width=32, **DFL_SIZES)
    summary = run_train(cfg)
    assert summary.init["copied"] == ["encoder", "decoder_a", "decoder_b"]
    assert summary.init["reinitialised"] == list(REINITIALISED["df"]) == ["inter"]
    assert summary.init["path"] == pre.checkpoint and summary.init["pretrained"]
    start, end = load_state(pre.checkpoint, "model.pt"), load_state(summary.checkpoint, "model.pt")
    encoder = [key for key in start if key.startswith("encoder.")]
    assert encoder and all(torch.equal(start[key], end[key]) for key in encoder)  # held
    assert not all(torch.equal(start[k], end[k]) for k in start if k.startswith("decoder_a."))
    assert read_checkpoint_config(summary.checkpoint)["init"] == summary.init
    # a rerun resumes from its own checkpoint, --init not applied again; --max-train-s
    # stops it at a log step, with a checkpoint there
    budget = dict(steps=10_000, save_every=10_000, log_every=2, max_train_s=1.0)
    again = run_train(replace(cfg, freeze_encoder_steps=0, **budget))
    assert again.init is None and again.started_from == 4
    assert 6 <= again.step < 10_000 and again.step % 2 == 0
    assert find_latest_checkpoint(cfg.out).endswith(f"checkpoint_{again.step:08d}")


def test_train_init_of_another_model_is_refused_naming_init(pretrained, tmp_path):
    pre_cfg, _ = pretrained
    faces = (pre_cfg.faces[0] + "/p1", pre_cfg.faces[0] + "/p2")
    cfg = tiny_config(faces, tmp_path / "pair", init=pre_cfg.out)  # original, not df
    with pytest.raises(ValueError, match=r"^--init: .*model='df' \(expected 'original'\)"):
        prepare_train(cfg)
    wider = replace(cfg, width=32, **{**DFL_SIZES, "decoder_dims": 8})
    with pytest.raises(ValueError, match=r"^--init: .*decoder_dims=4 \(expected 8\)"):
        prepare_train(wider)
    with pytest.raises(ValueError, match="^--init: .*not a checkpoint"):
        prepare_train(replace(cfg, init=str(tmp_path)))


def test_prepare_pretrain_checks_the_pool_before_ray(pool, tmp_path, no_ray):
    info = prepare_pretrain(_pretrain_config(pool, tmp_path / "out"))
    assert set(info.found) == {"p1", "p2", "p3"}
    with pytest.raises(FileNotFoundError, match="FACES: faces dataset not found"):
        prepare_pretrain(_pretrain_config(pool, tmp_path / "out", faces=(str(tmp_path / "x"),)))


def _event_tags(folder: Path) -> set[str]:
    """The scalar and image tags in the TensorBoard event files under `folder`."""
    from tensorboardX.proto import event_pb2

    tags: set[str] = set()
    for path in folder.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        at = 0
        while at < len(data):  # TFRecord: length, crc, payload, crc
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            tags |= {value.tag for value in event.summary.value}
            at += 12 + length + 4
    return tags
