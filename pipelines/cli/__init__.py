"""The `rayswap` command line: one command per stage, plus demo and the cluster's jobs.

    rayswap demo                                   # the whole chain on generated clips
    rayswap extract clips/ --out data/ --identity a
    rayswap --help, rayswap COMMAND --help

Every command is a function of its stage's config (pipelines/cli/app.py): its flags are
the config's fields, validated into a frozen config before Ray starts (a bad invocation
exits with code 2 and names the flag). It runs its stage, prints a summary and exits 1
when the run fails or more than --max-error-fraction of the items failed.
"""

from __future__ import annotations

# each module adds its commands to `app`, in this order in --help
# isort: off
from pipelines.cli import (  # noqa: F401
    demo,
    extract,
    train,
    render,
    verify,
    evaluate,
    faces,
    jobs,
)

# isort: on
from pipelines.cli.app import app  # noqa: E402


def main() -> None:
    app()
