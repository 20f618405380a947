"""The Ray Train worker of `rayswap train`: one DDP rank's loop, checkpoints and metrics.

Each rank builds the model, restores the latest checkpoint Ray Train hands it, moves to
its device (channels_last weights and inputs), wraps it in DDP, builds the optimizer
there (fused Adam on CUDA), optionally compiles it, opens its feeds of a and b
(`pipelines.train.feed`), then steps: augment on the device -> forward (bf16 autocast on
GPU) -> float32 losses -> backward -> step -> update the weight average. The recipe's
phases (`ops.recipe`: the learning rate, the random warp on or off) are functions of the
step, so a restored rank picks up where the checkpoint left off; the weight average is
restored from it.
Nothing waits for the device inside a step; every `--log-every` steps (and before every
checkpoint) the ranks read their losses and agree, with one all-reduce, on the first step
whose loss was not finite; if there is one, every rank stops there.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
from ray.train import Checkpoint

from ops import storage
from ops.augment import augment_batch
from ops.checkpoint import (
    EMA_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    load_state,
    read_checkpoint_config,
    save_checkpoint,
)
from ops.curves import CURVES_FILE, curves_png
from ops.init_weights import InitPlan, apply_init, encoder_parameters
from ops.model import ModelConfig, SwapAutoencoder
from ops.preview import encode_png, preview_grid
from ops.recipe import Recipe, make_ema, set_lr, unwarp, update_ema
from ops.train_step import (
    NO_BAD_STEP,
    LossWindow,
    autocast_dtype_for,
    make_optimizer,
    prepare_for_steps,
    train_step,
)
from pipelines.config import PretrainConfig, TrainConfig
from pipelines.config.train import DFL_SIZE_FIELDS
from pipelines.train.board import RunBoard
from pipelines.train.feed import open_feeds
from pipelines.train.holdout import FINAL_WAIT_S, ScoreQueue

METRICS_FILE = "metrics.jsonl"
FAIL_MARKER = ".fail_at_step_done"
KEPT_LOCAL = ("step", "holdout")  # metrics keys not reported to Ray Train


def model_config_of(cfg: TrainConfig) -> ModelConfig:
    """The model the flags ask for; sizes not given take the family's defaults."""
    if cfg.model == "original":
        sizes = {"width": cfg.width}
    else:
        sizes = {name: getattr(cfg, name) or 0 for name in DFL_SIZE_FIELDS}
    return ModelConfig(
        model=cfg.model, resolution=cfg.resolution, latent_dim=cfg.latent_dim or 0, **sizes
    )


def recipe_of(cfg: TrainConfig) -> Recipe:
    """The phases of the run (learning rate, warp, weight average) from its flags."""
    return Recipe(
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        lr_decay=cfg.lr_decay,
        lr_floor=cfg.lr_floor,
        warp_off_share=cfg.warp_off_share,
        ema_decay=cfg.ema_decay,
    )


def weights_hash(model: torch.nn.Module) -> str:
    """sha256 over every tensor of the state dict, in order: equal weights, equal hash."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


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

    def attach(self, record: dict[str, Any]) -> None:
        """Merge `record` into the last line (rewritten at the next flush)."""
        if self.lines:
            self.lines[-1] = json.dumps(json.loads(self.lines[-1]) | record, sort_keys=True)
            if self.local:
                self.flush()

    def flush(self) -> None:
        payload = "".join(f"{ln}\n" for ln in self.lines).encode()
        storage.write_bytes_atomic(self.path, payload)


def restore_state(model: SwapAutoencoder) -> tuple[int, dict | None, dict | None]:
    """Load the latest checkpoint's weights into `model`.

    Returns (step, optimizer state, weight-average state or None when it has none).
    """
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return 0, None, None
    with checkpoint.as_directory() as directory:
        model.load_state_dict(load_state(directory, MODEL_FILE))
        optimizer_state = load_state(directory, OPTIMIZER_FILE)
        has_ema = storage.exists(storage.join(directory, EMA_FILE))
        ema_state = load_state(directory, EMA_FILE) if has_ema else None
        return int(read_checkpoint_config(directory)["step"]), optimizer_state, ema_state


def first_bad_step(window: LossWindow, world: int) -> int | None:
    """The first non-finite step over all ranks (one all-reduce), or None; every rank agrees."""
    flag = window.first_bad.clone()
    if world > 1 and torch.distributed.is_initialized():
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    step = int(flag.item())
    return None if step == NO_BAD_STEP else step


def agreed(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank when it is True on any (one all-reduce on the training device)."""
    value = torch.tensor([float(flag)], device=device)
    if world > 1 and torch.distributed.is_initialized():
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item() > 0)


def _generator(device: torch.device, seed: int, rank: int, start_step: int) -> torch.Generator:
    """A device generator that differs per rank and per resume point."""
    mixed = hashlib.sha256(f"{seed}/{rank}/{start_step}".encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(mixed[:8], "little"))


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """One Ray Train worker: restore, then step through both identities' faces."""
    cfg = (PretrainConfig if "faces" in config["train"] else TrainConfig)(**config["train"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    torch.manual_seed(cfg.seed)  # equal initial weights on every rank (DDP also broadcasts)

    # [1] build the model and restore the latest checkpoint (worker retry or rerun)
    raw_model = SwapAutoencoder(model_config_of(cfg))
    step, optimizer_state, ema_state = restore_state(raw_model)
    start_step = step
    if step == 0 and config.get("init"):  # --init: a fresh run starts from those weights
        apply_init(raw_model, InitPlan(**config["init"]))
    recipe = recipe_of(cfg)

    # [2] prepare the model: device, DDP (gloo on CPU, NCCL on GPU), optimizer on the device
    device = ray.train.torch.get_device()
    # NHWC weights and inputs on every device: faster convolutions on GPU, and on CPU too
    # (1.03-1.18x per step for every model family; docs/benchmarks.md, "Train")
    _, step_model = prepare_for_steps(
        raw_model,
        True,
        cfg.compile,
        wrap=lambda module: ray.train.torch.prepare_model(module, move_to_device=device),
    )
    optimizer = make_optimizer(raw_model, cfg.lr)  # fused on CUDA: built after the move
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)  # casts the state onto the device
    autocast = autocast_dtype_for(cfg.precision, cfg.gpu)
    ema = make_ema(raw_model) if recipe.ema_decay > 0 else None  # on the device, like the model
    if ema is not None and ema_state is not None:
        ema.load_state_dict(ema_state)  # else the average starts from the weights

    # [3] shard the datasets: each worker holds (or streams) its own part of a and of b
    generator = _generator(device, cfg.seed, rank, start_step)
    shards = {side: ray.train.get_dataset_shard(side) for side in ("a", "b")}
    feeds, feed_note = open_feeds(shards, config["rows"], cfg, world, device, generator)

    log = MetricsLog(cfg.out, start_step) if rank == 0 else None
    board = RunBoard(cfg.out) if rank == 0 else None
    scores = (
        ScoreQueue(config["scorer"], config["checkpoints"])
        if rank == 0 and config.get("scorer")
        else None
    )
    fresh = tuple((config.get("init") or {}).get("reinitialised", ()))
    held = encoder_parameters(raw_model, fresh)  # still while step < --freeze-encoder-steps
    images_per_step = 2 * cfg.batch_size * world
    window, last = LossWindow(device), {}
    started, data_s, window_steps = time.perf_counter(), 0.0, 0
    deadline = None if cfg.max_train_s is None else started + cfg.max_train_s
    bad_step, out_of_time = None, False
    try:
        while step < cfg.steps and not out_of_time:
            _maybe_fail(cfg, step, rank, world)
            t_data = time.perf_counter()
            raw = {side: feeds[side].next() for side in ("a", "b")}
            data_s += time.perf_counter() - t_data
            batches = [augment_batch(*raw[s], config["coverage"], generator) for s in "ab"]
            if not recipe.warp_at(step):
                batches = [unwarp(batch) for batch in batches]
            for batch in batches:  # NHWC inputs for NHWC weights
                batch["warped"] = batch["warped"].contiguous(memory_format=torch.channels_last)
            _maybe_poison(cfg, step, rank, world, batches[0])
            set_lr(optimizer, recipe.lr_at(step))
            hold = held if step < cfg.freeze_encoder_steps else ()
            losses = train_step(
                step_model, optimizer, *batches, autocast, cfg.loss, hold, cfg.eye_mouth_weight
            )
            window.add(losses, step + 1)
            step += 1
            if ema is not None:
                update_ema(ema, raw_model, recipe.ema_decay_at(step))
            window_steps += 1
            log_now = step % cfg.log_every == 0 or step == cfg.steps
            save_now = step % cfg.save_every == 0 or step == cfg.steps
            if not (log_now or save_now):
                continue
            if log_now and deadline is not None:  # --max-train-s: all ranks stop together
                out_of_time = agreed(time.perf_counter() >= deadline, world, device)
                save_now = save_now or out_of_time
            bad_step = first_bad_step(window, world)
            if bad_step is not None:
                break
            if log_now:
                elapsed = time.perf_counter() - started
                last = {
                    "step": step,
                    **window.read(),
                    "images_per_s": images_per_step * window_steps / elapsed,
                    "data_wait_fraction": data_s / elapsed,
                    "lr": recipe.lr_at(step - 1),
                    "warp": recipe.warp_at(step - 1),
                    "time": time.time(),
                }
                del last["loss"]
                if log is not None and board is not None:
                    for score in scores.collect() if scores is not None else []:
                        last["holdout"] = score  # the latest checkpoint's score
                        board.scalars(score)
                    log.add(last)
                    board.scalars({k: v for k, v in last.items() if k != "holdout"})
                started, data_s, window_steps = time.perf_counter(), 0.0, 0

            # [4] report to Ray Train only with a checkpoint: each report can block ~2 s
            if save_now:
                models = (raw_model, ema)
                logs = (log, board)
                _report_checkpoint(cfg, config, models, optimizer, step, rank, last, logs)
                if scores is not None:
                    scores.submit(step)  # scored by the actor while training goes on
        if scores is not None and bad_step is None and log is not None and board is not None:
            for score in scores.collect(FINAL_WAIT_S):  # the last checkpoint's, at least
                log.attach({"holdout": score})
                board.scalars(score)
            log.flush()
    finally:
        for feed in feeds.values():
            feed.close()
        if board is not None:
            board.close()

    hashes = _gather_hashes(raw_model, world)
    return {
        "step": step,
        "start_step": start_step,
        "weight_hashes": hashes,
        "metrics": last,
        "non_finite_step": bad_step,
        "feed": feed_note,
    }


def _report_checkpoint(
    cfg: TrainConfig,
    config: dict[str, Any],
    models: tuple[SwapAutoencoder, SwapAutoencoder | None],
    optimizer: torch.optim.Optimizer,
    step: int,
    rank: int,
    metrics: dict[str, float],
    logs: tuple[MetricsLog | None, RunBoard | None],
) -> None:
    """Every rank reports; rank 0 attaches the checkpoint directory.

    models: the trained model and its weight average (or None); the preview shows the
    average when there is one, as render will.
    """
    model, ema = models
    log, board = logs
    with tempfile.TemporaryDirectory(prefix="rayswap-ckpt-") as directory:
        checkpoint = None
        if rank == 0:
            shown = ema if ema is not None else model
            preview = encode_png(preview_grid(shown, config["preview_a"], config["preview_b"]))
            save_checkpoint(
                directory,
                model,
                step,
                coverage=config["coverage"],
                size=config["size"],
                optimizer=optimizer,
                train_config=config["train"],
                preview_png=preview,
                ema=ema,
                extra={key: config.get(key) for key in ("init", "pretrain")},
            )
            storage.write_bytes_atomic(storage.join(cfg.out, "preview.png"), preview)
            if log is not None:
                log.flush()
                curves = curves_png([json.loads(line) for line in log.lines])
                storage.write_bytes_atomic(storage.join(cfg.out, CURVES_FILE), curves)
            if board is not None:
                board.image("preview", step, preview)
                board.flush()
            checkpoint = Checkpoint.from_directory(directory)
        reported = {"step": step, **{k: v for k, v in metrics.items() if k not in KEPT_LOCAL}}
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


def _maybe_poison(cfg: TrainConfig, step: int, rank: int, world: int, batch: dict) -> None:
    """Fault injection for tests: from `nan_at_step` on, the last rank's inputs are NaN."""
    if cfg.nan_at_step is not None and step + 1 >= cfg.nan_at_step and rank == world - 1:
        batch["warped"] = torch.full_like(batch["warped"], float("nan"))


def _gather_hashes(model: torch.nn.Module, world: int) -> list[str]:
    own = weights_hash(model)
    if world == 1 or not torch.distributed.is_initialized():
        return [own]
    found: list[Any] = [None] * world
    torch.distributed.all_gather_object(found, own)
    return [str(h) for h in found]
