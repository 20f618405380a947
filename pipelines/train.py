"""Train stage: the shared-encoder / two-decoder model, data-parallel on Ray Train.

    rayswap train --a OUT/faces/a --b OUT/faces/b --out runs/ab --steps 2000 --workers 2

Both identities' faces Parquet (written by `rayswap extract`) are read with Ray Data,
decoded once at the training resolution and kept in the object store; every epoch they
are augmented afresh (random warp, affine, flip, colour) on CPU, by Ray Data tasks
(`--augment-in data`, the default) or inside each train worker (`--augment-in worker`).
A TorchTrainer runs DDP over `--workers` (gloo and float32 on CPU; NCCL and bf16
autocast with `--gpu`).

Outputs under `--out` (a local folder or an object-store URI):
    OUT/train/checkpoint_<step>/   model.pt, optimizer.pt, config.json, preview.png
    OUT/metrics.jsonl              one JSON line per --log-every steps (loss_a, loss_b, images/s)
    OUT/preview.png                the latest preview grid (A, A->A, A->B, B, B->B, B->A)
Re-running the same command resumes from the latest checkpoint (same RunConfig name and
storage path); a worker that dies is replaced and training goes on from the last
checkpoint (FailureConfig).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from ops import storage
from ops.augment import augment_batch
from ops.checkpoint import (
    MODEL_FILE,
    OPTIMIZER_FILE,
    find_latest_checkpoint,
    load_state,
    read_checkpoint_config,
    save_checkpoint,
)
from ops.model import ModelConfig, SwapAutoencoder
from ops.preview import encode_png, preview_grid
from ops.train_step import make_optimizer, train_step
from pipelines.config import TrainConfig, parse_label_selector
from pipelines.ray_setup import connect_ray
from pipelines.train_data import FacesInfo, check_resume, inspect_faces, load_faces

RUN_NAME = "train"
METRICS_FILE = "metrics.jsonl"
FAIL_MARKER = ".fail_at_step_done"


@dataclass
class TrainSummary:
    """What a training run did: printed by the CLI."""

    step: int
    checkpoint: str | None
    seconds: float
    faces: dict[str, FacesInfo]
    last_metrics: dict[str, float] = field(default_factory=dict)
    weight_hashes: list[str] = field(default_factory=list)
    resumed_from: int = 0


def model_config_of(cfg: TrainConfig) -> ModelConfig:
    return ModelConfig(resolution=cfg.resolution, width=cfg.width, latent_dim=cfg.latent_dim)


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 over every tensor of the state dict, in order: equal weights, equal hash."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _batches(shard: Any, cfg: TrainConfig, rng: np.random.Generator, device: Any) -> Iterator:
    """Endless stream of torch batches from one identity's shard, epoch after epoch."""
    shuffle = 4 * cfg.batch_size
    while True:
        if cfg.augment_in == "data":  # already augmented by Ray Data tasks
            yield from shard.iter_torch_batches(
                batch_size=cfg.batch_size,
                dtypes=torch.float32,
                device=device,
                drop_last=True,
                local_shuffle_buffer_size=shuffle,
            )
            continue
        for rows in shard.iter_batches(
            batch_size=cfg.batch_size,
            batch_format="numpy",
            drop_last=True,
            local_shuffle_buffer_size=shuffle,
        ):
            arrays = augment_batch(rows["face"], rows["landmarks"], rows["coverage"], rng)
            yield {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}


def _restore(model: SwapAutoencoder, optimizer: torch.optim.Optimizer) -> int:
    """Load the latest checkpoint Ray Train hands us (retry or rerun); return its step."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as directory:
        model.load_state_dict(load_state(directory, MODEL_FILE))
        optimizer.load_state_dict(load_state(directory, OPTIMIZER_FILE))
        return int(read_checkpoint_config(directory)["step"])


class MetricsLog:
    """Rank 0's JSON lines: appended locally, rewritten at checkpoints on object stores."""

    def __init__(self, out: str, resume_step: int) -> None:
        self.path = storage.join(out, METRICS_FILE)
        self.local = not storage.is_uri(out)
        self.lines: list[str] = []
        if storage.exists(self.path):  # keep the history up to the checkpoint we resume from
            old = storage.read_bytes(self.path).decode().splitlines()
            self.lines = [ln for ln in old if ln and json.loads(ln)["step"] <= resume_step]
        self.flush()

    def add(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True)
        self.lines.append(line)
        if self.local:
            with open(storage.resolve(self.path)[1], "a") as handle:
                handle.write(line + "\n")

    def flush(self) -> None:
        payload = "".join(f"{ln}\n" for ln in self.lines).encode()
        storage.write_bytes_atomic(self.path, payload)


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """One Ray Train worker: restore, then step through both identities' shards."""
    cfg = TrainConfig(**config["train"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    torch.manual_seed(cfg.seed)  # equal initial weights on every rank (DDP also broadcasts)

    # [1] build the model and restore the latest checkpoint (worker retry or rerun)
    raw_model = SwapAutoencoder(model_config_of(cfg))
    optimizer = make_optimizer(raw_model, cfg.lr)
    step = start_step = _restore(raw_model, optimizer)

    # [2] prepare the model: DDP (gloo on CPU, NCCL on GPU) and the worker's device
    model = ray.train.torch.prepare_model(raw_model)
    device = ray.train.torch.get_device()
    optimizer_to(optimizer, device)
    autocast = torch.bfloat16 if cfg.gpu else None

    # [3] shard the datasets: each worker reads its own part of a and of b
    rng = np.random.default_rng([cfg.seed, rank, start_step])
    batches_a = _batches(ray.train.get_dataset_shard("a"), cfg, rng, device)
    batches_b = _batches(ray.train.get_dataset_shard("b"), cfg, rng, device)

    log = MetricsLog(cfg.out, start_step) if rank == 0 else None
    images_per_step = 2 * cfg.batch_size * world
    window = {"t0": time.perf_counter(), "steps": 0, "data_s": 0.0, "a": 0.0, "b": 0.0}
    last: dict[str, float] = {}
    while step < cfg.steps:
        _maybe_fail(cfg, step, rank, world)
        t_data = time.perf_counter()
        batch_a, batch_b = next(batches_a), next(batches_b)
        window["data_s"] += time.perf_counter() - t_data
        losses = train_step(model, optimizer, batch_a, batch_b, autocast)
        step += 1
        window["steps"] += 1
        window["a"] += losses["loss_a"]
        window["b"] += losses["loss_b"]
        if step % cfg.log_every == 0 or step == cfg.steps:
            elapsed = time.perf_counter() - window["t0"]
            last = {
                "step": step,
                "loss_a": window["a"] / window["steps"],
                "loss_b": window["b"] / window["steps"],
                "images_per_s": images_per_step * window["steps"] / elapsed,
                "data_wait_fraction": window["data_s"] / elapsed,
                "time": time.time(),
            }
            if log is not None:
                log.add(last)
            window = {"t0": time.perf_counter(), "steps": 0, "data_s": 0.0, "a": 0.0, "b": 0.0}

        # [4] report to Ray Train only with a checkpoint: each report can block ~2 s
        if step % cfg.save_every == 0 or step == cfg.steps:
            _report_checkpoint(cfg, config, raw_model, optimizer, step, rank, last, log)

    hashes = _gather_hashes(raw_model, world)
    return {"step": step, "start_step": start_step, "weight_hashes": hashes, "metrics": last}


def _report_checkpoint(
    cfg: TrainConfig,
    config: dict[str, Any],
    model: SwapAutoencoder,
    optimizer: torch.optim.Optimizer,
    step: int,
    rank: int,
    metrics: dict[str, float],
    log: MetricsLog | None,
) -> None:
    """Every rank reports; rank 0 attaches the checkpoint directory."""
    with tempfile.TemporaryDirectory(prefix="rayswap-ckpt-") as directory:
        checkpoint = None
        if rank == 0:
            preview = encode_png(preview_grid(model, config["preview_a"], config["preview_b"]))
            save_checkpoint(
                directory,
                model,
                step,
                coverage=config["coverage"],
                size=config["size"],
                optimizer=optimizer,
                train_config=config["train"],
                preview_png=preview,
            )
            storage.write_bytes_atomic(storage.join(cfg.out, "preview.png"), preview)
            if log is not None:
                log.flush()
            checkpoint = Checkpoint.from_directory(directory)
        reported = {"step": step, **{k: v for k, v in metrics.items() if k != "step"}}
        ray.train.report(
            reported, checkpoint=checkpoint, checkpoint_dir_name=f"checkpoint_{step:08d}"
        )


def _maybe_fail(cfg: TrainConfig, step: int, rank: int, world: int) -> None:
    """Fault injection for tests: the last rank raises once at `fail_at_step` (first attempt)."""
    if cfg.fail_at_step is None or step != cfg.fail_at_step or rank != world - 1:
        return
    marker = storage.join(cfg.out, FAIL_MARKER)
    if storage.exists(marker):
        return
    storage.write_bytes_atomic(marker, str(step).encode())
    raise RuntimeError(f"injected failure at step {step} (--fail-at-step)")


def _gather_hashes(model: torch.nn.Module, world: int) -> list[str]:
    own = weights_hash(model)
    if world == 1 or not torch.distributed.is_initialized():
        return [own]
    found: list[Any] = [None] * world
    torch.distributed.all_gather_object(found, own)
    return [str(h) for h in found]


def optimizer_to(optimizer: torch.optim.Optimizer, device: Any) -> None:
    """Move restored optimizer state onto the worker's device."""
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != "step":
                state[key] = value.to(device)


def prepare_train(cfg: TrainConfig) -> dict[str, FacesInfo]:
    """Ray-free pre-flight: both faces datasets usable, any checkpoint in OUT compatible."""
    infos = {side: inspect_faces(path, side, cfg) for side, path in (("a", cfg.a), ("b", cfg.b))}
    if infos["a"].coverage != infos["b"].coverage:
        raise ValueError(
            f"--b: faces were extracted with coverage {infos['b'].coverage}, but --a with "
            f"{infos['a'].coverage}; extract both identities with the same --coverage"
        )
    check_resume(cfg, model_config_of(cfg), infos["a"].coverage)
    return infos


def _storage_args(out: str) -> dict[str, Any]:
    if not storage.is_uri(out):
        return {"storage_path": storage.resolve(out)[1]}
    filesystem, inner = storage.resolve(out)
    return {"storage_path": inner, "storage_filesystem": filesystem}


def _watch(path: str, on_progress: Callable[[dict], None], stop: threading.Event) -> None:
    """Show the latest metrics line while fit() runs (local outputs: every 2 s)."""
    seen = ""
    while not stop.wait(2.0 if not storage.is_uri(path) else 15.0):
        try:
            lines = storage.read_bytes(path).decode().splitlines() if storage.exists(path) else []
        except OSError:
            continue
        if lines and lines[-1] != seen:
            seen = lines[-1]
            on_progress(json.loads(seen))


def run_train(
    cfg: TrainConfig,
    infos: dict[str, FacesInfo] | None = None,
    on_progress: Callable[[dict], None] | None = None,
) -> TrainSummary:
    """Train (or resume) on the faces of a and b; returns what happened."""
    started = time.perf_counter()
    infos = infos or prepare_train(cfg)
    connect_ray(cfg.address)
    storage.make_dirs(cfg.out)

    # [1] datasets: decoded once, augmented afresh every epoch
    datasets, previews = {}, {}
    for side, path in (("a", cfg.a), ("b", cfg.b)):
        datasets[side], previews[side] = load_faces(path, side, cfg, infos[side])

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "train": asdict(cfg),
            "preview_a": previews["a"],
            "preview_b": previews["b"],
            "coverage": infos["a"].coverage,
            "size": infos["a"].size,
        },
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
    finally:
        stop.set()
    returned = result.return_value or {}
    return TrainSummary(
        step=int(returned.get("step", 0)),
        checkpoint=find_latest_checkpoint(storage.join(cfg.out, RUN_NAME)),
        seconds=time.perf_counter() - started,
        faces=infos,
        last_metrics=returned.get("metrics", {}),
        weight_hashes=returned.get("weight_hashes", []),
        resumed_from=int(returned.get("start_step", 0)),
    )
