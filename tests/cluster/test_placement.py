"""Extract runs on CPU nodes, train and render on GPU nodes: shown on a three-node local
cluster (head, CPU node, node with a custom resource standing in for a GPU), started in
a subprocess of its own because the pytest process shares one local Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def placement(sample_clips, tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("placement")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="disabled", PYTHONPATH=str(ROOT))
    env.update(RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="0.1")  # as in tests/conftest.py
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("placement_check.py"))]
        + [str(sample_clips["a"]), str(sample_clips["b"]), str(workdir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("PLACEMENT ")]
    assert result.returncode == 0 and lines, (result.stdout[-3000:], result.stderr[-5000:])
    return json.loads(lines[-1][len("PLACEMENT ") :])


def test_extract_actors_run_only_on_the_cpu_node(placement):
    nodes, ran = placement["nodes"], placement["ran"]
    assert ran["extract"], "no FaceExtractor actor was seen"
    assert set(ran["extract"]) == {nodes["cpu"]}


def test_train_workers_run_only_on_the_gpu_node(placement):
    nodes, ran = placement["nodes"], placement["ran"]
    assert ran["train"] and set(ran["train"]) == {nodes["gpu"]}


def test_render_actors_run_only_on_the_gpu_node(placement):
    nodes, ran = placement["nodes"], placement["ran"]
    assert ran["render"] and set(ran["render"]) == {nodes["gpu"]}


def test_pretrain_ranks_run_on_two_nodes_and_end_with_equal_weights(placement):
    nodes, ran = placement["nodes"], placement["ran"]
    assert len(ran["pretrain"]) == 2 and len(set(ran["pretrain"])) == 2  # one rank a node
    assert nodes["gpu"] not in ran["pretrain"] and nodes["head"] not in ran["pretrain"]
    hashes = placement["pretrain_hashes"]
    assert len(hashes) == 2 and len(set(hashes)) == 1
