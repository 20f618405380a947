"""`rayswap submit | jobs | logs | stop` against a real `ray start --head` on 127.0.0.1 with
token auth on, plus the token discovery and the one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cluster import submit as jobs
from pipelines.cli import app
from tests.cluster.ray_head import LocalHead

ROOT = Path(__file__).resolve().parents[2]


# -- token discovery, addresses, entrypoints (no cluster) --------------------------------


def test_find_token_prefers_env_then_token_path_then_home(tmp_path, monkeypatch):
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-home\n")
    (tmp_path / "other").write_text("from-path")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert jobs.find_token() == "from-home"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "other"))
    assert jobs.find_token() == "from-path"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert jobs.find_token() == "from-env"


def test_dashboard_address_normalises_and_rejects_gcs_addresses(monkeypatch):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    assert jobs.dashboard_address(None) == "http://127.0.0.1:8265"
    assert jobs.dashboard_address("head:8265") == "http://head:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "https://ray.example:443/")
    assert jobs.dashboard_address(None) == "https://ray.example:443"
    with pytest.raises(jobs.ClusterError, match="8265"):
        jobs.dashboard_address("ray://head:10001")


def test_build_entrypoint_quotes_every_argument():
    entry = jobs.build_entrypoint(["extract", "my clips/", "--out", "s3://b/o?x=1&y=2"])
    assert entry == "python -m pipelines.cli extract 'my clips/' --out 's3://b/o?x=1&y=2'"


@pytest.mark.parametrize("command", ["submit", "jobs", "logs", "stop"])
def test_job_commands_have_help(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "--address" in result.output


def test_submit_unknown_stage_is_a_usage_error():
    result = CliRunner().invoke(app, ["submit", "--", "bogus", "x"])
    assert result.exit_code == 2 and "extract" in result.output


def test_submit_warns_about_relative_paths_before_contacting_the_cluster():
    result = CliRunner().invoke(
        app,
        [
            "submit",
            "--address",
            "http://127.0.0.1:9",
            "--",
            "extract",
            "clips/",
            "--out",
            "s3://b/o",
        ],
    )
    assert "warning: 'clips/' is a relative path" in result.output
    assert result.output.count("warning:") == 1  # not for the URI


def test_submit_to_an_unreachable_address_prints_one_line_and_exits_1():
    result = CliRunner().invoke(
        app, ["submit", "--address", "http://127.0.0.1:9", "--", "extract", "x", "--out", "y"]
    )
    assert result.exit_code == 1
    assert "cannot reach the Ray Jobs API at http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


# -- a real head --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_head():
    head = LocalHead(num_cpus=2).start()
    yield head
    head.stop()
    assert head.leftover_pids() == []  # only this head's processes, all gone


def run_cli(head: LocalHead, *args: str, env: dict[str, str] | None = None, timeout: int = 180):
    """`rayswap ...` in a fresh process whose HOME holds the head's ~/.ray/auth_token."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    base["HOME"] = str(head.home)
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_submit_s3_extract_follows_logs_to_success(ray_head, s3_server, s3_videos):
    env = s3_server.env  # set in this shell only; `--env KEY` forwards each one to the job
    forward = [arg for key in env for arg in ("--env", key)]
    result = run_cli(
        ray_head,
        *("submit", "--address", ray_head.address, "--job-id", "extract-s3", *forward, "--"),
        *("extract", s3_server.plain("videos/b/"), "--out", s3_server.plain("job-out/")),
        *("--identity", "b", "--size", "128", "--workers", "1"),
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "python -m pipelines.cli extract" in result.stdout  # the job's own log, streamed
    assert "extract: 1 videos (0 failed)" in result.stdout
    assert "job extract-s3: SUCCEEDED" in result.stderr
    keys = s3_server.keys("job-out/")
    assert "job-out/_config.json" in keys
    segments = [k for k in keys if k.startswith("job-out/faces/b/") and k.endswith(".parquet")]
    assert len(segments) == 1
    logs = run_cli(ray_head, "logs", "extract-s3", "--address", ray_head.address)
    assert logs.returncode == 0 and "12 faces" in logs.stdout
    listed = run_cli(ray_head, "jobs", "--address", ray_head.address).stdout.splitlines()
    assert any(line.startswith("extract-s3 ") and "SUCCEEDED" in line for line in listed)


def test_submit_render_from_s3_checkpoint_to_s3_videos(ray_head, s3_server, s3_videos):
    """Render as a job: checkpoint and videos in S3, videos and manifest written to S3."""
    import torch

    from ops.checkpoint import save_checkpoint
    from ops.model import ModelConfig, SwapAutoencoder

    torch.manual_seed(0)
    model = SwapAutoencoder(ModelConfig(resolution=64, width=8, latent_dim=32))
    save_checkpoint(s3_server.uri("job-ckpt/checkpoint"), model, step=0, coverage=1.5, size=128)
    env = s3_server.env
    forward = [arg for key in env for arg in ("--env", key)]
    result = run_cli(
        ray_head,
        *("submit", "--address", ray_head.address, "--job-id", "render-s3", *forward, "--"),
        *("render", s3_server.plain("job-ckpt/checkpoint"), s3_server.plain("videos/a/")),
        *("--out", s3_server.plain("job-renders/"), "--workers", "1"),
        env=env,
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert "job render-s3: SUCCEEDED" in result.stderr
    keys = s3_server.keys("job-renders/")
    assert "job-renders/manifest.parquet" in keys and "job-renders/sample_a.mp4" in keys


def test_stop_ends_a_running_job_and_follow_returns(ray_head, sample_clips, tmp_path):
    started = run_cli(
        ray_head,
        *("submit", "--no-wait", "--address", ray_head.address, "--job-id", "to-stop", "--"),
        *("extract", str(sample_clips["a"]), "--out", str(tmp_path / "out"), "--workers", "1"),
    )
    assert started.returncode == 0 and started.stdout.strip() == "to-stop", started.stderr
    stopped = run_cli(ray_head, "stop", "to-stop", "--address", ray_head.address)
    assert stopped.returncode == 0 and "to-stop:" in stopped.stdout
    followed = run_cli(ray_head, "logs", "to-stop", "--follow", "--address", ray_head.address)
    assert followed.returncode == 0
    assert "job to-stop: STOPPED" in followed.stderr or "SUCCEEDED" in followed.stderr


def test_wrong_or_missing_token_gives_one_line_and_exit_1(ray_head, tmp_path):
    wrong = run_cli(ray_head, "jobs", "--address", ray_head.address, env={"RAY_AUTH_TOKEN": "x"})
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("error: ") and "refused the auth token" in wrong.stderr
    assert "Traceback" not in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
    missing = run_cli(ray_head, "jobs", "--address", ray_head.address, env={"HOME": str(tmp_path)})
    assert missing.returncode == 1 and "none was found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_unknown_job_gives_one_line_and_exit_1(ray_head):
    result = run_cli(ray_head, "logs", "no-such-job", "--address", ray_head.address)
    assert result.returncode == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
