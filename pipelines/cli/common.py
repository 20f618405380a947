"""Pieces shared by the CLI modules: the --out check, progress, summaries and exit codes.

Only the CLI modules print or exit; stages return summaries.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import typer

from pipelines.config import Counts, StageSummary


def check_out_dir(out: str, flag: str = "--out") -> None:
    """Exit with code 2, naming `flag`, unless the local folder `out` can be made and written.

    Call it before Ray starts. Object-store URIs pass: the store answers on the first write.
    """
    from pipelines.runtime.checks import check_out_dir as check

    try:
        check(out, flag)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


class Progress:
    """One status line on stderr: rewritten in place on a terminal, every few seconds in logs."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.tty = sys.stderr.isatty()
        self.every_s = every_s
        self.last = 0.0
        self.started = time.perf_counter()

    def show(self, text: str, force: bool = False) -> None:
        now = time.perf_counter()
        if self.tty:
            typer.echo(f"\r\033[K{text}", err=True, nl=False)
        elif force or now - self.last >= self.every_s:
            typer.echo(text, err=True)
        self.last = now

    def close(self) -> None:
        if self.tty:
            typer.echo("", err=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def finish(summary: StageSummary, max_error_fraction: float, lines: list[str]) -> None:
    """Print the summary lines and the errors, and pick the exit code."""
    for line in lines:
        typer.echo(line)
    for error in summary.errors[:20]:
        typer.echo(f"  error: {error}", err=True)
    if len(summary.errors) > 20:
        typer.echo(
            f"  ... and {len(summary.errors) - 20} more (see {summary.errors_path})", err=True
        )
    if summary.error_fraction > max_error_fraction:
        typer.echo(
            f"{summary.n_failed}/{summary.n_total} inputs failed "
            f"(> --max-error-fraction {max_error_fraction})",
            err=True,
        )
        raise typer.Exit(1)


def plan_text(summary: StageSummary) -> str:
    """The actor plan a stage ran, e.g. '15 actors x 1 CPU + 0.0666 GPU', or that it
    started none (a rerun with nothing left to do)."""
    return summary.plan.describe() if summary.plan is not None else "no actors started"


def segment_progress(
    progress: Progress, stage: str, counts: dict[str, str]
) -> Callable[[dict, Counts], None]:
    """An `on_progress` callback for segment stages: errors as they come, then one status line.

    counts: field of the stage's Counts -> label, e.g. {"faces": "faces"} shows
    "... 120 faces, ...".
    """

    def show(report: dict, totals: Counts) -> None:
        if report["error"]:
            error, video = report["error"], str(report.get("video", ""))
            named = error if not video or video in error else f"{video}: {error}"
            progress.show(f"  error: {named}", force=True)
        rate = totals.frames / max(progress.elapsed, 1e-6)
        shown = "".join(f", {getattr(totals, key)} {label}" for key, label in counts.items())
        progress.show(
            f"{stage}: {totals.segments} segments done, {totals.frames} frames"
            f"{shown}, {rate:.1f} frames/s"
        )

    return show
