"""CLI of render and verify: help, bad flags and bad checkpoints fail with exit code 2."""

from __future__ import annotations

from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


def test_render_and_verify_help() -> None:
    for command in ("render", "verify"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
    assert "--no-label" in runner.invoke(app, ["render", "--help"]).output


def test_render_bad_flag_exits_2_naming_it(tmp_path) -> None:
    result = runner.invoke(
        app, ["render", str(tmp_path), "v.mp4", "--out", str(tmp_path), "--direction", "x2y"]
    )
    assert result.exit_code == 2 and "--direction" in result.output
    for flags, named in (
        (["--detector", "dlib"], "--detector"),
        (["--gpu", "--detector", "onnxruntime"], "--detector"),
        (["--gpus-per-worker", "0"], "--gpus-per-worker"),
    ):
        result = runner.invoke(app, ["render", str(tmp_path), "v.mp4", "--out", "o", *flags])
        assert result.exit_code == 2 and named in result.output, result.output


def test_render_missing_or_corrupt_checkpoint_exits_2(tmp_path) -> None:
    result = runner.invoke(app, ["render", str(tmp_path / "nope"), "v.mp4", "--out", "o"])
    assert result.exit_code == 2
    corrupt = tmp_path / "ckpt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{not json")
    (corrupt / "model.pt").write_bytes(b"junk")
    result = runner.invoke(app, ["render", str(corrupt), "v.mp4", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "ckpt" in result.output


def test_verify_bad_flag_exits_2() -> None:
    result = runner.invoke(app, ["verify", "v.mp4", "--max-frames", "1"])
    assert result.exit_code == 2 and "--max-frames" in result.output


def test_render_gpu_without_cuda_exits_2(tmp_path) -> None:
    import pytest
    import torch

    from ops.checkpoint import save_checkpoint
    from ops.model import ModelConfig, SwapAutoencoder

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    ckpt = str(tmp_path / "ckpt")
    save_checkpoint(ckpt, SwapAutoencoder(ModelConfig(width=4, latent_dim=8)), 0, 1.5, 64)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    result = runner.invoke(app, ["render", ckpt, str(video), "--out", str(tmp_path), "--gpu"])
    assert result.exit_code == 2 and "--gpu" in result.output


def test_render_rerun_with_a_changed_flag_exits_2_naming_it(tmp_path) -> None:
    from ops.checkpoint import save_checkpoint
    from ops.model import ModelConfig, SwapAutoencoder
    from pipelines.config import RenderConfig, config_json

    ckpt = str(tmp_path / "ckpt")
    save_checkpoint(ckpt, SwapAutoencoder(ModelConfig(width=4, latent_dim=8)), 0, 1.5, 64)
    video, out = tmp_path / "v.mp4", tmp_path / "out"
    video.write_bytes(b"x")
    out.mkdir()
    earlier = RenderConfig(ckpt, (str(video),), str(out))  # what an earlier run wrote
    pinned = {"path": ckpt, "step": 0}
    (out / "_config.json").write_text(config_json(earlier, stage="render", checkpoint=pinned))
    result = runner.invoke(app, ["render", ckpt, str(video), "--out", str(out), "--crf", "30"])
    assert result.exit_code == 2 and "--crf" in result.output
