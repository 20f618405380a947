"""Pretrain stage: the swap model on faces of many people, for pairs to start from.

    rayswap pretrain data/faces --out runs/pretrained --steps 20000 --workers 4 --gpu
    rayswap train --a ... --b ... --init runs/pretrained --out runs/ab

The pool of faces (`pipelines.train.pool`: every identity of FACES, at most
--per-identity faces each) feeds both sides of the model, so the encoder, the
bottlenecks and both decoders all learn faces in general. The run is `rayswap train`'s in
every other way (the same worker, DDP, checkpoints, resume, restarts after a failed
worker, NaN guard, metrics, preview, TensorBoard), and its checkpoints record the pool in
config.json under "pretrain". What a pair takes from it is `ops.init_weights`' rule.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from pipelines.config import PretrainConfig
from pipelines.runtime.checks import check_out_dir, runs_local
from pipelines.runtime.ray_setup import connect_ray
from pipelines.train.data import check_resume, model_coverage
from pipelines.train.driver import TrainSummary, check_resources, fit, local_gpus
from pipelines.train.pool import PoolInfo, inspect_pool, load_pool
from pipelines.train.worker import model_config_of


def prepare_pretrain(cfg: PretrainConfig) -> PoolInfo:
    """Ray-free pre-flight: OUT writable, the pool usable, any checkpoint in OUT compatible."""
    check_out_dir(cfg.out)
    info = inspect_pool(cfg)
    if cfg.coverage is not None and cfg.coverage > info.coverage + 1e-4:
        raise ValueError(
            f"--coverage: {cfg.coverage:g} is wider than the faces' coverage {info.coverage:g}"
        )
    check_resume(cfg, model_config_of(cfg), model_coverage(cfg, info))
    if runs_local(cfg.address):
        check_resources(cfg, float(os.cpu_count() or 1), local_gpus())
    return info


def run_pretrain(
    cfg: PretrainConfig,
    info: PoolInfo | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> TrainSummary:
    """Pretrain (or resume) on the pool of FACES; returns what happened."""
    started = time.perf_counter()
    info = info or prepare_pretrain(cfg)
    connect_ray(cfg.address)
    dataset, preview_a, preview_b = load_pool(cfg, info)
    rows = info.decoded - 2 * cfg.preview_faces
    loop_config = {
        "preview_a": preview_a,
        "preview_b": preview_b,
        "coverage": model_coverage(cfg, info),
        "size": info.size,
        "rows": {"a": rows, "b": rows},
        "pretrain": info.to_dict(),
    }
    datasets = {"a": dataset, "b": dataset}
    return fit(cfg, datasets, loop_config, {"pool": info}, on_progress, started)
