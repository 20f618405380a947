"""The `rayswap train` and `rayswap export` commands.

rayswap train --a data/a/faces/a --b data/b/faces/b --out runs/ab --steps 2000
rayswap pretrain data/many/faces --out runs/pretrained --steps 20000
rayswap export runs/ab --direction a2b --format onnx --out a2b.onnx
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from ops import storage
from ops.curves import CURVES_FILE
from ops.divergence import DivergenceWatch
from pipelines.cli.app import command, preflight, run_step
from pipelines.cli.common import Progress
from pipelines.config import ExportConfig, PretrainConfig, TrainConfig


def _resumed(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    from pipelines.train.resume import resumed_values

    return resumed_values(values, given)


@command(TrainConfig, defaults=_resumed)
def train(cfg: TrainConfig) -> None:
    """Train the shared-encoder / two-decoder swap model on faces of a and b, on Ray Train.

    Checkpoints go to OUT/train/checkpoint_<step>/ every --save-every steps, with a preview
    grid (A, A->A, A->B, B, B->B, B->A). Rerunning the same command resumes from the latest
    checkpoint, with the model flags not given (--model, sizes, --resolution, --coverage)
    taken from that checkpoint; a worker that dies is replaced and training goes on from
    the last checkpoint.

    Each worker holds its faces on its device when they fit (--device-cache-gb) and
    augments every batch there. A NaN or infinite loss stops the run (exit 1) at the next
    --log-every step, naming the step and the last good checkpoint; no checkpoint of
    non-finite weights is written.
    """
    from pipelines.train.driver import prepare_train, run_train

    infos = preflight(prepare_train, cfg)
    typer.echo(
        f"train: {infos['a'].rows} faces of a, {infos['b'].rows} of b -> {cfg.out}", err=True
    )
    _run_and_report("train", run_train, cfg, infos)


@command(PretrainConfig, defaults=_resumed)
def pretrain(cfg: PretrainConfig) -> None:
    """Pretrain the swap model on faces of many people, for pairs to start from (--init).

    FACES are faces datasets (extract's OUT/faces with a folder per identity, or one
    identity's folder). Every identity gives at most --per-identity faces (default: the
    median count), so no single person dominates, and both sides of the model draw from
    that one pool: the encoder, the bottlenecks and both decoders learn faces in general.
    Everything else is `rayswap train`: workers, --gpu, checkpoints, resume, restarts,
    NaN guard, metrics.jsonl, preview.png, curves.png and TensorBoard events.

    Then start a pair from it: rayswap train --a ... --b ... --init OUT. original copies
    every part; df all but its bottleneck (inter); liae all but inter_ab and inter_b.
    """
    from pipelines.train.pretrain import prepare_pretrain, run_pretrain

    info = preflight(prepare_pretrain, cfg)
    kept = sum(info.kept.values())
    typer.echo(
        f"pretrain: {len(info.found)} identities, {kept} of {sum(info.found.values())} faces "
        f"kept (at most {info.cap} each) -> {cfg.out}",
        err=True,
    )
    _run_and_report("pretrain", run_pretrain, cfg, info)


def _run_and_report(stage: str, run: Callable, cfg: TrainConfig, prepared: Any) -> None:
    """Run the training, show its progress line, then print its summary."""
    progress = Progress()
    watch = DivergenceWatch()

    def show(metrics: dict) -> None:  # every metrics line; in place on a terminal
        warning = watch.add(metrics)
        if warning:
            progress.close()  # the warning on a line of its own, under the progress line
            typer.echo(f"warning: {warning}", err=True)
        progress.show(
            f"{stage}: step {metrics['step']}/{cfg.steps}  loss_a {metrics['loss_a']:.4f}  "
            f"loss_b {metrics['loss_b']:.4f}  {metrics['images_per_s']:.1f} images/s  "
            f"data wait {metrics.get('data_wait_fraction', 0.0):.2f}"
            + holdout_text(metrics.get("holdout")),
            force=True,
        )

    summary = run_step(stage, run, cfg, prepared, on_progress=show)
    progress.close()
    m = summary.last_metrics
    faces = ", ".join(
        f"{side}: {info.decoded} used, {info.skipped} skipped"
        for side, info in summary.faces.items()
    )
    if summary.init:
        init = summary.init
        fresh = ", ".join(init["reinitialised"]) or "nothing"
        typer.echo(
            f"init: {', '.join(init['copied'])} from {init['path']} (step {init['step']}); "
            f"re-initialised: {fresh}"
        )
    typer.echo(
        f"{stage}: steps {summary.started_from} -> {summary.step} in {summary.seconds:.1f} s"
        + (f", loss_a {m['loss_a']:.4f}, loss_b {m['loss_b']:.4f}" if m else "")
    )
    if cfg.max_train_s is not None and summary.step < cfg.steps:
        typer.echo(
            f"stopped: --max-train-s {cfg.max_train_s:g} reached at step {summary.step} of "
            f"{cfg.steps}; rerun to go on"
        )
    if summary.resumed_from != summary.started_from:
        typer.echo(
            f"recovered: a worker failed; training went on from the checkpoint of step "
            f"{summary.resumed_from} (steps after it were trained again)"
        )
    typer.echo(f"faces: {faces}; {_feed_text(summary.feed)}")
    if summary.holdout_note:
        typer.echo(summary.holdout_note)
    if summary.best is not None:
        typer.echo(
            f"best swap on held-out faces: step {summary.best['step']}{holdout_text(summary.best)}"
            f" -> {summary.best_path}"
        )
    typer.echo(f"checkpoint: {summary.checkpoint}")
    if watch.message:
        typer.echo(f"warning: {watch.message}")
    typer.echo(f"curves: {storage.join(cfg.out, CURVES_FILE)}; tensorboard --logdir {cfg.out}")


def holdout_text(score: dict | None) -> str:
    """The held-out swap numbers of a score, for the progress line ("" without one)."""
    if not score:
        return ""
    if "error" in score:
        return f"  held-out (step {score['step']}): not scored ({score['error']})"

    def side(direction: str) -> str:
        ids = score.get(f"holdout_id_retrieval_{direction}")
        pose = score.get(f"holdout_pose_error_{direction}")
        pose_text = "-" if pose is None else f"{pose:.3f}"
        return f"{direction} id {ids:.2f} pose {pose_text}"

    return (
        f"  held-out (step {score['step']}): {side('a2b')}, {side('b2a')}, "
        f"{score['holdout_seconds']:.1f} s"
    )


def _feed_text(feed: dict) -> str:
    if not feed:
        return "feed unknown"
    size = f"{feed['bytes'] / 2**20:.0f} MiB per worker"
    limit = f"--device-cache-gb {feed['limit_bytes'] / 2**30:.2f}"
    if feed["cached"]:
        return f"held on the device ({size}, read in {feed['seconds']:.1f} s; limit {limit})"
    return f"streamed ({size} is over {limit})"


@command(ExportConfig)
def export(cfg: ExportConfig) -> None:
    """Export the swap path (encoder + the target's decoder) as TorchScript or ONNX.

    The exported model takes "face" (N, 3, R, R) RGB in [0, 1] and returns "rgb" and "mask".
    It is checked against the eager model on fresh inputs before it is written.
    """
    from pipelines.export import prepare_export, run_export

    prepared = preflight(prepare_export, cfg)
    summary = run_step("export", run_export, cfg, prepared)
    typer.echo(
        f"export: {cfg.direction} of {summary.checkpoint} (step {summary.step}, "
        f"{summary.resolution} px) -> {summary.out} as {cfg.format}; "
        f"max |exported - eager| = {summary.max_abs_diff:.2e}"
    )
