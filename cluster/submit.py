"""Send rayswap stages to a Ray cluster as jobs: a thin wrapper of Ray's JobSubmissionClient.

    rayswap submit --address http://127.0.0.1:8265 -- extract s3://bucket/videos/ --out s3://...
    rayswap jobs; rayswap logs JOB --follow; rayswap stop JOB

The job's working dir is this project (the excludes of cluster/runtime_env.yaml apply) and
its entrypoint is `python -m pipelines.cli STAGE ARGS...`, so the driver and every worker run
the code that was submitted, with the cluster's Python environment (which must have
rayswap's dependencies and ray[default]).

Token auth (on by default in Ray 2.60): the token comes from RAY_AUTH_TOKEN, the file
named by RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token, and is sent as `Authorization: Bearer`.
An unreachable address or a refused token raises ClusterError with a one-line message.

This module names stages only in entrypoint strings; it imports nothing from ops/ or
pipelines/ (cluster/ is a leaf).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
RUNTIME_ENV_FILE = Path(__file__).with_name("runtime_env.yaml")
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
AGENT_WAIT_S = 60.0  # how long a submit waits for a freshly started head's job agent


class ClusterError(Exception):
    """The cluster could not be reached, refused the token, or does not know the job."""


def project_root() -> Path:
    """The folder shipped as the job's working dir: the checkout this module lives in."""
    root = Path(__file__).resolve().parents[1]
    if not (
        (root / "pipelines" / "cli" / "__init__.py").exists() and (root / "pyproject.toml").exists()
    ):
        # an installed (non-editable) package: parents[1] is site-packages, never ship that
        raise ClusterError(f"{root} is not a rayswap checkout; pass --working-dir CHECKOUT")
    return root


def find_token() -> str | None:
    """The Ray auth token: RAY_AUTH_TOKEN, then RAY_AUTH_TOKEN_PATH, then ~/.ray/auth_token."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    candidates = [os.environ.get("RAY_AUTH_TOKEN_PATH", ""), "~/.ray/auth_token"]
    for candidate in candidates:
        path = Path(candidate).expanduser() if candidate else None
        if path is not None and path.is_file():
            text = path.read_text().strip()
            if text:
                return text
    return None


def dashboard_address(address: str | None) -> str:
    """`host:8265` or a URL -> an http(s) URL of the Jobs API."""
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or DEFAULT_ADDRESS
    if "://" not in address:
        address = f"http://{address}"
    if not address.startswith(("http://", "https://")):
        raise ClusterError(
            f"{address}: give the dashboard / Jobs API address (http://HOST:8265), "
            "not a ray:// or GCS address"
        )
    return address.rstrip("/")


@contextlib.contextmanager
def _errors(address: str) -> Iterator[None]:
    """Turn the client's connection and auth failures into one-line ClusterErrors."""
    from ray.exceptions import AuthenticationError

    try:
        yield
    except Exception as exc:
        status = getattr(exc, "status", None)  # aiohttp errors of the log stream
        if (isinstance(exc, AuthenticationError) or status in (401, 403)) and not find_token():
            raise ClusterError(
                f"{address} needs an auth token and none was found; set RAY_AUTH_TOKEN or "
                "write it to ~/.ray/auth_token (`ray get-auth-token` on the head)"
            ) from None
        if isinstance(exc, AuthenticationError) or status in (401, 403):
            raise ClusterError(
                f"{address} refused the auth token ({_first_line(exc)}); set RAY_AUTH_TOKEN "
                "or ~/.ray/auth_token to the cluster's token (`ray get-auth-token` on the head)"
            ) from None
        if isinstance(exc, OSError):  # ConnectionError, aiohttp's ClientConnectorError
            raise ClusterError(
                f"cannot reach the Ray Jobs API at {address} ({_first_line(exc)}); is the "
                "head running and port 8265 forwarded (`ray dashboard cluster/cluster.yaml` "
                "or `kubectl port-forward svc/rayswap-head-svc 8265`)?"
            ) from None
        if isinstance(exc, RuntimeError) or status is not None:  # HTTP errors: unknown job
            raise ClusterError(f"{address}: {_first_line(exc)}") from None
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(address: str | None = None) -> tuple[Any, str]:
    """(JobSubmissionClient, its URL) for `address`; the client sends the token if found."""
    from ray.job_submission import JobSubmissionClient

    url = dashboard_address(address)
    token = find_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with _errors(url):
        return JobSubmissionClient(url, headers=headers), url


def build_entrypoint(stage_args: list[str]) -> str:
    """`python -m pipelines.cli STAGE ARGS...`, quoted for the shell that runs it."""
    if not stage_args:
        raise ValueError("give a stage and its arguments after --, e.g. -- extract clips/ ...")
    return "python -m pipelines.cli " + shlex.join(stage_args)


def build_runtime_env(
    working_dir: str | None = None, env_vars: dict[str, str] | None = None
) -> dict[str, Any]:
    """cluster/runtime_env.yaml with the working dir filled in and `env_vars` added."""
    runtime_env = yaml.safe_load(RUNTIME_ENV_FILE.read_text()) or {}
    runtime_env["working_dir"] = str(Path(working_dir).resolve() if working_dir else project_root())
    merged = {**runtime_env.get("env_vars", {}), **(env_vars or {})}
    if merged:
        runtime_env["env_vars"] = {key: str(value) for key, value in merged.items()}
    return runtime_env


def new_job_id(stage: str) -> str:
    return f"rayswap-{stage}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def submit(
    stage_args: list[str],
    address: str | None = None,
    job_id: str | None = None,
    working_dir: str | None = None,
    env_vars: dict[str, str] | None = None,
    entrypoint_num_cpus: float = 0.0,
) -> str:
    """Submit one stage as a Ray job; return its id."""
    entrypoint = build_entrypoint(stage_args)
    runtime_env = build_runtime_env(working_dir, env_vars)
    client, url = connect(address)
    job_id = job_id or new_job_id(stage_args[0])
    deadline = time.monotonic() + AGENT_WAIT_S
    with _errors(url):
        while True:
            try:
                return client.submit_job(
                    entrypoint=entrypoint,
                    submission_id=job_id,
                    runtime_env=runtime_env,
                    entrypoint_num_cpus=entrypoint_num_cpus,
                    metadata={"stage": stage_args[0], "submitted_by": "rayswap"},
                )
            except RuntimeError as exc:  # a head that just started has no job agent yet
                if "No available agent" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(1.0)


def list_jobs(address: str | None = None) -> list[dict[str, Any]]:
    """Every job the cluster knows, newest first, as plain dicts."""
    client, url = connect(address)
    with _errors(url):
        jobs = client.list_jobs()
    rows = [
        {
            "job_id": job.submission_id or job.job_id,
            "status": str(getattr(job.status, "value", job.status)),
            "entrypoint": job.entrypoint,
            "start_time": job.start_time or 0,
            "end_time": job.end_time or 0,
            "message": job.message or "",
        }
        for job in jobs
    ]
    return sorted(rows, key=lambda row: row["start_time"], reverse=True)


def job_logs(job_id: str, address: str | None = None) -> str:
    client, url = connect(address)
    with _errors(url):
        return client.get_job_logs(job_id)


def follow_logs(job_id: str, write: Callable[[str], None], address: str | None = None) -> str:
    """Stream the job's logs to `write` until it ends; return its final status."""
    client, url = connect(address)

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            write(lines)

    with _errors(url):
        asyncio.run(tail())
        status = str(client.get_job_status(job_id).value)
        while status not in TERMINAL:  # the log stream can close a moment before the status
            time.sleep(0.5)
            status = str(client.get_job_status(job_id).value)
    return status


def stop_job(job_id: str, address: str | None = None) -> bool:
    """Ask the cluster to stop the job; False when it had already ended."""
    client, url = connect(address)
    with _errors(url):
        return bool(client.stop_job(job_id))
