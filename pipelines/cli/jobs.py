"""`rayswap submit | jobs | logs | stop`: run stages as Ray jobs on a cluster.

    rayswap submit --address http://127.0.0.1:8265 -- extract s3://bucket/videos/ --out s3://...
    rayswap submit --no-wait -- train s3://bucket/faces/ --out s3://bucket/ckpt/
    rayswap jobs
    rayswap logs rayswap-extract-20261124-101500-1a2b3c --follow
    rayswap stop rayswap-extract-20261124-101500-1a2b3c

The address is the Jobs API (dashboard, port 8265), taken from --address or
RAY_API_SERVER_ADDRESS; keep it off the public network (SSH tunnel or port-forward). The
auth token comes from RAY_AUTH_TOKEN or ~/.ray/auth_token. Cluster errors (unreachable,
token refused, unknown job) print one line and exit 1.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import typer

from pipelines.cli.app import app, command
from pipelines.config.jobs import JobsConfig, LogsConfig, StopConfig, SubmitConfig

NOT_STAGES = ("submit", "jobs", "logs", "stop")


def _cluster_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a cluster.submit call; a ClusterError becomes one line on stderr and exit 1."""
    import ray.job_submission  # noqa: F401 - Ray sets up its loggers on import; quiet them after

    from cluster.submit import ClusterError

    logging.getLogger("ray").setLevel(logging.WARNING)  # no per-file packaging notes
    logging.getLogger("ray._private.runtime_env.working_dir").setLevel(logging.ERROR)
    try:
        return fn(*args, **kwargs)
    except ClusterError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _parse_env(items: list[str]) -> dict[str, str]:
    """`KEY=VALUE` sets a value; a bare `KEY` forwards this shell's value."""
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            if key not in os.environ:
                raise typer.BadParameter(f"--env: {key} is not set in this shell")
            value = os.environ[key]
        if not key:
            raise typer.BadParameter(f"--env: {item!r} is invalid; use KEY=VALUE or KEY")
        env[key] = value
    return env


def _relative_paths(args: list[str]) -> list[str]:
    """Arguments that look like relative local paths (they would land in the job's temp dir)."""
    from ops.storage import is_uri

    return [
        arg
        for arg in args
        if not arg.startswith("-")
        and not is_uri(arg)
        and not os.path.isabs(arg)
        and ("/" in arg or os.path.exists(arg))
    ]


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _stages() -> list[str]:
    names = (c.name or getattr(c.callback, "__name__", "") for c in app.registered_commands)
    return sorted(name for name in names if name and name not in NOT_STAGES)


@command(SubmitConfig)
def submit(cfg: SubmitConfig) -> None:
    """Run a stage on a Ray cluster as a job (the project is shipped as its working dir).

    Example: rayswap submit -- extract s3://bucket/videos/ --out s3://bucket/faces/
    """
    from cluster import submit as jobs

    stage_args, address = list(cfg.stage_args), cfg.address
    if not stage_args or stage_args[0] not in _stages():
        got = stage_args[0] if stage_args else "nothing"
        raise typer.BadParameter(
            f"STAGE: got {got!r}; give one of {', '.join(_stages())} after --, "
            "e.g. rayswap submit -- extract clips/ --out s3://bucket/faces/"
        )
    env_vars = _parse_env(list(cfg.env))
    for path in _relative_paths(stage_args[1:]):
        typer.echo(
            f"warning: {path!r} is a relative path; the job resolves it inside its own "
            "temporary working dir on the cluster. Use s3:// URIs or absolute shared paths.",
            err=True,
        )
    job = _cluster_call(
        jobs.submit, stage_args, address, cfg.job_id, cfg.working_dir, env_vars or None
    )
    typer.echo(f"submitted {job}", err=True)
    if not cfg.wait:
        typer.echo(job)
        return
    try:
        status = _cluster_call(jobs.follow_logs, job, _write, address)
    except KeyboardInterrupt:
        typer.echo(f"\ndetached; the job goes on. Stop it with: rayswap stop {job}", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"job {job}: {status}", err=True)
    if status != "SUCCEEDED":
        raise typer.Exit(1)


@command(JobsConfig, "jobs")
def list_jobs(cfg: JobsConfig) -> None:
    """List the cluster's jobs, newest first: id, status, start time, entrypoint."""
    from cluster import submit as jobs

    rows = _cluster_call(jobs.list_jobs, cfg.address)
    if not rows:
        typer.echo("no jobs", err=True)
    for row in rows:
        started = (
            datetime.fromtimestamp(row["start_time"] / 1000).strftime("%Y-%m-%d %H:%M:%S")
            if row["start_time"]
            else "-"
        )
        typer.echo(f"{row['job_id']}  {row['status']:<9}  {started}  {row['entrypoint']}")


@command(LogsConfig)
def logs(cfg: LogsConfig) -> None:
    """Print a job's logs; --follow streams them until the job ends."""
    from cluster import submit as jobs

    if cfg.follow:
        status = _cluster_call(jobs.follow_logs, cfg.job, _write, cfg.address)
        typer.echo(f"job {cfg.job}: {status}", err=True)
    else:
        _write(_cluster_call(jobs.job_logs, cfg.job, cfg.address))


@command(StopConfig)
def stop(cfg: StopConfig) -> None:
    """Stop a running job (its Ray workers are stopped; finished outputs stay)."""
    from cluster import submit as jobs

    stopped = _cluster_call(jobs.stop_job, cfg.job, cfg.address)
    typer.echo(f"{cfg.job}: {'stopping' if stopped else 'already ended'}")
