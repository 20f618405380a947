"""The GPU machine's benchmarks run end to end in their tiny CPU modes, so they never rot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import shared_video

ROOT = Path(__file__).resolve().parents[1]


def run_tiny(names: list[str], out: Path) -> subprocess.CompletedProcess:
    """`python -m benchmarks NAME... --tiny --out OUT` with this machine's own local Ray."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", *names, "--tiny", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> tuple[Path, str]:
    """The GPU check and the node benchmark in their tiny modes, one after the other in
    one process on one default-size local Ray (as `python -m benchmarks gpu node` runs)."""
    shared_video("person_a__mead_M030_front_happy.mp4")
    shared_video("person_d__liveportrait_d18.mp4")
    out = tmp_path_factory.mktemp("tiny")
    return out, run_tiny(["gpu", "node"], out).stdout


@pytest.mark.data
def test_gpu_check_tiny_mode_measures_and_learns(tiny_runs):
    out, stdout = tiny_runs
    results = json.loads((out / "gpu.json").read_text())
    assert results["raw_64"]["images_per_s"] > 0 and 0 < results["raw_64"]["mfu"] < 1
    assert results["extract_seconds"] > 0
    pipeline = results["pipeline"]
    assert pipeline["images_per_s"] > 0 and 0 <= pipeline["data_wait_fraction"] < 1
    assert results["workers"] == 2  # two ranks on every CPU of this machine: it finished
    assert results["pipeline_over_raw"] == pytest.approx(
        pipeline["images_per_s"] / (2 * results["raw_64"]["images_per_s"])
    )
    assert pipeline["learning"]["finite"] and pipeline["learning"]["passed"]
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "learning check PASSED" in stdout


@pytest.mark.data
def test_node_benchmark_tiny_mode_renders_and_extracts(tiny_runs):
    out, _ = tiny_runs
    results = json.loads((out / "node.json").read_text())
    assert set(results["stages_alone"]) == {"decode", "detect", "model", "encode"}
    cpus = os.cpu_count() or 1
    assert results["render"]["frames_per_s"] > 0
    assert results["render"]["plan"] == f"{cpus} actors x 1 CPU"  # every CPU of this machine
    assert results["render"]["segments"] == min(cpus, 2)  # 48 frames, at least 30 a segment
    assert results["extract"]["cpu"]["frames_per_s"] > 0
    if shutil.which("nvidia-smi") is None:
        assert results["render"]["gpu_util"]["mean"] is None  # nothing to sample


def test_benchmark_names_are_checked_before_anything_runs(capsys):
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit, match="usage: python -m benchmarks"):
        main(["gpu", "no-such-benchmark", "--tiny"])
    assert "===" not in capsys.readouterr().out  # not even the first one started
