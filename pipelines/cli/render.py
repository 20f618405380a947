"""The `rayswap render` command."""

from __future__ import annotations

import typer

from pipelines.cli.app import command, preflight, run_step
from pipelines.cli.common import Progress, check_out_dir, finish, plan_text, segment_progress
from pipelines.config import RenderConfig, RenderCounts, StageSummary


def render_summary_lines(summary: StageSummary) -> list[str]:
    c = summary.counts
    assert isinstance(c, RenderCounts)
    resumed = ""
    if c.skipped_videos or c.skipped_segments:
        resumed = (
            f"; already done by an earlier run: {c.skipped_videos} videos, "
            f"{c.skipped_segments} segments of others"
        )
    return [
        f"render: {c.videos} videos ({summary.n_failed} failed), "
        f"{c.segments} segments rendered, {c.frames} frames "
        f"({c.swapped_frames} swapped, {c.faces_missed} without a face) "
        f"in {summary.seconds:.1f} s ({summary.rate('frames'):.1f} frames/s, "
        f"{plan_text(summary)}){resumed}",
        f"videos:   {summary.output_path}/",
        f"manifest: {summary.manifest_path}",
        f"errors:   {summary.errors_path}/",
    ]


@command(RenderConfig)
def render(cfg: RenderConfig) -> None:
    """Swap faces in videos with a trained checkpoint; many videos and segments in parallel.

    Every output keeps the input's size, frame rate, frame count and sound. Its swapped
    frames carry an invisible watermark (see `rayswap verify`) and, by default, a visible
    SYNTHETIC label, and its metadata says it is synthetic; an output in which no face was
    swapped makes no such claim. Bad inputs get a row in OUT/errors and in the manifest,
    and the batch goes on. Rerunning the same command resumes: finished videos and
    segments are skipped.
    """
    from pipelines.render.driver import prepare_render, run_render

    check_out_dir(cfg.out)
    plan = preflight(prepare_render, cfg)
    typer.echo(f"render: {len(plan.sources)} videos -> {cfg.out}", err=True)
    pin = plan.checkpoint
    typer.echo(f"render: checkpoint {pin.path} (step {pin.step})", err=True)
    progress = Progress()
    show = segment_progress(progress, "render", {"swapped_frames": "swapped"})
    summary = run_step("render", run_render, cfg, plan, on_progress=show)
    progress.close()
    lines = render_summary_lines(summary)
    if cfg.evaluate:
        from ops.storage import join
        from pipelines.cli.evaluate import metrics_table, read_metrics_rows
        from pipelines.evaluate.driver import EVALUATION_FILE

        path = join(cfg.out, EVALUATION_FILE)
        lines += [*metrics_table(read_metrics_rows(path)), f"metrics:  {path}"]
    finish(summary, cfg.max_error_fraction, lines)
