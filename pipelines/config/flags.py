"""Every flag of the command line is declared once: as a field of its stage's config.

    crf: int = option(18, "H.264 quality: 0 lossless, 18 default, 28 small.", within(0, 51))

A field made by `option` / `argument` carries its CLI name (the field's, `_` -> `-`), type,
default, help and check. The config checks every field in `check_fields` (called by its
`__post_init__`), and `pipelines.cli.app.stage_command` builds the command's options and
arguments from the same fields, so the CLI's defaults are the config's by construction.
A check is a (predicate, rule) pair: "--crf: 60 is invalid; must be in [0, 51]".
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

Check = tuple[Callable[[Any], bool], str | Callable[[], str]]  # (predicate, rule)
REQUIRED = MISSING


class BadInvocation(ValueError):
    """A flag the cluster cannot satisfy, found once Ray is joined: still exit code 2."""


@dataclass(frozen=True)
class Flag:
    """How a config field appears on the command line."""

    help: str
    check: Check | None = None
    argument: bool = False  # positional (CHECKPOINT, INPUTS...) rather than --name
    path: bool = False  # local paths become absolute (Ray workers run elsewhere)
    hidden: bool = False  # fault injection for tests
    envvar: str | None = None
    decls: tuple[str, ...] = ()  # e.g. ("--compile",): no --no-compile
    metavar: str | None = None
    show_default: bool = True


def option(default: Any, help: str, check: Check | None = None, **how: Any) -> Any:
    """A config field shown as `--name` (REQUIRED: no default)."""
    return field(default=default, metadata={"flag": Flag(help, check, **how)})


def argument(help: str, check: Check | None = None, **how: Any) -> Any:
    """A required positional config field."""
    return field(metadata={"flag": Flag(help, check, argument=True, show_default=False, **how)})


def flag_of(item: Any) -> Flag | None:
    return item.metadata.get("flag")


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def fail(name: str, value: Any, rule: str) -> None:
    """Raise the ValueError a bad value gets: it names the flag, the value and the rule."""
    raise ValueError(f"{flag_name(name)}: {value!r} is invalid; {rule}")


def require(condition: bool, name: str, value: Any, rule: str) -> None:
    if not condition:
        fail(name, value, rule)


def check_fields(config: Any) -> None:
    """Run each field's check on its value (None, meaning 'automatic', is not checked)."""
    for item in fields(config):
        flag = flag_of(item)
        value = getattr(config, item.name)
        if flag is None or flag.check is None or value is None:
            continue
        predicate, rule = flag.check
        if not predicate(value):
            fail(item.name, value, rule() if callable(rule) else rule)


def defaults(config_class: type) -> dict[str, Any]:
    """Field name -> default, for the fields that have one."""
    return {f.name: f.default for f in fields(config_class) if f.default is not MISSING}


def check_same_settings(
    config: Any, previous: dict, out: str, secret: tuple[str, ...] = ()
) -> None:
    """Refuse a rerun into `out` whose `config.OUTPUT_FIELDS` differ from the `previous`
    run's (its saved config), naming the flag; a field the previous config lacks held its
    default there. Values of `secret` fields (a watermark key) are never printed."""
    if not previous:
        return
    known = defaults(type(config))
    for name in config.OUTPUT_FIELDS:
        current = json.loads(json.dumps(getattr(config, name)))  # tuples as the JSON lists
        before = previous.get(name, json.loads(json.dumps(known.get(name))))
        if before == current:
            continue
        flag = flag_name(name)
        values = "another value" if name in secret else f"{before!r}, this run asks for {current!r}"
        raise ValueError(
            f"{flag}: {out} was written with {flag} {values}; use the same settings to resume, "
            "or a new --out"
        )


# -- checks ------------------------------------------------------------------------------------
def at_least(low: float, unit: str = "") -> Check:
    return (lambda v: v >= low, f"must be >= {low}{unit}")


def above(low: float) -> Check:
    return (lambda v: v > low, f"must be > {low}")


def within(low: float, high: float, unit: str = "") -> Check:
    return (lambda v: low <= v <= high, f"must be in [{low}, {high}]{unit}")


def one_of(choices: tuple) -> Check:
    return (lambda v: v in choices, f"choose one of {', '.join(map(str, choices))}")


def one_of_lazy(module: str, name: str) -> Check:
    """`one_of` the tuple `module.name`, imported only when a value is checked.

    The ops modules that own the detector, model and precision choices import torch, which
    a command that never builds that config (`rayswap jobs`, any `--help`) need not load.
    """

    def choices() -> tuple:
        return getattr(importlib.import_module(module), name)

    return (lambda v: v in choices(), lambda: f"choose one of {', '.join(map(str, choices()))}")


def given(what: str) -> Check:
    return (lambda v: bool(v), f"give {what}")


def safe_name() -> Check:
    def ok(name: str) -> bool:
        plain = all(c.isalnum() or c in "._-" for c in name)
        return bool(name) and plain and name not in (".", "..")

    return (ok, "use letters, digits, '.', '-' and '_' only")


def label_selector_check() -> Check:
    def ok(text: str) -> bool:
        try:
            parse_label_selector(text)
        except ValueError:
            return False
        return True

    return (ok, "use key=value[,key=value], e.g. node-kind=cpu")


def parse_label_selector(text: str | None) -> dict[str, str] | None:
    """Parse "key=value,key2=value2" into {"key": "value", ...} for Ray's `label_selector`.

    Values use Ray's selector syntax: `cpu`, `!gpu`, `in(a,b)`, `!in(a,b)`. None or ""
    means no constraint (local runs).
    """
    if not text:
        return None
    parts = [p.strip() for p in re.split(r",(?![^(]*\))", text) if p.strip()]
    pairs = [p.split("=", 1) for p in parts]
    if not pairs or any(len(kv) != 2 or not kv[0].strip() or not kv[1].strip() for kv in pairs):
        raise ValueError(
            f"--label-selector: {text!r} is invalid; use key=value[,key=value], e.g. node-kind=cpu"
        )
    return {key.strip(): value.strip() for key, value in pairs}
