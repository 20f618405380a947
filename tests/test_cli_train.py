"""`rayswap train` and `rayswap export`: help, usage errors before Ray starts, a real export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ops.checkpoint import save_checkpoint
from ops.model import ModelConfig, SwapAutoencoder
from pipelines.cli import app
from tests.pipelines.faces_data import write_faces

runner = CliRunner()


@pytest.mark.parametrize("command", ["train", "export"])
def test_help_describes_train_and_export(command):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0 and "Usage" in result.output


def test_train_help_lists_the_main_options():
    result = runner.invoke(app, ["train", "--help"], terminal_width=200)
    for flag in (
        "--a",
        "--b",
        "--out",
        "--workers",
        "--gpu",
        "--resolution",
        "--batch-size",
        "--steps",
        "--lr",
        "--save-every",
        "--address",
        "--compile",
        "--device-cache-gb",
        "--data-timeout-s",
    ):
        assert flag in result.output


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--resolution", "96"], "--resolution"),
        (["--batch-size", "0"], "--batch-size"),
        (["--device-cache-gb", "-1"], "--device-cache-gb"),
        (["--data-timeout-s", "0"], "--data-timeout-s"),
        (["--workers", "0"], "--workers"),
        (["--eye-mouth-weight", "-1"], "--eye-mouth-weight"),
    ],
)
def test_train_bad_flag_exits_2_naming_it(no_ray, tmp_path, flags, named):
    args = [
        "train",
        "--a",
        str(tmp_path / "a"),
        "--b",
        str(tmp_path / "b"),
        "--out",
        str(tmp_path / "out"),
        *flags,
    ]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 2 and named in result.output


def test_train_warns_once_when_its_loss_diverges(tmp_path, capsys):
    """The metrics lines of a run whose loss jumped and stuck (as at --lr 1e-3) reach the
    progress callback; the CLI warns once as it happens and again in the summary."""
    from pipelines.cli.train import _run_and_report
    from pipelines.config import TrainConfig
    from pipelines.train.driver import TrainSummary

    def diverging_run(cfg, prepared, on_progress):
        losses = [0.9, 0.7, 0.5, 0.46] + [2.6] * 12
        for i, loss in enumerate(losses):
            step = 10 * (i + 1)
            on_progress({"step": step, "loss_a": loss, "loss_b": 0.5, "images_per_s": 1.0})
        return TrainSummary(step=160, checkpoint="ck", seconds=1.0, faces={})

    cfg = TrainConfig(a="a", b="b", out=str(tmp_path), steps=160)
    _run_and_report("train", diverging_run, cfg, None)
    out, err = capsys.readouterr()
    assert err.count("warning: loss_a has stayed above 2x its lowest (0.4600 at step 40)") == 1
    assert "train: step 160/160" in err
    assert "warning: loss_a has stayed above" in out  # the summary says it again


def test_train_missing_or_small_faces_exit_2_before_ray(no_ray, tmp_path):
    write_faces(tmp_path / "a", "a", 6)
    write_faces(tmp_path / "b", "b", 30)
    base = ["train", "--b", str(tmp_path / "b"), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*base, "--a", str(tmp_path / "none")], terminal_width=200)
    assert result.exit_code == 2 and "not found" in result.output
    result = runner.invoke(app, [*base, "--a", str(tmp_path / "a")], terminal_width=200)
    assert result.exit_code == 2 and "fewer than one batch" in result.output


def test_train_out_that_is_a_file_exits_2_before_ray(no_ray, tmp_path):
    write_faces(tmp_path / "a", "a", 30)
    write_faces(tmp_path / "b", "b", 30)
    (tmp_path / "taken").write_text("not a folder")
    args = ["train", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")]
    for out in (tmp_path / "taken", tmp_path / "taken" / "run"):
        result = runner.invoke(app, [*args, "--out", str(out)], terminal_width=200)
        text = " ".join(result.output.replace("│", " ").split())  # unwrap the error box
        assert result.exit_code == 2 and "--out" in text and "is a file" in text


def test_train_more_workers_than_cpus_exits_2_naming_the_flags(tmp_path):
    write_faces(tmp_path / "a", "a", 80)
    write_faces(tmp_path / "b", "b", 80)
    args = ["train", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")]
    args += ["--out", str(tmp_path / "out"), "--workers", "64", "--batch-size", "1"]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 2
    assert "--workers 64 x --cpus-per-worker 1 needs 64 CPUs" in result.output


def test_export_writes_a_checked_torchscript_file(tmp_path):
    model = SwapAutoencoder(ModelConfig(resolution=64, width=4, latent_dim=16))
    save_checkpoint(str(tmp_path / "ck"), model, 5, coverage=1.5, size=64)
    out = tmp_path / "b2a.pt"
    result = runner.invoke(
        app, ["export", str(tmp_path / "ck"), "--direction", "b2a", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and "max |exported - eager|" in result.output
    assert torch.jit.load(str(out))(torch.rand(1, 3, 64, 64))[0].shape == (1, 3, 64, 64)


def test_export_bad_direction_or_checkpoint_exits_2(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path), "--direction", "up", "--out", "x.pt"])
    assert result.exit_code == 2 and "--direction" in result.output
    result = runner.invoke(app, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "not found" in result.output


def _rayswap(*args: str, timeout_s: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_train_more_workers_than_this_machine_has_exits_2_before_ray(tmp_path):
    """This machine's own CPU count (no test cluster): one worker more than fits exits 2
    before Ray starts. (That 2 workers holding every CPU finish is shown by the GPU check's
    tiny mode, tests/test_benchmarks.py.)"""
    write_faces(tmp_path / "a", "a", 24)
    write_faces(tmp_path / "b", "b", 24, seed=1)
    share = f"{(os.cpu_count() or 2) / 2:g}"
    base = ["train", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b")]
    base += ["--out", str(tmp_path / "out"), "--cpus-per-worker", share, "--batch-size", "4"]
    base += ["--model", "original", "--width", "4", "--latent-dim", "16"]
    base += ["--steps", "4", "--save-every", "4"]
    base += ["--log-every", "2"]
    result = _rayswap(*base, "--workers", "3", timeout_s=60)
    assert result.returncode == 2, result.stderr
    assert "--workers 3" in result.stderr and "use --workers 2" in result.stderr
    assert not (tmp_path / "out").exists()  # refused before anything ran
