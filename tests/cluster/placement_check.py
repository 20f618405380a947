"""Where each stage's work runs on a multi-node local cluster (run as its own process).

    python tests/cluster/placement_check.py CLIP_A CLIP_B WORKDIR  -> prints one JSON line

The cluster (ray.cluster_utils.Cluster) has a head that does no work (0 CPUs), a CPU node
labelled node-kind=cpu (a second one joins for pretraining), and a "GPU" node labelled
node-kind=gpu that declares one logical GPU and a custom resource `fake_gpu`; they stand
in for a real GPU. The stages run with the placement settings the cluster configs use,
and the node of every actor they started is read back from the GCS.
It needs its own ray.init, so the tests run it in a subprocess, never in pytest's process.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402


def actor_nodes(class_fragment: str, since_ms: float) -> list[str]:
    """Node ids of the actors whose class name contains `class_fragment`, started after."""
    table = ray._private.state.actors()
    return sorted(
        info["Address"]["NodeID"]
        for info in table.values()
        if class_fragment in info["ActorClassName"] and info["StartTime"] >= since_ms
    )


def run_extract_stage(clips: list[str], workdir: str) -> list[str]:
    """Faces of identity a (CLIP_A) and b (CLIP_B), for the train stage too."""
    from pipelines.config import ExtractConfig
    from pipelines.extract.driver import run_extract

    manifest = os.path.join(workdir, "clips.csv")
    with open(manifest, "w") as handle:
        rows = [f"{clip},{identity}\n" for clip, identity in zip(clips, "ab", strict=True)]
        handle.write("uri,identity\n" + "".join(rows))
    started = time.time() * 1000
    cfg = ExtractConfig(
        inputs=(manifest,),
        out=os.path.join(workdir, "extract"),
        size=128,
        workers=3,  # more than the CPU node holds: the rest would land on the GPU node
        segment_frames=4,  # three segments a clip, so every actor has work
        label_selector="node-kind=cpu",
    )
    summary = run_extract(cfg)
    assert summary.n_failed == 0 and summary.counts.faces > 0, summary
    assert summary.counts.videos == 2, summary
    return actor_nodes("FaceExtractor", started)


def run_render_stage(clip: str, workdir: str) -> list[str]:
    """Render with --gpu: its actors ask for GPU fractions, which only the GPU node has
    (the model runs on the CPU there, as torch sees no CUDA device)."""
    import torch

    from ops.checkpoint import save_checkpoint
    from ops.model import ModelConfig, SwapAutoencoder
    from pipelines.config import RenderConfig
    from pipelines.render.driver import run_render

    torch.manual_seed(0)
    checkpoint = os.path.join(workdir, "checkpoint")
    model = SwapAutoencoder(ModelConfig(resolution=64, width=8, latent_dim=32))
    save_checkpoint(checkpoint, model, step=0, coverage=1.5, size=128)
    started = time.time() * 1000
    cfg = RenderConfig(
        checkpoint=checkpoint,
        inputs=(clip,),
        out=os.path.join(workdir, "render"),
        workers=2,
        gpu=True,
        gpus_per_worker=0.5,
    )
    summary = run_render(cfg)
    assert summary.n_failed == 0, summary
    return actor_nodes("FaceSwapper", started)


def run_train_stage(workdir: str) -> list[str]:
    """The real train stage with --label-selector node-kind=gpu (the GPU group's label),
    on the faces of a and b that the extract stage wrote.

    --gpu itself needs CUDA, which this machine lacks; the selector is what pins the
    workers here, and on a cluster --gpu adds the GPU request on top of it.
    """
    from pipelines.config import TrainConfig
    from pipelines.train.driver import run_train

    faces = os.path.join(workdir, "extract")
    started = time.time() * 1000
    cfg = TrainConfig(
        a=os.path.join(faces, "faces", "a"),
        b=os.path.join(faces, "faces", "b"),
        out=os.path.join(workdir, "train"),
        steps=2,
        save_every=2,
        batch_size=2,
        model="original",
        width=8,
        latent_dim=32,
        holdout_videos=0,  # placement only: no held-out scorer to start
        label_selector="node-kind=gpu",
    )
    summary = run_train(cfg)
    assert summary.step == 2 and summary.checkpoint, summary
    return actor_nodes("RayTrainWorker", started)


def run_pretrain_stage(cluster: Cluster, workdir: str) -> dict:
    """`rayswap pretrain` with 2 workers of 1 CPU on the CPU nodes (a second one joins
    now), so the two DDP ranks run on two nodes; the pool is the faces extract wrote."""
    from pipelines.config import PretrainConfig
    from pipelines.train.pretrain import run_pretrain

    cluster.add_node(num_cpus=1, labels={"node-kind": "cpu"})
    cluster.wait_for_nodes()
    started = time.time() * 1000
    cfg = PretrainConfig(
        faces=(os.path.join(workdir, "extract", "faces"),),
        out=os.path.join(workdir, "pretrain"),
        workers=2,
        cpus_per_worker=1,
        steps=2,
        save_every=2,
        batch_size=2,
        model="original",
        width=8,
        latent_dim=32,
        label_selector="node-kind=cpu",
    )
    summary = run_pretrain(cfg)
    assert summary.step == 2 and summary.checkpoint, summary
    return {"nodes": actor_nodes("RayTrainWorker", started), "hashes": summary.weight_hashes}


def main(clips: list[str], workdir: str) -> dict:
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "labels": {"node-kind": "head"},
            "include_dashboard": False,  # nothing here asks the dashboard
        },
    )
    nodes = {"head": cluster.head_node.node_id}
    # the GPU node has more free CPUs than the CPU node, as on a real cluster
    nodes["cpu"] = cluster.add_node(num_cpus=1, labels={"node-kind": "cpu"}).node_id
    nodes["gpu"] = cluster.add_node(
        num_cpus=3, num_gpus=1, resources={"fake_gpu": 1}, labels={"node-kind": "gpu"}
    ).node_id  # a logical GPU: Ray schedules on it, torch still sees no CUDA device
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_no_progress_timeout_s = 120
    try:
        ran = {
            "extract": run_extract_stage(clips, workdir),
            "render": run_render_stage(clips[0], workdir),
            "train": run_train_stage(workdir),
        }
        pretrain = run_pretrain_stage(cluster, workdir)
        ran["pretrain"] = pretrain["nodes"]
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {"nodes": nodes, "ran": ran, "pretrain_hashes": pretrain["hashes"]}


if __name__ == "__main__":
    print("PLACEMENT " + json.dumps(main(sys.argv[1:3], sys.argv[3])))
