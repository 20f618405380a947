"""The `rayswap extract` command."""

from __future__ import annotations

import typer

from ops.storage import strip_query
from pipelines.cli.app import command, preflight, run_step
from pipelines.cli.common import Progress, check_out_dir, finish, plan_text, segment_progress
from pipelines.config import ExtractConfig, ExtractCounts, StageSummary


def extract_summary_lines(summary: StageSummary) -> list[str]:
    c = summary.counts
    assert isinstance(c, ExtractCounts)
    rejected = (
        f" ({c.rejected} rejected as someone else: farther than "
        f"{c.max_distance:g} from the reference)"
        if c.reference_faces
        else ""
    )
    return [
        f"extract: {c.videos} videos ({summary.n_failed} failed), "
        f"{c.segments} segments ({c.skipped} already done), "
        f"{c.frames} frames, {c.faces} faces{rejected}, {c.errors} errors "
        f"in {summary.seconds:.1f} s ({summary.rate('frames'):.1f} frames/s, "
        f"{summary.rate('faces'):.1f} faces/s, {plan_text(summary)})",
        f"faces:  {strip_query(summary.output_path)}/<identity>/",
        f"errors: {strip_query(summary.errors_path)}/",
    ]


@command(ExtractConfig)
def extract(cfg: ExtractConfig) -> None:
    """Extract aligned faces from videos into Parquet, sharded over CPU workers.

    Reruns of the same command resume: finished segments are skipped and no row is
    ever written twice. Unreadable videos get a row in OUT/errors and the batch goes on.
    With --reference only the faces of one person are kept, each with its identity
    distance; the summary counts the faces rejected as someone else.
    """
    from pipelines.extract.driver import prepare_extract, run_extract
    from pipelines.extract.reference import load_reference

    check_out_dir(cfg.out)
    sources = preflight(prepare_extract, cfg)
    gallery = preflight(load_reference, cfg.reference, cfg.detect_size) if cfg.reference else None
    typer.echo(f"extract: {len(sources)} videos -> {strip_query(cfg.out)}", err=True)
    progress = Progress()
    counts = {"faces": "faces", "errors": "errors"}
    if gallery is not None:
        counts = {"faces": "faces", "rejected": "rejected as someone else", "errors": "errors"}
    show = segment_progress(progress, "extract", counts)
    summary = run_step("extract", run_extract, cfg, sources, on_progress=show, reference=gallery)
    progress.close()
    finish(summary, cfg.max_error_fraction, extract_summary_lines(summary))
