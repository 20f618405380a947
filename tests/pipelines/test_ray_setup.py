"""A command's console carries rayswap's own lines; Ray's chatter stays in Ray's log folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.segments import FAIL_MARKER
from tests.pipelines.test_ray_guard import session_pids, wait_until_gone

ROOT = Path(__file__).resolve().parents[2]
# What every run printed before: Ray's token warning, the C++ core's E line about actor
# constructor arguments, Ray Data's progress-bar notice, and messages the raylet pushes
# ("(raylet) A worker died ...", "... PYTHON worker processes ... startup concurrency").
RAY_NOISE = (
    "Token authentication",
    "core_worker.cc",
    "constructor arguments",
    "Progress bars",
    "(raylet)",
    "startup concurrency",
    "WARNING",
)

QUIET = r"""
import os, sys
import ray._private.worker as ray_worker
from pipelines.runtime.ray_setup import quiet_ray_console
quiet_ray_console()
os.write(2, b"[2026-01-31 12:00:00,123 E 42 42] core_worker.cc:2465: constructor arguments\n")
os.write(2, b"[2026-01-31 12:00:00,124 F 42 42] core_worker.cc:1: a fatal line shows\n")
os.write(2, b"a native line of another library\n")
print("a python line", file=sys.stderr)
pushed = "WARNING: 8 PYTHON worker processes ... the maximum expected startup concurrency (2)."
ray_worker.print_to_stdstream({"lines": [pushed], "pid": "raylet", "is_err": False}, False)
print("summary")
"""


def test_quiet_ray_console_drops_ray_lines_and_keeps_the_rest():
    result = subprocess.run(
        [sys.executable, "-c", QUIET], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "summary\n"
    assert sorted(result.stderr.splitlines()) == [  # Python's own lines skip the filter
        "[2026-01-31 12:00:00,124 F 42 42] core_worker.cc:1: a fatal line shows",
        "a native line of another library",
        "a python line",
    ]


def test_extract_console_is_quiet_even_when_a_worker_dies(tmp_path, sample_clips):
    """A real run on a local Ray the command starts, as a user runs it (no RAY_AUTH_MODE):
    the output carries rayswap's lines only, token auth stays on, and nothing outlives it."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    env["HOME"] = str(tmp_path / "home")  # Ray writes the token it generates under ~/.ray
    out = tmp_path / "out"
    flags = ["--out", str(out), "--identity", "a", "--size", "64", "--segment-frames", "5"]
    command = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "extract", str(sample_clips["a"]), *flags]
        + ["--workers", "1", "--fail-at-frame", "7"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stdout, stderr = command.communicate(timeout=300)
    left = wait_until_gone(session_pids(command.pid), timeout_s=10)

    assert command.returncode == 0, stderr
    assert (out / FAIL_MARKER).read_text() == "7"  # a worker did die mid-segment
    assert stdout.splitlines()[0].startswith("extract: 1 videos (0 failed), 3 segments")
    assert "12 frames, 12 faces, 0 errors" in stdout and len(stdout.splitlines()) == 3
    assert all(line.startswith("extract: ") for line in stderr.splitlines()), stderr
    for noise in RAY_NOISE:
        assert noise not in stdout + stderr, noise
    assert (tmp_path / "home" / ".ray" / "auth_token").exists()  # Ray's token auth stayed on
    assert left == []


@pytest.mark.ray
def test_wait_for_free_cpu_returns_once_an_ended_stage_gives_its_cpus_back(ray_local):
    """The next stage's Ray Data job starts only when a CPU is free (no 'will hang')."""
    import threading
    import time

    import ray

    from pipelines.runtime.ray_setup import wait_for_free_cpu

    @ray.remote
    class Holder:
        def ready(self) -> bool:
            return True

    total = int(ray.cluster_resources()["CPU"])
    holder = Holder.options(num_cpus=total).remote()
    ray.get(holder.ready.remote())
    assert not wait_for_free_cpu(timeout_s=0.3)  # every CPU held: it gives up in time
    threading.Timer(0.5, ray.kill, args=(holder,)).start()
    started = time.monotonic()
    assert wait_for_free_cpu(timeout_s=20.0)
    assert 0.4 < time.monotonic() - started < 20.0
