"""The `rayswap train` and `rayswap export` commands; `register(app)` adds them to the CLI.

rayswap train --a data/a/faces/a --b data/b/faces/b --out runs/ab --steps 2000
rayswap export runs/ab --direction a2b --format onnx --out a2b.onnx
"""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli_common import AddressOption, Progress, absolute, build_config, usage_check
from pipelines.config import ExportConfig, TrainConfig


def train(
    a: Annotated[
        str,
        typer.Option(
            help="Faces of identity a: a folder or URI of faces Parquet (OUT/faces/a of extract).",
            show_default=False,
        ),
    ],
    b: Annotated[str, typer.Option(help="Faces of identity b, as --a.", show_default=False)],
    out: Annotated[
        str,
        typer.Option(
            help="Run folder or URI: checkpoints, metrics.jsonl, preview.png. Rerun to resume.",
            show_default=False,
        ),
    ],
    workers: Annotated[int, typer.Option(help="Ray Train workers (DDP ranks).")] = 1,
    gpu: Annotated[
        bool,
        typer.Option(
            help="One GPU per worker: NCCL, bf16 autocast of the forward pass (losses in "
            "float32), fused Adam, channels_last. Without it: gloo and float32 on CPU."
        ),
    ] = False,
    precision: Annotated[
        str,
        typer.Option(
            help="auto: bf16 autocast of the forward pass with --gpu, float32 without; "
            "bf16 or fp32 to choose (bf16 also runs on CPU, slower)."
        ),
    ] = "auto",
    compile: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the model (slower start, faster steps on GPU); checkpoints "
            "are the same plain state dicts either way.",
        ),
    ] = False,
    resolution: Annotated[int, typer.Option(help="Model input side in px: 64, 128 or 256.")] = 64,
    batch_size: Annotated[int, typer.Option(help="Faces per identity per worker per step.")] = 16,
    steps: Annotated[int, typer.Option(help="Total optimisation steps (a rerun goes on).")] = 1000,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
    save_every: Annotated[
        int, typer.Option(help="Checkpoint (and report to Ray Train) every this many steps.")
    ] = 250,
    log_every: Annotated[int, typer.Option(help="Write a metrics line every N steps.")] = 10,
    width: Annotated[int, typer.Option(help="Channels of the first encoder conv.")] = 32,
    latent_dim: Annotated[int, typer.Option(help="Size of the shared latent vector.")] = 256,
    cpus_per_worker: Annotated[
        float, typer.Option(help="CPUs each worker reserves (leave some for Ray Data).")
    ] = 1.0,
    device_cache_gb: Annotated[
        float | None,
        typer.Option(
            help="Hold each worker's faces on its device when they fit in this many GiB "
            "(batches are then drawn there); beyond it they stream through Ray Data. "
            "Default: a quarter of the GPU's memory (CPU: of RAM, up to 4 GiB); 0 always streams.",
            show_default=False,
        ),
    ] = None,
    data_timeout_s: Annotated[
        float, typer.Option(help="Fail a worker that gets no batch of faces for this long.")
    ] = 600.0,
    preview_faces: Annotated[
        int, typer.Option(help="Held-back faces per identity shown in the preview grid.")
    ] = 4,
    keep_checkpoints: Annotated[int, typer.Option(help="Checkpoints kept (the latest ones).")] = 3,
    max_failures: Annotated[
        int, typer.Option(help="Worker-group restarts from the last checkpoint (-1: no limit).")
    ] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights and augmentation.")] = 0,
    fail_at_step: Annotated[int | None, typer.Option(hidden=True)] = None,
    nan_at_step: Annotated[int | None, typer.Option(hidden=True)] = None,
    label_selector: Annotated[
        str | None,
        typer.Option(help="Run workers only on nodes with these Ray labels, e.g. node-kind=gpu."),
    ] = None,
    address: AddressOption = None,
) -> None:
    """Train the shared-encoder / two-decoder swap model on faces of a and b, on Ray Train.

    Checkpoints go to OUT/train/checkpoint_<step>/ every --save-every steps, with a preview
    grid (A, A->A, A->B, B, B->B, B->A). Rerunning the same command resumes from the latest
    checkpoint; a worker that dies is replaced and training goes on from the last checkpoint.

    Each worker holds its faces on its device when they fit (--device-cache-gb) and
    augments every batch there. A NaN or infinite loss stops the run (exit 1) at the next
    --log-every step, naming the step and the last good checkpoint; no checkpoint of
    non-finite weights is written.
    """
    from pipelines.train import prepare_train, run_train

    cfg = build_config(
        TrainConfig,
        a=absolute(a),
        b=absolute(b),
        out=absolute(out),
        workers=workers,
        gpu=gpu,
        resolution=resolution,
        batch_size=batch_size,
        steps=steps,
        lr=lr,
        save_every=save_every,
        log_every=log_every,
        width=width,
        latent_dim=latent_dim,
        cpus_per_worker=cpus_per_worker,
        compile=compile,
        precision=precision,
        device_cache_gb=device_cache_gb,
        data_timeout_s=data_timeout_s,
        preview_faces=preview_faces,
        keep_checkpoints=keep_checkpoints,
        max_failures=max_failures,
        seed=seed,
        fail_at_step=fail_at_step,
        nan_at_step=nan_at_step,
        address=address,
        label_selector=label_selector,
    )
    infos = usage_check(prepare_train, cfg)
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

    try:
        summary = usage_check(run_train, cfg, infos, on_progress=show)
    except (FloatingPointError, RuntimeError) as exc:  # a failed run, not a bad invocation
        progress.close()
        typer.echo(f"train: {exc}", err=True)
        raise typer.Exit(1) from exc
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


def export(
    checkpoint: Annotated[
        str,
        typer.Argument(
            help="A checkpoint directory, or a training --out folder (its latest checkpoint).",
            show_default=False,
        ),
    ],
    out: Annotated[str, typer.Option(help="Output file (local or URI).", show_default=False)],
    direction: Annotated[
        str, typer.Option(help="a2b: A's pose with B's face; b2a: the other way.")
    ] = "a2b",
    format: Annotated[str, typer.Option(help="torchscript or onnx.")] = "torchscript",
    atol: Annotated[
        float, typer.Option(help="Largest difference to the eager model accepted.")
    ] = 1e-4,
) -> None:
    """Export the swap path (encoder + the target's decoder) as TorchScript or ONNX.

    The exported model takes "face" (N, 3, R, R) RGB in [0, 1] and returns "rgb" and "mask".
    It is checked against the eager model on fresh inputs before it is written.
    """
    from pipelines.export import run_export

    cfg = build_config(
        ExportConfig,
        checkpoint=absolute(checkpoint),
        out=absolute(out),
        direction=direction,
        format=format,
        atol=atol,
    )
    summary = usage_check(run_export, cfg)
    typer.echo(
        f"export: {cfg.direction} of {summary.checkpoint} (step {summary.step}, "
        f"{summary.resolution} px) -> {summary.out} as {cfg.format}; "
        f"max |exported - eager| = {summary.max_abs_diff:.2e}"
    )


def register(app: typer.Typer) -> None:
    """Add `train` and `export` to the rayswap app."""
    app.command()(train)
    app.command()(export)
