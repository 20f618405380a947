"""Where the benchmarks find the shared media set, and how they run `rayswap` commands."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_clips(data: Path, names: tuple[str, ...] | list[str]) -> list[str]:
    """Paths of `names` under `data`/video; exits with a clear message if any is missing."""
    paths = [data / "video" / name for name in names]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"benchmark clips not found: {missing} (use --data)")
    return [str(p) for p in paths]


def run_rayswap(args: list[str], timeout_s: float = 900) -> tuple[str, float]:
    """Run `python -m pipelines.cli ARGS` from the project root, as a user would.

    Returns its stdout and wall seconds; exits with its output's tail when it fails.
    """
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.setdefault("RAY_AUTH_MODE", "disabled")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"rayswap {args[0]} failed with exit code {done.returncode}")
    return done.stdout, time.perf_counter() - started
