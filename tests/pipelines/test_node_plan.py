"""Actor plans fill the node: every CPU busy, the GPUs shared equally."""

from __future__ import annotations

import pytest

from pipelines.runtime.node_plan import ActorPlan, cluster_nodes, plan_actors

GPU_NODE = {"CPU": 16.0, "GPU": 1.0}


def test_a_gpu_node_runs_an_actor_per_cpu_sharing_its_gpu():
    plan = plan_actors([GPU_NODE], cpus_per_worker=1.0, gpu=True)
    assert plan.workers == 15 and plan.cpus_each == 1.0
    assert plan.gpus_each == pytest.approx(1 / 15, abs=1e-4) and plan.gpus_each * 15 <= 1.0
    assert plan.describe() == "15 actors x 1 CPU + 0.0666 GPU"


def test_cpu_nodes_are_left_out_of_a_gpu_plan_and_cpus_per_worker_divides():
    nodes = [{"CPU": 8.0, "GPU": 0.0}, {"CPU": 16.0, "GPU": 2.0}, {"CPU": 8.0, "GPU": 1.0}]
    plan = plan_actors(nodes, cpus_per_worker=2.0, gpu=True)
    # GPU nodes: 15 // 2 = 7 actors on the big one (one CPU kept), 8 // 2 = 4 on the other
    assert plan.gpus_each == pytest.approx(0.25) and plan.workers == 7 + 4


def test_requested_workers_and_share_override_the_plan():
    plan = plan_actors([GPU_NODE], 1.0, gpu=True, requested=4)
    assert plan == ActorPlan(4, 1.0, 0.25)
    plan = plan_actors([GPU_NODE], 1.0, gpu=True, gpus_per_worker=0.5)
    assert plan == ActorPlan(2, 1.0, 0.5)  # two halves of one GPU, whatever the CPUs


def test_cpu_plan_keeps_one_cpu_free():
    assert plan_actors([{"CPU": 2.0}], 1.0) == ActorPlan(1, 1.0)
    assert plan_actors([{"CPU": 16.0}, {"CPU": 4.0}], 1.0).workers == 19
    assert plan_actors([{"CPU": 2.0}], 1.0, requested=3).workers == 3


def test_gpu_plan_without_gpus_is_refused():
    with pytest.raises(ValueError, match="--gpu: the Ray cluster has no GPU"):
        plan_actors([{"CPU": 16.0}], 1.0, gpu=True)


@pytest.mark.ray
def test_cluster_nodes_reads_the_running_ray(ray_local):
    nodes = cluster_nodes()
    assert nodes and sum(n["CPU"] for n in nodes) == 4.0  # the test session's local Ray
