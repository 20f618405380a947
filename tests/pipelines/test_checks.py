"""The checks every stage makes before its Ray work, and the render's CPU rule."""

from __future__ import annotations

import pytest

from pipelines.runtime import checks
from pipelines.runtime.node_plan import SMALL_NODE_CPUS, plan_actors, render_reserve_cpus


def test_ray_address_prefers_the_flag_then_the_environment(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert checks.ray_address(None) == checks.LOCAL
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert checks.ray_address(None) == "ray://head:10001"
    assert checks.ray_address("10.0.0.1:6379") == "10.0.0.1:6379"


def test_gpu_on_a_local_machine_without_cuda_fails_before_ray(monkeypatch):
    import ray
    import torch

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="--gpu: this machine has no CUDA GPU"):
        checks.check_gpu(True, None)
    checks.check_gpu(False, None)  # no --gpu: nothing to check
    checks.check_gpu(True, "ray://head:10001")  # a cluster answers once it is joined


@pytest.mark.ray
def test_gpu_on_a_joined_ray_without_gpus_fails(ray_local):
    with pytest.raises(ValueError, match="--gpu: the Ray cluster this process joined has no GPU"):
        checks.check_gpu(True, None)


def test_check_out_dir_names_the_flag(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="^RENDER: .*give a folder that can be written"):
        checks.check_out_dir(str(blocker / "out"), "RENDER")
    checks.check_out_dir(str(tmp_path / "new"))  # a folder it can make


def test_render_uses_every_cpu_of_a_small_machine():
    small = [{"CPU": 2.0}]
    assert render_reserve_cpus(small) == 0.0
    assert plan_actors(small, 1.0, reserve_cpus=render_reserve_cpus(small)).workers == 2
    big = [{"CPU": 16.0, "GPU": 1.0}, {"CPU": float(SMALL_NODE_CPUS)}]
    assert render_reserve_cpus(big) == 1.0  # joins start as soon as a video is done
    assert plan_actors(big, 1.0, reserve_cpus=render_reserve_cpus(big)).workers == 15 + 4
