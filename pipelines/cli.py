"""The `rayswap` command line: one command per stage, plus demo.

    rayswap demo                                   # the whole chain on generated clips
    rayswap extract clips/ --out data/ --identity a
    rayswap --help, rayswap COMMAND --help

Every command validates its flags into a frozen config before Ray starts (a bad
invocation exits with code 2 and names the flag), runs its stage, prints a summary and
exits 1 when more than --max-error-fraction of the items failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ops.storage import strip_query
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
from pipelines.config import DEFAULT_MAX_DISTANCE, ExtractConfig, StageSummary

app = typer.Typer(
    name="rayswap",
    help="Distributed face swap on Ray: extract faces from videos, train a shared-encoder "
    "autoencoder, render swapped videos that are marked as synthetic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def extract_summary_lines(summary: StageSummary) -> list[str]:
    c = summary.counts
    rejected = (
        f" ({int(c['rejected'])} rejected as someone else: farther than "
        f"{c['max_distance']:g} from the reference)"
        if c.get("reference")
        else ""
    )
    return [
        f"extract: {int(c['videos'])} videos ({summary.n_failed} failed), "
        f"{int(c['segments'])} segments ({int(c['skipped'])} already done), "
        f"{int(c['frames'])} frames, {int(c['faces'])} faces{rejected}, {int(c['errors'])} errors "
        f"in {summary.seconds:.1f} s ({c['frames_per_s']:.1f} frames/s, "
        f"{c['faces_per_s']:.1f} faces/s, {plan_text(c)})",
        f"faces:  {strip_query(summary.output_path)}/<identity>/",
        f"errors: {strip_query(summary.errors_path)}/",
    ]


@app.command()
def extract(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Videos: files, folders, globs ('clips/*.mp4'), object-store URIs "
            "(s3://bucket/prefix/) or a manifest (.csv/.parquet with uri[,identity]).",
            show_default=False,
        ),
    ],
    out: Annotated[str, typer.Option(help="Output folder or URI (faces/, errors/ go inside).")],
    identity: Annotated[
        str | None,
        typer.Option(
            help="Identity of every input (a manifest's identity column wins when absent)."
        ),
    ] = None,
    every_n: Annotated[int, typer.Option(help="Keep every n-th frame.")] = 1,
    fps: Annotated[
        float | None,
        typer.Option(help="Sample about this many frames per second (overrides --every-n)."),
    ] = None,
    size: Annotated[int, typer.Option(help="Aligned crop side in px (multiple of 16).")] = 256,
    coverage: Annotated[
        float,
        typer.Option(
            help="Zoom-out of the crop around the face: 1.0 tight (brows to chin), 1.5 keeps "
            "forehead and jaw."
        ),
    ] = 1.5,
    min_face: Annotated[int, typer.Option(help="Smallest face box side kept, in px.")] = 40,
    min_score: Annotated[float, typer.Option(help="Smallest detector score kept.")] = 0.8,
    min_sharpness: Annotated[
        float,
        typer.Option(
            help="Smallest variance of Laplacian of the crop kept (0 keeps blurry faces)."
        ),
    ] = 0.0,
    faces: Annotated[str, typer.Option(help="Faces per frame: 'all' or 'largest'.")] = "largest",
    segment_frames: Annotated[
        int,
        typer.Option(help="Split videos into segments of this many frames, processed in parallel."),
    ] = 900,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Extractor actors. Default: as many as the cluster's CPUs allow, minus one."
        ),
    ] = None,
    cpus_per_worker: Annotated[
        float,
        typer.Option(
            help="CPUs each actor reserves; its decoder and detector use that many threads."
        ),
    ] = 1.0,
    detect_size: Annotated[
        int, typer.Option(help="Detect on frames downscaled to this longer side, in px.")
    ] = 640,
    gpu: Annotated[
        bool,
        typer.Option(
            help="Run the actors on GPU nodes and detect faces in torch on the GPU (one actor "
            "per CPU, each with an equal share of its node's GPUs)."
        ),
    ] = False,
    gpus_per_worker: Annotated[
        float | None,
        typer.Option(
            help="GPU share per actor with --gpu. Default: the node's GPUs shared equally.",
            show_default=False,
        ),
    ] = None,
    detector: Annotated[
        str,
        typer.Option(
            help="RetinaFace backend: auto (torch on a GPU, onnxruntime on CPU, where it is "
            "faster), torch or onnxruntime."
        ),
    ] = "auto",
    image_format: Annotated[str, typer.Option(help="Crop encoding: jpeg, png or webp.")] = "jpeg",
    label_selector: Annotated[
        str | None,
        typer.Option(
            help="Run extractor actors only on nodes with these Ray labels, e.g. "
            "'node-kind=cpu' (the CPU group of cluster/cluster.yaml). Default: anywhere."
        ),
    ] = None,
    address: AddressOption = None,
    reference: Annotated[
        list[str] | None,
        typer.Option(
            help="Keep only faces of this person: an image (its largest face) or a faces "
            "dataset (a folder such as OUT/faces/a, or a .parquet file); repeat for several "
            "references of the same person. Needs rayswap's eval extra.",
            show_default=False,
        ),
    ] = None,
    max_distance: Annotated[
        float | None,
        typer.Option(
            help=f"With --reference: the largest identity distance kept (default "
            f"{DEFAULT_MAX_DISTANCE}: on the shared test media it keeps 89-94% of a person's "
            "faces and rejects other people; lower it for look-alikes, raise it to keep more "
            "of the person).",
            show_default=False,
        ),
    ] = None,
    max_error_fraction: MaxErrorOption = 0.0,
    fail_at_frame: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Extract aligned faces from videos into Parquet, sharded over CPU workers.

    Reruns of the same command resume: finished segments are skipped and no row is
    ever written twice. Unreadable videos get a row in OUT/errors and the batch goes on.
    With --reference only the faces of one person are kept, each with its identity
    distance; the summary counts the faces rejected as someone else.
    """
    from pipelines.extract import prepare_extract, run_extract
    from pipelines.extract_reference import load_reference

    cfg = build_config(
        ExtractConfig,
        inputs=tuple(inputs),
        out=absolute(out),
        identity=identity,
        every_n=every_n,
        fps=fps,
        size=size,
        coverage=coverage,
        min_face=min_face,
        min_score=min_score,
        min_sharpness=min_sharpness,
        faces=faces,
        segment_frames=segment_frames,
        workers=workers,
        cpus_per_worker=cpus_per_worker,
        detect_size=detect_size,
        image_format=image_format,
        address=address,
        max_error_fraction=max_error_fraction,
        label_selector=label_selector,
        gpu=gpu,
        gpus_per_worker=gpus_per_worker,
        detector=detector,
        fail_at_frame=fail_at_frame,
        reference=tuple(absolute(r) for r in reference or ()),
        max_distance=max_distance,
    )
    check_out_dir(cfg.out)
    sources = usage_check(prepare_extract, cfg)
    gallery = usage_check(load_reference, cfg.reference, cfg.detect_size) if cfg.reference else None
    typer.echo(f"extract: {len(sources)} videos -> {strip_query(cfg.out)}", err=True)
    progress = Progress()
    counts = {"faces": "faces", "errors": "errors"}
    if gallery is not None:
        counts = {"faces": "faces", "rejected": "rejected as someone else", "errors": "errors"}
    summary = run_extract(
        cfg, sources, on_progress=segment_progress(progress, "extract", counts), reference=gallery
    )
    progress.close()
    finish(summary, cfg.max_error_fraction, extract_summary_lines(summary))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the sample clips and every output.")] = Path(
        "rayswap-demo"
    ),
    frames: Annotated[int, typer.Option(help="Frames per generated sample clip.")] = 60,
    steps: Annotated[int, typer.Option(help="Training steps of the demo model.")] = 60,
) -> None:
    """Run every stage on sample clips made on the spot (no download, no input needed).

    Generates two clips of an animated public-domain portrait (identities a and b),
    extracts their faces, trains a small model for a few steps, renders clip a with b's
    face, and checks that the output carries the synthetic-media watermark.
    """
    from pipelines.demo import run_demo

    if frames < 8:
        raise typer.BadParameter(f"--frames: {frames} is invalid; must be >= 8")
    if steps < 1:
        raise typer.BadParameter(f"--steps: {steps} is invalid; must be >= 1")
    check_out_dir(str(out))
    echo = lambda line: typer.echo(line, err=True)  # noqa: E731
    for line in run_demo(str(out), frames=frames, steps=steps, echo=echo):
        typer.echo(line)


# Commands of the other stages live in their own modules; each adds itself to `app`.
# (one import + register line per module)
from pipelines import cli_train  # noqa: E402

cli_train.register(app)
from pipelines import cli_jobs  # noqa: E402

cli_jobs.register(app)
from pipelines import cli_render  # noqa: E402

cli_render.register(app)
from pipelines import cli_verify  # noqa: E402

cli_verify.register(app)
from pipelines import cli_faces  # noqa: E402

cli_faces.register(app)
from pipelines import cli_evaluate  # noqa: E402

cli_evaluate.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
