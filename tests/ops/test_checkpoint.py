"""Checkpoints: round trip, latest-under-a-folder, and every kind of bad checkpoint."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from ops.checkpoint import (
    find_latest_checkpoint,
    load_checkpoint,
    load_state,
    read_checkpoint_config,
    save_checkpoint,
)
from ops.model import ModelConfig, SwapAutoencoder

TINY = ModelConfig(resolution=64, width=4, latent_dim=16)


def save_tiny(path, step=7, cfg=TINY):
    torch.manual_seed(step)
    model = SwapAutoencoder(cfg)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    model(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))[0].mean().backward()
    optimizer.step()
    save_checkpoint(
        str(path),
        model,
        step,
        coverage=1.5,
        size=128,
        optimizer=optimizer,
        train_config={"steps": 10},
        preview_png=b"\x89PNG",
    )
    return model


def test_save_checkpoint_round_trips_weights_and_settings(tmp_path):
    model = save_tiny(tmp_path / "ck")
    loaded = load_checkpoint(str(tmp_path / "ck"))
    assert loaded.step == 7 and loaded.coverage == 1.5 and loaded.size == 128
    assert loaded.model_config == TINY and not loaded.model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])
    assert "state" in load_state(str(tmp_path / "ck"), "optimizer.pt")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "config.json",
        "model.pt",
        "optimizer.pt",
        "preview.png",
    ]


def test_find_latest_checkpoint_picks_the_highest_step(tmp_path):
    save_tiny(tmp_path / "run" / "train" / "checkpoint_b", step=20)
    save_tiny(tmp_path / "run" / "train" / "checkpoint_c", step=10)
    assert find_latest_checkpoint(str(tmp_path / "run")).endswith("checkpoint_b")
    assert load_checkpoint(str(tmp_path / "run")).step == 20
    assert find_latest_checkpoint(str(tmp_path / "empty")) is None


def test_load_checkpoint_rejects_missing_corrupt_and_foreign(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        load_checkpoint(str(tmp_path / "empty"))
    save_tiny(tmp_path / "ck")
    (tmp_path / "ck" / "model.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(str(tmp_path / "ck"))
    (tmp_path / "ck" / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="model.pt is missing"):
        load_checkpoint(str(tmp_path / "ck"))
    save_tiny(tmp_path / "foreign")
    config = json.loads((tmp_path / "foreign" / "config.json").read_text())
    (tmp_path / "foreign" / "config.json").write_text(json.dumps({**config, "format": "x"}))
    with pytest.raises(ValueError, match="not a rayswap checkpoint"):
        read_checkpoint_config(str(tmp_path / "foreign"))
    config["model"]["n_layers"] = 12
    (tmp_path / "foreign" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="unsupported model"):
        load_checkpoint(str(tmp_path / "foreign"))


def test_load_checkpoint_refuses_pickled_objects_and_other_models(tmp_path):
    save_tiny(tmp_path / "ck")
    with pytest.raises(ValueError, match="holds another model: resolution=64"):
        load_checkpoint(
            str(tmp_path / "ck"), expect=ModelConfig(resolution=128, width=4, latent_dim=16)
        )
    (tmp_path / "ck" / "model.pt").write_bytes(pickle.dumps({"x": object()}))
    with pytest.raises(ValueError, match="weights-only"):
        load_checkpoint(str(tmp_path / "ck"))
    save_tiny(tmp_path / "wide", cfg=ModelConfig(resolution=64, width=8, latent_dim=16))
    config = json.loads((tmp_path / "wide" / "config.json").read_text())
    config["model"] = TINY.to_dict()  # weights of one shape, config of another
    (tmp_path / "wide" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match"):
        load_checkpoint(str(tmp_path / "wide"))
