"""The `rayswap train` and `rayswap export` commands.

rayswap train --a data/a/faces/a --b data/b/faces/b --out runs/ab --steps 2000
rayswap export runs/ab --direction a2b --format onnx --out a2b.onnx
"""

from __future__ import annotations

import typer

from pipelines.cli.app import command, preflight, run_step
from pipelines.cli.common import Progress
from pipelines.config import ExportConfig, TrainConfig


@command(TrainConfig)
def train(cfg: TrainConfig) -> None:
    """Train the shared-encoder / two-decoder swap model on faces of a and b, on Ray Train.

    Checkpoints go to OUT/train/checkpoint_<step>/ every --save-every steps, with a preview
    grid (A, A->A, A->B, B, B->B, B->A). Rerunning the same command resumes from the latest
    checkpoint; a worker that dies is replaced and training goes on from the last checkpoint.

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
    progress = Progress()

    def show(metrics: dict) -> None:  # every metrics line; in place on a terminal
        progress.show(
            f"train: step {metrics['step']}/{cfg.steps}  loss_a {metrics['loss_a']:.4f}  "
            f"loss_b {metrics['loss_b']:.4f}  {metrics['images_per_s']:.1f} images/s  "
            f"data wait {metrics.get('data_wait_fraction', 0.0):.2f}",
            force=True,
        )

    summary = run_step("train", run_train, cfg, infos, on_progress=show)
    progress.close()
    m = summary.last_metrics
    faces = ", ".join(
        f"{side}: {info.decoded} used, {info.skipped} skipped"
        for side, info in summary.faces.items()
    )
    typer.echo(
        f"train: steps {summary.started_from} -> {summary.step} in {summary.seconds:.1f} s"
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
    typer.echo(f"checkpoint: {summary.checkpoint}")


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
