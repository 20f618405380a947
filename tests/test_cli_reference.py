"""`rayswap extract --reference`: a bad reference exits 2 naming the flag, before Ray starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


def test_extract_help_states_the_reference_flags_and_default_distance():
    result = runner.invoke(app, ["extract", "--help"], env={"COLUMNS": "240"})
    assert "--reference" in result.output and "--max-distance" in result.output
    assert "(default 0.5:" in result.output, result.output


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--reference", "missing.jpg"], "--reference"),
        (["--reference", "notes.txt"], "--reference"),
        (["--max-distance", "0.4"], "--max-distance"),
        (["--reference", "face.png", "--max-distance", "0"], "--max-distance"),
    ],
)
def test_extract_bad_reference_exits_2_naming_the_flag(no_ray, tmp_path, monkeypatch, extra, flag):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not an image")
    result = runner.invoke(app, ["extract", "clip.mp4", "--out", "o", *extra], terminal_width=300)
    assert result.exit_code == 2, result.output
    assert flag in result.output and "Traceback" not in result.output, result.output
