"""CLI of evaluate and render --evaluate: help, and bad invocations exit 2 before Ray starts."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ops import schema
from pipelines.cli import app
from pipelines.cli.evaluate import metrics_table
from pipelines.evaluate import driver as evaluate_stage
from tests.pipelines.faces_data import write_faces

runner = CliRunner()


@pytest.fixture
def no_eval_extra(monkeypatch):
    """As if dlib were not installed."""
    find_spec = evaluate_stage.importlib.util.find_spec
    monkeypatch.setattr(
        evaluate_stage.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "dlib" else find_spec(name, *args),
    )


@pytest.fixture
def setup(tmp_path) -> dict[str, str]:
    """A render folder (manifest + _config.json), faces of a and b, a checkpoint."""
    from ops.checkpoint import save_checkpoint
    from ops.model import ModelConfig, SwapAutoencoder

    render = tmp_path / "render"
    render.mkdir()
    rows = [{schema.VIDEO: "/v/a.mp4", schema.OUTPUT: "/v/out.mp4"}]
    table = pa.Table.from_pylist(rows, schema=schema.RENDER_MANIFEST_SCHEMA)
    pq.write_table(table, render / "manifest.parquet")
    (render / "_config.json").write_text(json.dumps({"config": {"direction": "b2a"}}))
    checkpoint = str(tmp_path / "ckpt")
    save_checkpoint(checkpoint, SwapAutoencoder(ModelConfig(width=4, latent_dim=8)), 0, 1.5, 64)
    return {
        "render": str(render),
        "a": str(write_faces(tmp_path / "faces_a", "a", 2)),
        "b": str(write_faces(tmp_path / "faces_b", "b", 2)),
        "checkpoint": checkpoint,
        "missing": str(tmp_path / "missing"),
    }


def test_evaluate_help_and_render_evaluate_flags() -> None:
    result = runner.invoke(app, ["evaluate", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for flag in ("--a", "--b", "--every-n", "--max-frames", "--gallery-size", "--workers"):
        assert flag in result.output, flag
    result = runner.invoke(app, ["render", "--help"], terminal_width=200)
    assert "--evaluate" in result.output and "--evaluate-every-n" in result.output


def _evaluate(paths: dict, render: str | None = None, a: str | None = None) -> list[str]:
    return ["evaluate", render or paths["render"], "--a", a or paths["a"], "--b", paths["b"]]


def test_evaluate_bad_invocation_exits_2_naming_the_flag(no_ray, setup, tmp_path) -> None:
    cases = [
        (_evaluate(setup, render=setup["missing"]), "RENDER"),
        (_evaluate(setup, render=str(tmp_path)), "manifest.parquet"),  # not a render folder
        (_evaluate(setup, a=setup["missing"]), "--a"),
        (_evaluate(setup, a=setup["b"]), "--b"),  # the same faces twice
        ([*_evaluate(setup), "--every-n", "0"], "--every-n"),
        ([*_evaluate(setup), "--max-frames", "0"], "--max-frames"),
        (["evaluate", setup["render"], "--b", setup["b"]], "--a"),
    ]
    for args, named in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert named in result.output, (named, result.output)
    empty = tmp_path / "empty_faces"
    empty.mkdir()
    result = runner.invoke(app, _evaluate(setup, a=str(empty)))
    assert result.exit_code == 2 and "--a" in result.output


def test_evaluate_without_the_eval_extra_exits_2(no_ray, no_eval_extra, setup) -> None:
    result = runner.invoke(app, _evaluate(setup))
    assert result.exit_code == 2 and "rayswap[eval]" in result.output, result.output


def _render(setup: dict, *flags: str) -> list[str]:
    out = str(setup["render"]) + "_new"
    return ["render", setup["checkpoint"], "/v/a.mp4", "--out", out, *flags]


def test_render_evaluate_bad_invocation_exits_2(no_ray, no_eval_extra, setup) -> None:
    faces = ["--a", setup["a"], "--b", setup["b"]]
    for flags, named in (
        (["--evaluate", "--b", setup["b"]], "--a"),  # --evaluate needs both
        (faces, "--a"),  # and they need --evaluate
        (["--evaluate", "--a", setup["missing"], "--b", setup["b"]], "--a"),
        (["--evaluate", *faces, "--evaluate-every-n", "0"], "--evaluate-every-n"),
        (["--evaluate", *faces], "--evaluate"),  # no eval extra
    ):
        result = runner.invoke(app, _render(setup, *flags))
        assert result.exit_code == 2 and named in result.output, (flags, result.output)
    assert "rayswap[eval]" in result.output


def test_metrics_table_aligns_columns_and_shows_errors() -> None:
    rows = [
        {"video": "/x/long_name.mp4", "frames": 98, "swapped_frames": 97, "id_retrieval": 0.93},
        {"video": "s3://b/short.mp4", "frames": 0, "error": "FileNotFoundError: gone"},
    ]
    header, first, second = metrics_table(rows)
    assert header.startswith("video") and len(header) == len(first)
    assert "0.930" in first and "long_name.mp4" in first and "/x/" not in first
    assert second.startswith("short.mp4") and second.endswith("error: FileNotFoundError: gone")
