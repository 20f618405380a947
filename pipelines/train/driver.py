"""Train stage: the shared-encoder / two-decoder model, data-parallel on Ray Train.

    rayswap train --a OUT/faces/a --b OUT/faces/b --out runs/ab --steps 2000 --workers 2

Both identities' faces Parquet (written by `rayswap extract`) are read with Ray Data,
decoded once at the training resolution and kept in the object store. Each worker holds
its share on its device when it fits (else streams it, `pipelines.train.feed`) and
augments every batch afresh there (random warp, affine, flip, colour; `ops.augment`).
A TorchTrainer runs DDP over `--workers`: gloo and float32 on CPU; with `--gpu`, NCCL,
one GPU per worker, the forward pass under bf16 autocast (losses in float32), fused
Adam and channels_last; `--compile` adds torch.compile. Losses stay on the device and
are read every `--log-every` steps; a non-finite loss stops the run there, before any
checkpoint of its weights is written.

Outputs under `--out` (a local folder or an object-store URI):
    OUT/train/checkpoint_<step>/   model.pt, optimizer.pt, config.json, preview.png
    OUT/metrics.jsonl              one JSON line per --log-every steps (loss_a, loss_b, images/s)
    OUT/preview.png                the latest preview grid (A, A->A, A->B, B, B->B, B->A)
Re-running the same command resumes from the latest checkpoint (same RunConfig name and
storage path); a worker that dies is replaced and training goes on from the last
checkpoint (FailureConfig).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import ray
import ray.train
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from ops import storage
from ops.checkpoint import find_latest_checkpoint, read_checkpoint_config
from ops.init_weights import plan_init
from pipelines.config import TrainConfig, parse_label_selector
from pipelines.config.flags import BadInvocation
from pipelines.runtime.checks import check_out_dir, runs_local
from pipelines.runtime.ray_setup import connect_ray
from pipelines.train.data import (
    FacesInfo,
    check_resume,
    inspect_faces,
    load_faces,
    model_coverage,
)
from pipelines.train.holdout import best_checkpoint, start_scorer
from pipelines.train.worker import METRICS_FILE, model_config_of, train_loop_per_worker

RUN_NAME = "train"


class NonFiniteLossError(FloatingPointError):
    """Training stopped because a loss was NaN or infinite; no checkpoint holds those weights."""


@dataclass
class TrainSummary:
    """What a training run did: printed by the CLI."""

    step: int
    checkpoint: str | None
    seconds: float
    faces: dict[str, FacesInfo]
    last_metrics: dict[str, float] = field(default_factory=dict)
    weight_hashes: list[str] = field(default_factory=list)
    resumed_from: int = 0  # step the last attempt began at (after any worker failure)
    started_from: int = 0  # step of the checkpoint this command began at
    feed: dict[str, Any] = field(default_factory=dict)  # on the device or streamed, bytes
    init: dict[str, Any] | None = None  # the --init plan this run started from (InitPlan)
    holdout_note: str = ""  # what was held out and scored, or why nothing was
    best: dict[str, Any] | None = None  # the held-out score of the best swap so far
    best_path: str | None = None  # its checkpoint (may be gone: --keep-checkpoints)


def check_resources(cfg: TrainConfig, cpus: float, gpus: float) -> None:
    """The workers must fit the cluster, else Ray Train waits for them forever."""
    need = cfg.workers * cfg.cpus_per_worker
    if need > cpus:
        fits = (
            [f"--workers {int(cpus // cfg.cpus_per_worker)}"] if cpus >= cfg.cpus_per_worker else []
        )
        fits += [f"--cpus-per-worker {cpus / cfg.workers:g}"] if cpus >= cfg.workers else []
        raise BadInvocation(
            f"--workers {cfg.workers} x --cpus-per-worker {cfg.cpus_per_worker:g} needs "
            f"{need:g} CPUs, but Ray has {cpus:g}" + (f"; use {' or '.join(fits)}" if fits else "")
        )
    if cfg.gpu and cfg.workers > gpus:
        raise BadInvocation(
            f"--gpu: --workers {cfg.workers} needs {cfg.workers} GPUs (one per worker), but "
            f"Ray has {gpus:g}" + (f"; use --workers {int(gpus)}" if gpus >= 1 else "")
        )


def prepare_train(cfg: TrainConfig) -> dict[str, FacesInfo]:
    """Ray-free pre-flight: OUT writable, both faces datasets usable, any checkpoint in OUT
    compatible."""
    check_out_dir(cfg.out)
    infos = {side: inspect_faces(path, side, cfg) for side, path in (("a", cfg.a), ("b", cfg.b))}
    if infos["a"].coverage != infos["b"].coverage:
        raise ValueError(
            f"--b: faces were extracted with coverage {infos['b'].coverage}, but --a with "
            f"{infos['a'].coverage}; extract both identities with the same --coverage"
        )
    faces_coverage = infos["a"].coverage
    if cfg.coverage is not None and cfg.coverage > faces_coverage + 1e-4:
        raise ValueError(
            f"--coverage: {cfg.coverage:g} is wider than the faces' coverage {faces_coverage:g}; "
            f"give at most {faces_coverage:g}, or extract with --coverage {cfg.coverage:g}"
        )
    check_resume(cfg, model_config_of(cfg), model_coverage(cfg, infos["a"]))
    if cfg.init is not None:
        try:
            plan_init(cfg.init, model_config_of(cfg))
        except (ValueError, FileNotFoundError) as exc:
            raise ValueError(
                f"--init: {exc}; pretrain (or train) with the same --model, sizes and "
                "--resolution as this run"
            ) from exc
    if runs_local(cfg.address):
        check_resources(cfg, float(os.cpu_count() or 1), local_gpus())  # before Ray starts
    return infos


def _storage_args(out: str) -> dict[str, Any]:
    if not storage.is_uri(out):
        return {"storage_path": storage.resolve(out)[1]}
    filesystem, inner = storage.resolve(out)
    return {"storage_path": inner, "storage_filesystem": filesystem}


def _watch(path: str, on_progress: Callable[[dict], None], stop: threading.Event) -> None:
    """Hand every new metrics line to `on_progress` while fit() runs (local: every 2 s)."""
    shown = 0
    while not stop.wait(2.0 if not storage.is_uri(path) else 15.0):
        shown = _show_new(path, on_progress, shown)
    _show_new(path, on_progress, shown)  # the lines of the last seconds


def _show_new(path: str, on_progress: Callable[[dict], None], shown: int) -> int:
    """Call `on_progress` for the lines after the first `shown`; return the new count."""
    try:
        lines = storage.read_bytes(path).decode().splitlines() if storage.exists(path) else []
    except OSError:
        return shown
    complete = [line for line in lines if line.endswith("}")]  # a line being written waits
    for line in complete[shown:]:
        on_progress(json.loads(line))
    return max(shown, len(complete))


def run_train(
    cfg: TrainConfig,
    infos: dict[str, FacesInfo] | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> TrainSummary:
    """Train (or resume) on the faces of a and b; returns what happened."""
    started = time.perf_counter()
    infos = infos or prepare_train(cfg)
    connect_ray(cfg.address)
    # [1] datasets: decoded once; the workers augment every batch afresh on their device
    datasets, previews = {}, {}
    for side, path in (("a", cfg.a), ("b", cfg.b)):
        datasets[side], previews[side] = load_faces(path, side, cfg, infos[side])
    loop_config = {
        "preview_a": previews["a"],
        "preview_b": previews["b"],
        "coverage": model_coverage(cfg, infos["a"]),  # what the model sees; render too
        "size": infos["a"].size,
        "rows": {side: info.decoded - cfg.preview_faces for side, info in infos.items()},
        "init": _init_plan(cfg),
        "checkpoints": storage.join(cfg.out, RUN_NAME),
    }
    scorer, holdout_note = start_scorer(cfg, infos, loop_config["coverage"])
    loop_config["scorer"] = scorer
    try:
        summary = fit(cfg, datasets, loop_config, infos, on_progress, started)
    finally:
        if scorer is not None:
            ray.kill(scorer)
    summary.holdout_note = holdout_note
    summary.best = best_checkpoint(read_metrics(cfg.out))
    if summary.best is not None:
        summary.best_path = storage.join(
            cfg.out, RUN_NAME, f"checkpoint_{int(summary.best['step']):08d}"
        )
    return summary


def read_metrics(out: str) -> list[dict[str, Any]]:
    """The metrics lines of a run (empty when it has none)."""
    path = storage.join(out, METRICS_FILE)
    if not storage.exists(path):
        return []
    return [json.loads(line) for line in storage.read_bytes(path).decode().splitlines() if line]


def _init_plan(cfg: TrainConfig) -> dict | None:
    """--init's plan when this run starts from it (no checkpoint in --out yet), else None."""
    if cfg.init is None or find_latest_checkpoint(storage.join(cfg.out, RUN_NAME)):
        return None
    return plan_init(cfg.init, model_config_of(cfg)).to_dict()


def fit(
    cfg: TrainConfig,
    datasets: dict[str, Any],
    loop_config: dict[str, Any],
    infos: dict[str, FacesInfo],
    on_progress: Callable[[dict], None] | None,
    started: float,
) -> TrainSummary:
    """Run the TorchTrainer over `datasets` ({"a": ..., "b": ...}) and sum up the run.

    loop_config: what every worker needs beside the flags (previews, coverage, crop size,
    rows per side, the --init plan, the pretraining pool).
    """
    resources = ray.cluster_resources()
    check_resources(cfg, resources.get("CPU", 0.0), resources.get("GPU", 0.0))
    storage.make_dirs(cfg.out)
    begun = find_latest_checkpoint(storage.join(cfg.out, RUN_NAME))
    started_from = int(read_checkpoint_config(begun)["step"]) if begun else 0
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"train": asdict(cfg), **loop_config},
        scaling_config=ScalingConfig(
            num_workers=cfg.workers,
            use_gpu=cfg.gpu,
            resources_per_worker={"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.gpu else {})},
            label_selector=parse_label_selector(cfg.label_selector),  # e.g. GPU nodes only
        ),
        datasets=datasets,
        run_config=RunConfig(
            name=RUN_NAME,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
            **_storage_args(cfg.out),
        ),
    )
    stop = threading.Event()
    if on_progress is not None:
        watcher = threading.Thread(
            target=_watch,
            args=(storage.join(cfg.out, METRICS_FILE), on_progress, stop),
            daemon=True,
        )
        watcher.start()
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as exc:
        raise RuntimeError(
            f"training failed (after up to --max-failures {cfg.max_failures} restarts): "
            f"{_root_cause(exc)}; the last checkpoint is "
            f"{find_latest_checkpoint(storage.join(cfg.out, RUN_NAME)) or 'none'}"
        ) from exc
    finally:
        stop.set()
    returned = result.return_value or {}
    if returned.get("non_finite_step") is not None:
        raise NonFiniteLossError(_non_finite_message(cfg, int(returned["non_finite_step"])))
    return TrainSummary(
        step=int(returned.get("step", 0)),
        checkpoint=find_latest_checkpoint(storage.join(cfg.out, RUN_NAME)),
        seconds=time.perf_counter() - started,
        faces=infos,
        last_metrics=returned.get("metrics", {}),
        weight_hashes=returned.get("weight_hashes", []),
        resumed_from=int(returned.get("start_step", 0)),
        started_from=started_from,
        feed=returned.get("feed", {}),
        init=loop_config.get("init"),
    )


def local_gpus() -> float:
    import torch

    return float(torch.cuda.device_count())


def _root_cause(exc: BaseException) -> str:
    """The innermost error's "TypeName: message" of a Ray Train failure."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    causes = getattr(exc, "worker_failures", None)
    if causes:
        exc = next(iter(causes.values()))
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"


def _non_finite_message(cfg: TrainConfig, step: int) -> str:
    latest = find_latest_checkpoint(storage.join(cfg.out, RUN_NAME))
    where = "none was written" if latest is None else latest
    if latest is not None:
        where += f" (step {read_checkpoint_config(latest)['step']})"
    return (
        f"training stopped: the loss was not finite (NaN or inf) at step {step}; no checkpoint "
        f"of those weights was written. The last good checkpoint: {where}. Rerunning resumes "
        f"from it; if the loss diverges again, lower --lr"
        + (" or train with --precision fp32" if cfg.gpu or cfg.precision == "bf16" else "")
    )
