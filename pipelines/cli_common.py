"""Pieces shared by the CLI modules: common options, config building, progress, exit codes.

Only the CLI modules print or exit; stages return summaries.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer

from pipelines.config import StageSummary

AddressOption = Annotated[
    str | None,
    typer.Option(
        help="Ray cluster to join (ray://host:10001 or host:6379). Default: RAY_ADDRESS, "
        "else a local Ray started for this command.",
        envvar="RAY_ADDRESS",
    ),
]
MaxErrorOption = Annotated[
    float, typer.Option(help="Exit with code 1 when more than this fraction of inputs failed.")
]


def absolute(path: str) -> str:
    """Local paths become absolute (Ray workers may run in another folder); URIs stay."""
    from ops.storage import is_uri

    return path if is_uri(path) else os.path.abspath(os.path.expanduser(path))


def build_config(factory, **fields):
    """Build a stage config; a ValueError becomes a usage error (exit code 2)."""
    try:
        return factory(**fields)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc


def check_out_dir(out: str, flag: str = "--out") -> None:
    """Exit with code 2, naming `flag`, unless the local folder `out` can be made and written.

    Call it before Ray starts. Object-store URIs pass: the store answers on the first write.
    """
    from ops.storage import check_writable_dir

    try:
        check_writable_dir(out)
    except ValueError as exc:
        raise typer.BadParameter(f"{flag}: {exc}; give a folder that can be written") from exc


def usage_check(fn, *args, **kwargs):
    """Run a Ray-free pre-flight check; its ValueError becomes a usage error (exit code 2)."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, FileNotFoundError) as exc:
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


def plan_text(counts: dict) -> str:
    """The actor plan a segment stage ran, e.g. '15 actors x 1 CPU + 0.0666 GPU'."""
    gpu = f" + {counts['gpus_each']:.4g} GPU" if counts.get("gpus_each") else ""
    return f"{int(counts['workers'])} actors x {counts.get('cpus_each', 1):g} CPU{gpu}"


def segment_progress(
    progress: Progress, stage: str, counts: dict[str, str]
) -> Callable[[dict, dict], None]:
    """An `on_progress` callback for segment stages: errors as they come, then one status line.

    counts: totals key -> label, e.g. {"faces": "faces"} shows "... 120 faces, ...".
    """

    def show(report: dict, totals: dict) -> None:
        if report["error"]:
            error, video = report["error"], str(report.get("video", ""))
            named = error if not video or video in error else f"{video}: {error}"
            progress.show(f"  error: {named}", force=True)
        rate = totals["frames"] / max(progress.elapsed, 1e-6)
        shown = "".join(f", {totals[key]} {label}" for key, label in counts.items())
        progress.show(
            f"{stage}: {totals['segments']} segments done, {totals['frames']} frames"
            f"{shown}, {rate:.1f} frames/s"
        )

    return show
