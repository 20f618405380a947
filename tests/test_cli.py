"""The `rayswap` CLI: help texts, usage errors before Ray starts, and a real extract run."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from pipelines.cli import app
from tests.ops.test_storage import unwritable_dir

runner = CliRunner()


Command = typer.core.TyperCommand | typer.core.TyperGroup


def _every_command(
    command: Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], Command]]:
    """The app's commands as the app itself holds them: the app, its groups and their commands."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _every_command(sub, (*path, name))
    return found


COMMANDS = dict(_every_command(typer.main.get_command(app)))


def _plain(text: str) -> str:
    """Help output without the panels' borders and line wrapping, to find a sentence in it."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _first_paragraph(help_text: str | None) -> str:
    return " ".join((help_text or "").split("\n\n")[0].split())


def test_the_commands_found_include_the_groups_and_the_job_commands():
    for path in [("faces",), ("faces", "report"), ("submit",), ("jobs",), ("logs",), ("stop",)]:
        assert path in COMMANDS, path


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda path: " ".join(path) or "rayswap")
def test_help_describes_every_command(path):
    command = COMMANDS[path]
    summary = _first_paragraph(command.help)
    assert summary, f"`rayswap {' '.join(path)}` has no help text"
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert summary in _plain(result.output)
    for param in command.params:
        if param.name != "help" and not getattr(param, "hidden", False):
            assert getattr(param, "help", None), f"{' '.join(path)}: {param.name} has no help"
    if path:  # the group above lists the command with the start of its help
        listing = _plain(runner.invoke(app, [*path[:-1], "--help"]).output)
        assert f"{path[-1]} {' '.join(summary.split()[:4])}" in listing


def test_extract_help_lists_the_main_options():
    result = runner.invoke(app, ["extract", "--help"], terminal_width=200)
    for flag in (
        "--out",
        "--identity",
        "--every-n",
        "--fps",
        "--size",
        "--coverage",
        "--min-face",
        "--min-score",
        "--min-sharpness",
        "--faces",
        "--segment-frames",
        "--workers",
        "--cpus-per-worker",
        "--address",
        "--max-error-fraction",
        "--gpu",
        "--gpus-per-worker",
        "--detector",
    ):
        assert flag in result.output, flag


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["extract", "clip.mp4", "--out", "o", "--size", "100"], "--size"),
        (["extract", "clip.mp4", "--out", "o", "--faces", "some"], "--faces"),
        (["extract", "clip.mp4", "--out", "o", "--every-n", "0"], "--every-n"),
        (["extract", "clip.mp4", "--out", "o", "--detector", "dlib"], "--detector"),
        (["extract", "c.mp4", "--out", "o", "--gpu", "--detector", "onnxruntime"], "--detector"),
        (["extract", "c.mp4", "--out", "o", "--gpus-per-worker", "0"], "--gpus-per-worker"),
        (["extract", "clip.mp4", "--out", "o", "--bogus"], "--bogus"),
        (["extract", "clip.mp4"], "--out"),
        (["extract", "--out", "o"], "INPUTS"),
        (["extract", "nothing/*.mp4", "--out", "o", "--identity", "../x"], "--identity"),
    ],
)
def test_bad_invocation_exits_2_naming_the_flag_before_ray(no_ray, args, flag):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert flag.lower() in result.output.lower()


def test_extract_gpu_on_a_machine_without_cuda_exits_2_before_ray(no_ray, tmp_path, monkeypatch):
    import ray
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --gpu is a valid request here")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # a command's own process
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    result = runner.invoke(app, ["extract", str(clip), "--out", str(tmp_path / "o"), "--gpu"])
    assert result.exit_code == 2 and "no CUDA GPU" in _plain(result.output)


def test_extract_refuses_to_resume_with_other_settings(no_ray, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "_config.json").write_text('{"config": {"size": 128}}')
    result = runner.invoke(app, ["extract", str(tmp_path), "--out", str(out), "--size", "256"])
    assert result.exit_code == 2
    assert "--size" in result.output


@pytest.mark.parametrize("command", ["extract", "render"])
def test_out_that_cannot_be_written_exits_2_naming_out_before_ray(no_ray, tmp_path, command):
    clip, taken = tmp_path / "clip.mp4", tmp_path / "taken"
    clip.write_bytes(b"x")
    taken.write_text("a file, not a folder")
    head = [command, str(tmp_path / "ckpt")] if command == "render" else [command]
    for out in (taken, taken / "sub", unwritable_dir(tmp_path) / "out"):
        result = runner.invoke(app, [*head, str(clip), "--out", str(out)], terminal_width=300)
        assert result.exit_code == 2, result.output
        assert "--out" in result.output and "Traceback" not in result.output, result.output


@pytest.mark.ray
def test_extract_command_prints_a_summary_and_fails_on_errors(ray_local, tmp_path, sample_clips):
    out = tmp_path / "out"
    flags = ["--out", str(out), "--identity", "a", "--size", "64", "--workers", "1"]
    ok = runner.invoke(app, ["extract", sample_clips["a"], *flags])
    assert ok.exit_code == 0, ok.output
    assert "12 faces" in ok.output and str(out) in ok.output
    missing = str(tmp_path / "gone.mp4")
    bad = runner.invoke(app, ["extract", sample_clips["a"], missing, *flags])
    assert bad.exit_code == 1
    assert "gone.mp4" in bad.output
    tolerated = runner.invoke(
        app, ["extract", sample_clips["a"], missing, *flags, "--max-error-fraction", "0.5"]
    )
    assert tolerated.exit_code == 0
