"""`rayswap demo` runs every stage on its own sample clips."""

import json

import pytest
from typer.testing import CliRunner

from pipelines.cli import app


@pytest.mark.ray
def test_demo_runs_the_whole_chain(ray_local, tmp_path):
    result = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path / "demo"), "--frames", "8", "--steps", "6"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["marked"] is True
    assert summary["steps"] == 6
    assert (tmp_path / "demo" / "render" / "sample_a.mp4").stat().st_size > 0
    assert "video:" in result.output and "preview:" in result.output
