"""The `rayswap demo` command."""

from __future__ import annotations

import typer

from pipelines.cli.app import command, run_step
from pipelines.cli.common import check_out_dir
from pipelines.config import DemoConfig


@command(DemoConfig)
def demo(cfg: DemoConfig) -> None:
    """Run every stage on sample clips made on the spot (no download, no input needed).

    Generates two clips of an animated public-domain portrait (identities a and b),
    extracts their faces, trains a small model for a few steps, renders clip a with b's
    face, and checks that the output carries the synthetic-media watermark.
    """
    from pipelines.demo import run_demo

    check_out_dir(cfg.out)
    echo = lambda line: typer.echo(line, err=True)  # noqa: E731
    lines = run_step("demo", run_demo, cfg.out, frames=cfg.frames, steps=cfg.steps, echo=echo)
    for line in lines:
        typer.echo(line)
