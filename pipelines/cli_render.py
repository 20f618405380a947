"""The `rayswap render` command (added to the app by `register`)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli_common import (
    AddressOption,
    MaxErrorOption,
    Progress,
    absolute,
    build_config,
    check_out_dir,
    finish,
    plan_text,
    segment_progress,
    usage_check,
)
from pipelines.config import RenderConfig, StageSummary


def render_summary_lines(summary: StageSummary) -> list[str]:
    c = summary.counts
    resumed = ""
    if c.get("skipped_videos") or c.get("skipped_segments"):
        resumed = (
            f"; already done by an earlier run: {int(c['skipped_videos'])} videos, "
            f"{int(c['skipped_segments'])} segments of others"
        )
    return [
        f"render: {int(c['videos'])} videos ({summary.n_failed} failed), "
        f"{int(c['segments'])} segments rendered, {int(c['frames'])} frames "
        f"({int(c['swapped_frames'])} swapped, {int(c['faces_missed'])} without a face) "
        f"in {summary.seconds:.1f} s ({c['frames_per_s']:.1f} frames/s, "
        f"{plan_text(c)}){resumed}",
        f"videos:   {summary.output_path}/",
        f"manifest: {summary.errors_path}",
    ]


def render(
    checkpoint: Annotated[
        str,
        typer.Argument(
            help="Checkpoint folder or URI, or a training output folder: its latest "
            "checkpoint, resolved once (a rerun into the same --out keeps that one).",
            show_default=False,
        ),
    ],
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Target videos: files, folders, globs, object-store URIs or a manifest "
            "(.csv/.parquet with a uri column).",
            show_default=False,
        ),
    ],
    out: Annotated[str, typer.Option(help="Output folder or URI for the videos and manifest.")],
    direction: Annotated[
        str, typer.Option(help="a2b puts B's face on videos of A; b2a the reverse.")
    ] = "a2b",
    segment_frames: Annotated[
        int, typer.Option(help="Split videos into segments of this many frames, in parallel.")
    ] = 900,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Renderer actors. Default: fill the nodes, one per --cpus-per-worker CPUs "
            "(with --gpu, of the GPU nodes; one CPU is kept free).",
            show_default=False,
        ),
    ] = None,
    cpus_per_worker: Annotated[
        float, typer.Option(help="CPUs per actor (decode, detect, encode threads).")
    ] = 1.0,
    gpu: Annotated[bool, typer.Option(help="Run the model on a GPU (actors ask for one).")] = False,
    gpus_per_worker: Annotated[
        float | None,
        typer.Option(
            help="GPU share per actor with --gpu. Default: each GPU node's GPUs shared "
            "equally by the actors its CPUs run (16 CPUs, 1 GPU: 15 actors x 1/15 GPU).",
            show_default=False,
        ),
    ] = None,
    detector: Annotated[
        str,
        typer.Option(
            help="RetinaFace backend: auto (torch on the GPU with --gpu, onnxruntime on CPU, "
            "where it is faster), torch or onnxruntime."
        ),
    ] = "auto",
    batch_size: Annotated[
        int, typer.Option(help="Faces per model pass and frames per detector pass.")
    ] = 8,
    detect_size: Annotated[
        int, typer.Option(help="Detect on frames downscaled to this longer side, in px.")
    ] = 640,
    min_score: Annotated[float, typer.Option(help="Smallest detector score swapped.")] = 0.8,
    min_face: Annotated[int, typer.Option(help="Smallest face box side swapped, in px.")] = 24,
    faces: Annotated[
        str, typer.Option(help="Faces swapped per frame: largest or all.")
    ] = "largest",
    smooth_frames: Annotated[
        int, typer.Option(help="Landmark smoothing: frames on each side of a centred window.")
    ] = 3,
    min_support: Annotated[
        int, typer.Option(help="A face must also be found in this many frames of the window.")
    ] = 1,
    color: Annotated[str, typer.Option(help="Colour matching: lab, hist or none.")] = "lab",
    mask_erode: Annotated[
        float, typer.Option(help="Mask erosion, as a fraction of the face crop.")
    ] = 0.03,
    mask_feather: Annotated[
        float, typer.Option(help="Mask feathering (blur sigma), as a fraction of the face crop.")
    ] = 0.05,
    crf: Annotated[int, typer.Option(help="H.264 quality: 0 lossless, 18 default, 28 small.")] = 18,
    label: Annotated[
        bool, typer.Option(help="Draw a visible SYNTHETIC label on swapped frames.")
    ] = True,
    watermark_key: Annotated[
        str, typer.Option(help="Key of the invisible watermark (verify with the same key).")
    ] = "rayswap",
    watermark_strength: Annotated[
        float,
        typer.Option(
            help="Watermark strength in grey levels (RMS) for a face ~230 px wide; smaller "
            "faces get more, larger less. Higher survives harsher edits, lower is harder to see."
        ),
    ] = 3.0,
    evaluate: Annotated[
        bool,
        typer.Option(
            help="Also score every swap as `rayswap evaluate` does (identity, pose, jitter, "
            "seam), in the render actors; needs --a and --b and the eval extra. Writes "
            "OUT/evaluation.parquet and prints the table."
        ),
    ] = False,
    evaluate_every_n: Annotated[
        int, typer.Option(help="With --evaluate, score frames whose number is a multiple of n.")
    ] = 1,
    a: Annotated[
        str | None,
        typer.Option(help="With --evaluate: faces of A (OUT/faces/a of `rayswap extract`)."),
    ] = None,
    b: Annotated[str | None, typer.Option(help="With --evaluate: faces of B.")] = None,
    address: AddressOption = None,
    max_error_fraction: MaxErrorOption = 0.0,
    fail_at_frame: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Swap faces in videos with a trained checkpoint; many videos and segments in parallel.

    Every output keeps the input's size, frame rate, frame count and sound. Its swapped
    frames carry an invisible watermark (see `rayswap verify`) and, by default, a visible
    SYNTHETIC label, and its metadata says it is synthetic; an output in which no face was
    swapped makes no such claim. Bad inputs get a manifest row and the batch goes on.
    Rerunning the same command resumes: finished videos and segments are skipped.
    """
    from pipelines.render import prepare_render, run_render

    cfg = build_config(
        RenderConfig,
        checkpoint=absolute(checkpoint),
        inputs=tuple(inputs),
        out=absolute(out),
        direction=direction,
        segment_frames=segment_frames,
        workers=workers,
        cpus_per_worker=cpus_per_worker,
        gpu=gpu,
        gpus_per_worker=gpus_per_worker,
        detector=detector,
        batch_size=batch_size,
        detect_size=detect_size,
        min_score=min_score,
        min_face=min_face,
        faces=faces,
        smooth_frames=smooth_frames,
        min_support=min_support,
        color=color,
        mask_erode=mask_erode,
        mask_feather=mask_feather,
        crf=crf,
        label=label,
        watermark_key=watermark_key,
        watermark_strength=watermark_strength,
        address=address,
        max_error_fraction=max_error_fraction,
        fail_at_frame=fail_at_frame,
        evaluate=evaluate,
        evaluate_every_n=evaluate_every_n,
        a=None if a is None else absolute(a),
        b=None if b is None else absolute(b),
    )
    check_out_dir(cfg.out)
    plan = usage_check(prepare_render, cfg)
    typer.echo(f"render: {len(plan.sources)} videos -> {cfg.out}", err=True)
    pin = plan.checkpoint
    typer.echo(f"render: checkpoint {pin.path} (step {pin.step})", err=True)
    progress = Progress()
    summary = run_render(
        cfg,
        plan,
        on_progress=segment_progress(progress, "render", {"swapped_frames": "swapped"}),
    )
    progress.close()
    lines = render_summary_lines(summary)
    if cfg.evaluate:
        from ops.storage import join
        from pipelines.cli_evaluate import metrics_table, read_metrics_rows
        from pipelines.evaluate import EVALUATION_FILE

        path = join(cfg.out, EVALUATION_FILE)
        lines += [*metrics_table(read_metrics_rows(path)), f"metrics:  {path}"]
    finish(summary, cfg.max_error_fraction, lines)


def register(app: typer.Typer) -> None:
    """Add `render` to the rayswap app."""
    app.command()(render)
