"""Where the benchmarks find the shared media set, and how they run `rayswap` commands."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import time
from collections.abc import Iterator
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


@contextlib.contextmanager
def one_ray() -> Iterator[None]:
    """Join Ray once for every `run_rayswap` command inside, as each command would join it.

    That is RAY_ADDRESS when set, else a local Ray of this machine's default size (every
    CPU and GPU), shut down at the end. The benchmark pays for one Ray start, not one per
    command. Inside another `one_ray()` it uses that one's Ray (and leaves it up).
    """
    import ray

    from pipelines.runtime.ray_setup import connect_ray

    if ray.is_initialized():
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    connect_ray(None)
    try:
        yield
    finally:
        ray.shutdown()


def run_rayswap(args: list[str], timeout_s: float = 900) -> tuple[str, float]:
    """Run `rayswap ARGS` (the CLI's own parsing, run and summary) in this process.

    Inside `one_ray()` the command finds Ray already joined and uses it. Returns what the
    command printed on stdout and its wall seconds; its stderr (progress) passes through.
    Exits naming the command's exit code when it fails; raises TimeoutError when it runs
    over `timeout_s`.
    """
    from pipelines.cli import app

    def over_time(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"rayswap {args[0]} ran over {timeout_s:.0f} s")

    stdout = io.StringIO()
    previous = signal.signal(signal.SIGALRM, over_time)
    signal.alarm(max(1, int(timeout_s)))
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(stdout):
            code = app(args=list(args), prog_name="rayswap", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - started
    if code not in (None, 0):
        sys.stderr.write(stdout.getvalue()[-3000:])
        raise SystemExit(f"rayswap {args[0]} failed with exit code {code}")
    return stdout.getvalue(), seconds
