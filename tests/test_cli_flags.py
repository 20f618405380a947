"""Each flag is declared once: the command line is built from the configs' fields."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields

import click
import pytest
import typer
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.cli.app import command, preflight, run_step
from pipelines.config import (
    DemoConfig,
    EvaluateConfig,
    ExportConfig,
    ExtractConfig,
    FacesReportConfig,
    PretrainConfig,
    RenderConfig,
    TrainConfig,
    VerifyConfig,
)
from pipelines.config.flags import at_least, check_fields, option
from pipelines.config.jobs import JobsConfig, LogsConfig, StopConfig, SubmitConfig

COMMANDS = {
    ("demo",): DemoConfig,
    ("extract",): ExtractConfig,
    ("train",): TrainConfig,
    ("pretrain",): PretrainConfig,
    ("export",): ExportConfig,
    ("render",): RenderConfig,
    ("verify",): VerifyConfig,
    ("evaluate",): EvaluateConfig,
    ("faces", "report"): FacesReportConfig,
    ("submit",): SubmitConfig,
    ("jobs",): JobsConfig,
    ("logs",): LogsConfig,
    ("stop",): StopConfig,
}
runner = CliRunner()


def _click_command(path: tuple[str, ...]) -> click.Command:
    found = typer.main.get_command(app)
    for name in path:
        found = found.commands[name]
    return found


def _commands(group: click.Command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, sub in group.commands.items():
        if hasattr(sub, "commands"):  # a group, such as `faces`
            found += _commands(sub, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_every_command_is_built_from_a_config():
    assert sorted(_commands(typer.main.get_command(app))) == sorted(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_every_cli_default_equals_its_config_default(path):
    config = COMMANDS[path]
    params = {p.name: p for p in _click_command(path).params if p.name != "help"}
    assert set(params) == {f.name for f in fields(config)}
    for item in fields(config):
        param = params[item.name]
        if item.default is MISSING:
            assert param.required, item.name
            continue
        default = item.default
        assert not param.required, item.name
        parsed = param.default
        if default == () and parsed is None:  # a repeatable option given no times
            parsed = ()
        assert parsed == default, (item.name, parsed, default)


@dataclass(frozen=True)
class _Toy:
    count: int = option(1, "How many.", at_least(1))
    fail: str = option("", "Where to fail: '', 'preflight' or 'run'.")

    def __post_init__(self) -> None:
        check_fields(self)


def _toy_app() -> typer.Typer:
    toy = typer.Typer()

    @command(_Toy, group=toy)
    def go(cfg: _Toy) -> None:
        """Counts, or fails where asked."""

        def check() -> None:
            if cfg.fail == "preflight":
                raise ValueError("--fail: refused before the run")

        def work() -> int:
            if cfg.fail == "run":
                raise ValueError("the third item could not be written")
            return cfg.count

        preflight(check)
        typer.echo(f"counted {run_step('go', work)}")

    @toy.callback()
    def main() -> None:
        """A two-command app, so `go` is a subcommand."""

    return toy


def test_bad_invocation_exits_2_and_an_error_while_running_exits_1():
    toy = _toy_app()
    assert runner.invoke(toy, ["go", "--count", "3"]).output.strip() == "counted 3"
    refused = runner.invoke(toy, ["go", "--count", "0"])
    assert refused.exit_code == 2 and "--count: 0 is invalid; must be >= 1" in refused.output
    early = runner.invoke(toy, ["go", "--fail", "preflight"])
    assert early.exit_code == 2 and "refused before the run" in early.output
    failed = runner.invoke(toy, ["go", "--fail", "run"])
    assert failed.exit_code == 1
    assert "go: error: the third item could not be written" in failed.output


def test_the_cli_starts_without_torch_and_lazy_choices_name_them():
    import subprocess
    import sys

    probe = "import sys, pipelines.cli; print('torch' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )
    with pytest.raises(ValueError, match=r"--direction: 'up' is invalid; choose one of a2b, b2a"):
        RenderConfig("ckpt", ("v.mp4",), "out", direction="up")
    with pytest.raises(
        ValueError, match=r"--precision: 'fp16' is invalid; choose one of auto, bf16"
    ):
        TrainConfig("a", "b", "out", precision="fp16")
