"""Settings of `rayswap submit | jobs | logs | stop` (the Ray Jobs API of a cluster)."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.config.flags import argument, given, option


def jobs_address() -> object:
    return option(
        None,
        "Ray Jobs API of the cluster (http://HOST:8265). Default: RAY_API_SERVER_ADDRESS, else "
        "http://127.0.0.1:8265 (a tunnel or port-forward to the head).",
        envvar="RAY_API_SERVER_ADDRESS",
        show_default=False,
    )


def job_id() -> object:
    return argument("Job id (see `rayswap jobs`).", given("a job id"))


@dataclass(frozen=True)
class SubmitConfig:
    """Settings of `rayswap submit`."""

    stage_args: tuple[str, ...] = argument(
        "After --: the stage and its arguments, as you would type them after `rayswap` (paths "
        "are paths on the cluster; prefer s3:// URIs).",
        metavar="-- STAGE ARGS...",
    )
    address: str | None = jobs_address()
    wait: bool = option(True, "Follow the job's logs until it ends; exit 1 if it failed.")
    env: tuple[str, ...] = option(
        (),
        "Environment variable for the job: KEY=VALUE, or KEY to forward this shell's value "
        "(e.g. --env AWS_ENDPOINT_URL). Repeatable. Visible in the dashboard: prefer node "
        "credentials for secrets.",
        show_default=False,
    )
    job_id: str | None = option(
        None, "Submission id. Default: rayswap-STAGE-TIME-RANDOM.", show_default=False
    )
    working_dir: str | None = option(
        None, "Project folder shipped to the cluster. Default: this checkout.", show_default=False
    )


@dataclass(frozen=True)
class JobsConfig:
    """Settings of `rayswap jobs`."""

    address: str | None = jobs_address()


@dataclass(frozen=True)
class LogsConfig:
    """Settings of `rayswap logs`."""

    job: str = job_id()
    address: str | None = jobs_address()
    follow: bool = option(False, "Stream until it ends.", decls=("--follow", "-f"))


@dataclass(frozen=True)
class StopConfig:
    """Settings of `rayswap stop`."""

    job: str = job_id()
    address: str | None = jobs_address()
