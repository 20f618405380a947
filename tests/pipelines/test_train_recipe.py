"""`rayswap train` flags of the model family and the recipe: what they build, what they refuse,
and a resume into a run of another model. No Ray needed."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from ops.checkpoint import save_checkpoint
from ops.losses import DFL_WEIGHTS
from ops.model import DFL_DIMS, LATENT_DIMS, ModelConfig, SwapAutoencoder
from pipelines.cli import app
from pipelines.config import TrainConfig
from pipelines.train.data import check_resume
from pipelines.train.worker import model_config_of, recipe_of

runner = CliRunner()


def train_config(tmp_path, **overrides) -> TrainConfig:
    fields = dict(a=str(tmp_path / "a"), b=str(tmp_path / "b"), out=str(tmp_path / "out"))
    return TrainConfig(**{**fields, **overrides})


def test_default_flags_build_the_benchmarks_best_model_and_recipe(tmp_path):
    """The defaults are the quality benchmark's winner: the original model at width 32, the
    dfl loss at a constant learning rate, warp off for the last 20%, an EMA."""
    cfg = train_config(tmp_path)
    assert model_config_of(cfg) == ModelConfig(model="original", resolution=64, width=32)
    assert model_config_of(cfg).latent_dim == LATENT_DIMS["original"]
    recipe = recipe_of(cfg)
    assert recipe.lr_at(0) == recipe.lr_at(cfg.steps // 2) == recipe.lr_at(cfg.steps - 1)
    assert recipe.lr_at(0) == cfg.lr
    assert recipe.warp_at(int(0.8 * cfg.steps) - 1) and not recipe.warp_at(int(0.8 * cfg.steps))
    assert recipe.ema_decay == 0.999 and cfg.loss == "dfl" and cfg.lr == 6e-4
    assert cfg.coverage is None  # resolved per faces dataset: 1.1, or theirs when narrower
    assert cfg.eye_mouth_weight == DFL_WEIGHTS["eye_mouth"]  # the loss's own default


def test_the_recipe_before_the_model_family_is_still_there_by_its_flags(tmp_path):
    classic = dict(loss="classic", lr=1e-4, warmup_steps=0, lr_decay="constant")
    cfg = train_config(tmp_path, model="original", warp_off_share=0, ema_decay=0, **classic)
    assert model_config_of(cfg) == ModelConfig(resolution=64, width=32, latent_dim=256)
    recipe = recipe_of(cfg)
    assert {recipe.lr_at(step) for step in range(cfg.steps)} == {cfg.lr}
    assert all(recipe.warp_at(step) for step in range(cfg.steps)) and recipe.ema_decay == 0


@pytest.mark.parametrize("family", ("df", "liae"))
def test_model_flags_build_each_family_with_its_defaults(tmp_path, family):
    built = model_config_of(train_config(tmp_path, model=family, resolution=128))
    assert built.model == family and built.resolution == 128
    assert built.encoder_dims == DFL_DIMS["encoder_dims"]
    assert built.latent_dim == LATENT_DIMS[family]
    sized = model_config_of(
        train_config(tmp_path, model=family, encoder_dims=8, decoder_dims=6, mask_dims=3)
    )
    assert (sized.encoder_dims, sized.decoder_dims, sized.mask_dims) == (8, 6, 3)


def test_recipe_flags_reach_the_recipe(tmp_path):
    cfg = train_config(
        tmp_path, steps=100, warmup_steps=10, lr_decay="cosine", warp_off_share=0.2, ema_decay=0.99
    )
    recipe = recipe_of(cfg)
    assert recipe.lr_at(0) == pytest.approx(cfg.lr / 10) and recipe.lr_at(99) < cfg.lr
    assert recipe.warp_at(79) and not recipe.warp_at(80)
    assert recipe.ema_decay == 0.99


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"model": "df", "width": 64}, "--width"),
        ({"model": "original", "encoder_dims": 16}, "--encoder-dims"),
        ({"model": "liae", "mask_dims": 1}, "--mask-dims"),
        ({"model": "h128"}, "--model"),
        ({"loss": "l2"}, "--loss"),
        ({"lr_decay": "step"}, "--lr-decay"),
        ({"warp_off_share": 1.0}, "--warp-off-share"),
        ({"ema_decay": 1.0}, "--ema-decay"),
        ({"warmup_steps": -1}, "--warmup-steps"),
    ],
)
def test_train_config_refuses_bad_model_and_recipe_flags(tmp_path, overrides, named):
    with pytest.raises(ValueError, match=named):
        train_config(tmp_path, **overrides)


def test_cli_bad_model_flag_exits_2_naming_it(no_ray, tmp_path):
    args = ["train", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")]
    args += ["--out", str(tmp_path / "out"), "--model", "df", "--width", "64"]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 2 and "--width" in result.output


def _save(out, cfg: ModelConfig) -> None:
    torch.manual_seed(0)
    save_checkpoint(str(out / "train" / "checkpoint_00000002"), SwapAutoencoder(cfg), 2, 1.5, 64)


def test_resume_into_a_run_of_another_family_is_refused_naming_model(tmp_path):
    _save(tmp_path / "out", ModelConfig(resolution=64, width=32))
    cfg = train_config(tmp_path, model="df")
    with pytest.raises(ValueError, match=r"--out: .*model='original'.*same --model or"):
        check_resume(cfg, model_config_of(cfg), 1.5)
    original = train_config(tmp_path, model="original")
    check_resume(original, model_config_of(original), 1.5)


def test_resume_with_other_dims_is_refused_naming_the_dims_flag(tmp_path):
    _save(tmp_path / "out", ModelConfig(model="liae", encoder_dims=4, decoder_dims=4, mask_dims=2))
    cfg = train_config(tmp_path, model="liae", encoder_dims=4, decoder_dims=8, mask_dims=2)
    with pytest.raises(
        ValueError, match=r"decoder_dims=4 \(expected 8\); resume with the same --decoder-dims or"
    ):
        check_resume(cfg, model_config_of(cfg), 1.5)
    same = train_config(tmp_path, model="liae", encoder_dims=4, decoder_dims=4, mask_dims=2)
    check_resume(same, model_config_of(same), 1.5)


def test_resume_takes_the_model_flags_not_given_from_the_checkpoint(tmp_path):
    """A run started with other defaults (df at small dims, coverage 1.5) resumes with the
    bare command; a flag that is given still wins and is then checked against the checkpoint."""
    from pipelines.train.resume import resumed_values

    started = ModelConfig(model="df", encoder_dims=4, decoder_dims=6, mask_dims=2)
    _save(tmp_path / "out", started)
    bare = {"out": str(tmp_path / "out"), "model": "original", "width": 32, "coverage": None}
    bare |= {"resolution": 64, "encoder_dims": None, "decoder_dims": None, "mask_dims": None}
    adopted = resumed_values(bare | {"latent_dim": None}, given=set())
    assert (adopted["model"], adopted["decoder_dims"], adopted["coverage"]) == ("df", 6, 1.5)
    rebuilt = train_config(
        tmp_path, **{k: v for k, v in adopted.items() if k not in ("out", "width")}
    )
    assert model_config_of(rebuilt) == started
    kept = resumed_values(bare, given={"model"})  # --model given: nothing of df's is taken
    assert kept["model"] == "original" and kept["decoder_dims"] is None
    elsewhere = bare | {"out": str(tmp_path / "new")}
    assert resumed_values(elsewhere, given=set()) == elsewhere


def test_cli_bare_rerun_of_an_older_run_passes_the_resume_check(no_ray, tmp_path):
    from tests.pipelines.faces_data import write_faces

    write_faces(tmp_path / "a", "a", 80)
    write_faces(tmp_path / "b", "b", 80)
    _save(tmp_path / "out", ModelConfig(model="df", encoder_dims=4, decoder_dims=4, mask_dims=2))
    args = ["train", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")]
    args += ["--out", str(tmp_path / "out"), "--init", str(tmp_path / "missing")]
    result = runner.invoke(app, args, terminal_width=200)
    # past the resume check, stopped by the next one (--init is checked after it): no Ray
    assert result.exit_code == 2 and "--init" in result.output, result.output
    assert "another model" not in result.output
    assert "resume: --model df" in result.output and "--coverage 1.5" in result.output
    result = runner.invoke(app, [*args, "--model", "original"], terminal_width=200)
    assert result.exit_code == 2 and "same --model" in result.output
