"""The `rayswap` app and the one way a command is made: a function of its stage's config.

    @command(RenderConfig)
    def render(cfg: RenderConfig) -> None: ...

`command` gives the function the config's fields as its options and arguments (name, type,
default, help from each field's `Flag`), builds the frozen config from what was parsed
and calls the function with it. Exit codes: 2 for a bad invocation (a flag the config
refuses, or a `preflight` check that fails before Ray starts); 1 for an error while the
stage runs (`run_step`), or too many failed items (`pipelines.cli.common.finish`).
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Annotated, Any, TypeVar

import typer

from pipelines.config.flags import BadInvocation, flag_of

T = TypeVar("T")

app = typer.Typer(
    name="rayswap",
    help="Distributed face swap on Ray: extract faces from videos, train a shared-encoder "
    "autoencoder, render swapped videos that are marked as synthetic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
faces_app = typer.Typer(
    name="faces", help="Look into faces datasets before training on them.", no_args_is_help=True
)
app.add_typer(faces_app, name="faces")


def absolute(path: str) -> str:
    """Local paths become absolute (Ray workers may run in another folder); URIs stay."""
    import os

    from ops.storage import is_uri

    return path if is_uri(path) else os.path.abspath(os.path.expanduser(path))


def _cli_type(hint: Any, has_default: bool) -> Any:
    """The type typer parses: tuples of a config are lists on the command line."""
    if typing.get_origin(hint) is tuple:
        item = list[typing.get_args(hint)[0]]
        return item | None if has_default else item
    return hint


def parameters(config: type) -> list[inspect.Parameter]:
    """The command's parameters, one per field of `config`, in field order."""
    hints = typing.get_type_hints(config)
    found = []
    for item in fields(config):
        flag = flag_of(item)
        if flag is None:
            continue
        has_default = item.default is not MISSING
        default = None if not has_default or item.default == () else item.default
        if flag.argument:
            metavar = flag.metavar or item.name.upper()
            info = typer.Argument(help=literal(flag.help), show_default=False, metavar=metavar)
        else:
            info = typer.Option(
                *flag.decls,
                help=literal(flag.help),
                hidden=flag.hidden,
                envvar=flag.envvar,
                show_default=flag.show_default and has_default and default is not None,
            )
        found.append(
            inspect.Parameter(
                item.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default if has_default else inspect.Parameter.empty,
                annotation=Annotated[_cli_type(hints[item.name], has_default), info],
            )
        )
    return found


def build(config: type[T], values: dict[str, Any]) -> T:
    """The config from parsed values (lists -> tuples, local paths made absolute).

    A value the config refuses is a bad invocation: exit code 2, naming the flag.
    """
    built = {}
    for item in fields(config):
        flag, value = flag_of(item), values.get(item.name)
        if item.name not in values:
            continue
        if isinstance(value, list):
            value = tuple(value)
        if value is None and item.default == ():  # a repeatable option given no times
            value = ()
        if flag is not None and flag.path and value is not None:
            value = tuple(map(absolute, value)) if isinstance(value, tuple) else absolute(value)
        built[item.name] = value
    return preflight(config, **built)


# What rich reads as a markup tag: "[eval]" in "pip install 'rayswap[eval]'" would vanish.
_MARKUP_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def literal(text: str) -> str:
    """`text` as typer's rich formatter should print it: square brackets are not markup."""
    return _MARKUP_TAG.sub(lambda m: f"{m[1]}{m[1]}\\{m[2]}", text)


def help_text(doc: str | None) -> str | None:
    """A command's docstring as its --help: each paragraph one line, for rich to wrap.

    typer's rich formatter keeps a docstring's line breaks after the first paragraph, so
    text wrapped at 100 columns in the source breaks mid-sentence in a narrower terminal.
    The lines of a paragraph are joined; blank lines between paragraphs stay, and an
    indented line (an example command) stays a line of its own, as written.
    """
    if not doc:
        return doc
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        lines: list[str] = []
        for line in paragraph.splitlines():
            if lines and not line[:1].isspace() and not lines[-1][:1].isspace():
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line.rstrip())
        paragraphs.append("\n".join(lines))
    return literal("\n\n".join(paragraphs))


def command(
    config: type[T],
    name: str | None = None,
    group: typer.Typer = app,
    defaults: Callable[[dict[str, Any], set[str]], dict[str, Any]] | None = None,
) -> Callable[[Callable[[T], None]], Callable[[T], None]]:
    """Register `fn(cfg)` as the command `name` (default: fn's name) of `group`.

    defaults(values, given): may replace the values of flags not given on the command
    line (`given`: the names of those that were) before the config is built."""

    def register(fn: Callable[[T], None]) -> Callable[[T], None]:
        def run(context: typer.Context, **values: Any) -> None:
            if defaults is not None:
                values = preflight(defaults, values, given_names(context, values))
            fn(build(config, values))

        params = parameters(config)
        own = inspect.Parameter("context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        run.__signature__ = inspect.Signature([own, *params])  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in [own, *params]}
        run.__name__ = fn.__name__
        group.command(name, help=help_text(fn.__doc__))(run)
        return fn

    return register


def given_names(context: typer.Context, values: dict[str, Any]) -> set[str]:
    """The parameters of the running command that came from the command line or env."""
    unset = ("DEFAULT", "DEFAULT_MAP")
    sources = {name: context.get_parameter_source(name) for name in values}
    return {name for name, source in sources.items() if source and source.name not in unset}


def preflight(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A check before Ray starts: its ValueError / FileNotFoundError exits 2 (bad invocation)."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc


def run_step(stage: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The stage's run: an error while it runs is one line on stderr and exit code 1.

    A `BadInvocation` (a flag the cluster it joined cannot satisfy) still exits 2.
    """
    try:
        return fn(*args, **kwargs)
    except BadInvocation as exc:
        raise typer.BadParameter(str(exc)) from exc
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - the run failed; the invocation was fine
        typer.echo(f"{stage}: error: {exc}", err=True)
        raise typer.Exit(1) from exc
