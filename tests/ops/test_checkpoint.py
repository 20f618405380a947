"""Checkpoints: round trip of every model family and of the weight average,
latest-under-a-folder, and every kind of bad checkpoint."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

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


DF = ModelConfig(model="df", encoder_dims=4, decoder_dims=4, mask_dims=2, latent_dim=16)
LIAE = ModelConfig(model="liae", encoder_dims=4, decoder_dims=4, mask_dims=2, latent_dim=16)


@pytest.mark.parametrize("cfg", (DF, LIAE), ids=("df", "liae"))
def test_dfl_families_round_trip_through_a_checkpoint(tmp_path, cfg):
    model = save_tiny(tmp_path / "ck", cfg=cfg)
    loaded = load_checkpoint(str(tmp_path / "ck"))
    assert loaded.model_config == cfg and not loaded.ema
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["model"]["model"] == cfg.model and config["model"]["encoder_dims"] == 4
    assert list(loaded.model.state_dict()) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])
    faces = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval().swap(faces, "b")[0], loaded.model.swap(faces, "b")[0])


def test_a_checkpoint_written_before_the_families_loads_as_original(tmp_path):
    model = save_tiny(tmp_path / "ck")
    path = tmp_path / "ck" / "config.json"
    config = json.loads(path.read_text())
    del config["model"]["model"]  # config.json as it was written before the families
    path.write_text(json.dumps(config))
    loaded = load_checkpoint(str(tmp_path / "ck"), expect=TINY)
    assert loaded.model_config == TINY and loaded.model_config.model == "original"
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])


def test_load_checkpoint_refuses_another_family_naming_it(tmp_path):
    save_tiny(tmp_path / "ck")
    with pytest.raises(ValueError, match=r"another model: model='original' \(expected 'df'\)"):
        load_checkpoint(str(tmp_path / "ck"), expect=DF)
    save_tiny(tmp_path / "df", cfg=DF)
    with pytest.raises(ValueError, match=r"decoder_dims=4 \(expected 8\)"):
        load_checkpoint(str(tmp_path / "df"), expect=replace(DF, decoder_dims=8))
    config = json.loads((tmp_path / "df" / "config.json").read_text())
    config["model"] = {**config["model"], "model": "liae"}  # df weights, liae config
    (tmp_path / "df" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not match"):
        load_checkpoint(str(tmp_path / "df"))


def test_checkpoint_with_an_average_gives_it_to_inference(tmp_path):
    torch.manual_seed(0)
    model, average = SwapAutoencoder(TINY), SwapAutoencoder(TINY)
    save_checkpoint(str(tmp_path / "ck"), model, 3, 1.5, 64, ema=average)
    assert (tmp_path / "ck" / "ema.pt").exists()
    assert set(load_state(str(tmp_path / "ck"), "ema.pt")) == set(model.state_dict())
    loaded = load_checkpoint(str(tmp_path / "ck"))
    assert loaded.ema
    for key, value in average.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])
    raw = load_checkpoint(str(tmp_path / "ck"), prefer_ema=False)
    assert not raw.ema
    for key, value in model.state_dict().items():
        assert torch.equal(value, raw.model.state_dict()[key])
    assert not torch.equal(raw.model.state_dict()[key], loaded.model.state_dict()[key])
