"""How many actors a segment stage runs, and what each asks for: fill every node.

    plan_actors(nodes, cpus_per_worker, gpu=..., requested=..., gpus_per_worker=...)

On CPU: as many actors as the cluster's CPUs allow (one CPU kept free for Ray Data's own
tasks), each with `cpus_per_worker`. With `--gpu`: only GPU nodes count, and each node is
filled by its CPUs, not by its GPUs: a 16-core node with one GPU runs 15 actors, each with
a 1/15 share of the GPU (decode, detection on CPU fallbacks and x264 encoding are CPU work;
the GPU does the batched model and paste-back for all of them). `--workers` and
`--gpus-per-worker` override the counts; the summary prints the plan that ran.
"""

from __future__ import annotations

import math

from pipelines.config.flags import BadInvocation
from pipelines.config.summary import ActorPlan

GPU_SHARE_STEP = 1e-4  # Ray's precision of fractional resources


def stage_actors(cfg: object, reserve_cpus: float = 1.0) -> ActorPlan:
    """Plan a stage's actors on the Ray this process joined (the driver joins it first,
    `ray_setup.connect_ray`) from its flags: --workers, --cpus-per-worker, and --gpu /
    --gpus-per-worker where the stage has them."""
    gpu, share = getattr(cfg, "gpu", False), getattr(cfg, "gpus_per_worker", None)
    return plan_actors(cluster_nodes(), cfg.cpus_per_worker, gpu, cfg.workers, share, reserve_cpus)


SMALL_NODE_CPUS = 4  # up to this many CPUs, a render's actors take all of them


def render_reserve_cpus(nodes: list[dict[str, float]]) -> float:
    """CPUs a render keeps free beside its actors, for the joins of finished videos.

    On a small machine (largest node of up to SMALL_NODE_CPUS CPUs) none: one more actor
    is worth more than starting joins early (they run once the actors are done; 2 videos
    on 2 CPUs rendered faster on 2 actors than on 1 plus a free CPU, docs/benchmarks.md).
    On larger nodes one, so each video is joined as soon as its last segment is done.
    """
    largest = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    return 0.0 if largest <= SMALL_NODE_CPUS else 1.0


def cluster_nodes() -> list[dict[str, float]]:
    """CPU and GPU counts of every alive node of the Ray this process joined."""
    import ray

    found = []
    for node in ray.nodes():
        if node.get("Alive"):
            resources = node.get("Resources", {})
            found.append({"CPU": resources.get("CPU", 0.0), "GPU": resources.get("GPU", 0.0)})
    return found


def _share(value: float) -> float:
    """Round a GPU share down to Ray's precision (a share must never over-ask)."""
    return math.floor(value / GPU_SHARE_STEP + 1e-6) * GPU_SHARE_STEP


def plan_actors(
    nodes: list[dict[str, float]],
    cpus_per_worker: float,
    gpu: bool = False,
    requested: int | None = None,
    gpus_per_worker: float | None = None,
    reserve_cpus: float = 1.0,
) -> ActorPlan:
    """The actor plan that fills `nodes` ([{"CPU": n, "GPU": m}, ...]).

    reserve_cpus: kept free once per cluster (on its largest node), so Ray Data's plan and
    write tasks stay schedulable beside actors that hold CPUs for the whole run.
    Raises BadInvocation (a ValueError) when --gpu is asked of a cluster without GPUs.
    """
    if gpu:
        nodes = [n for n in nodes if n.get("GPU", 0) > 0]
        if not nodes:
            raise BadInvocation("--gpu: the Ray cluster has no GPU; drop --gpu")
    largest = max(range(len(nodes)), key=lambda i: nodes[i].get("CPU", 0)) if nodes else -1
    per_node = [
        int(max(n.get("CPU", 0) - (reserve_cpus if i == largest else 0), 0) // cpus_per_worker)
        for i, n in enumerate(nodes)
    ]
    if not gpu:
        workers = requested or max(1, sum(per_node))
        return ActorPlan(workers, cpus_per_worker)
    gpus = [n["GPU"] for n in nodes]
    if gpus_per_worker is None:
        if requested:  # an equal share of all GPUs for the requested actors
            gpus_per_worker = min(1.0, sum(gpus) / requested)
        else:  # each node's GPUs shared by the actors its CPUs allow
            shares = [g / max(count, 1) for g, count in zip(gpus, per_node, strict=True)]
            gpus_per_worker = min(1.0, min(shares))
        gpus_per_worker = max(_share(gpus_per_worker), GPU_SHARE_STEP)
    if requested:
        return ActorPlan(requested, cpus_per_worker, gpus_per_worker)
    fits = [
        min(count, int(g / gpus_per_worker + 1e-6)) for g, count in zip(gpus, per_node, strict=True)
    ]
    return ActorPlan(max(1, sum(fits)), cpus_per_worker, gpus_per_worker)
