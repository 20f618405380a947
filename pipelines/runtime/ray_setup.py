"""Starting or joining Ray, and the actor pool strategy (the plan: pipelines/runtime/node_plan.py).

A command that starts its own local Ray (no --address, no RAY_ADDRESS) owns it: token
auth stays as Ray sets it (on by default) without Ray's warning about it, and a guard
process (pipelines/runtime/ray_guard.py) ends whatever is left of that Ray if the command is
killed. Every command keeps Ray's own chatter in Ray's log folder
(/tmp/ray/session_latest/logs): the console carries rayswap's progress, errors and summary.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import re
import subprocess
import sys
import threading
import time

import ray

from pipelines.runtime.checks import LOCAL, ray_address
from pipelines.runtime.ray_guard import start_guard

# A line of Ray's C++ log: "[2026-01-31 12:00:00,123 E 4242 4242] core_worker.cc:2465: ..."
# (levels D, I, W and E; a fatal line, which ends the process, still reaches the console).
RAY_NATIVE_LINE = re.compile(rb"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWE] \d+ \d+\] ")

AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"

_guard: subprocess.Popen | None = None
_quiet = False


def connect_ray(address: str | None = None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS), or start a local Ray for this command.

    Reuses an already-initialised Ray (tests, notebooks, a job's driver).
    """
    global _guard
    if ray.is_initialized():
        return
    address = ray_address(address)
    if address == LOCAL:
        # Our own Ray, never a `ray start` head that happens to run on this machine. Ray
        # turns token auth on for it (unless RAY_AUTH_MODE says otherwise) and warns that
        # it did: the auth stays, the warning goes.
        logging.getLogger(AUTH_LOGGER).setLevel(logging.ERROR)
        if _guard is None:
            _guard = start_guard()
    quiet_ray_console()
    ray.init(
        address=address,
        include_dashboard=False if address == LOCAL else None,
        # Stages report per-item errors themselves; worker logs stay in Ray's log folder
        # (/tmp/ray/session_latest/logs) instead of flooding the progress display.
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=True,
    )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI prints its own progress line
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def quiet_ray_console() -> None:
    """Keep Ray's own messages in its log folder, off this process's console. Idempotent.

    - "Progress bars disabled": the CLI prints its own progress line.
    - Messages the raylet pushes to the driver (e.g. "... PYTHON worker processes have
      been started ... maximum expected startup concurrency"), which Ray prints on stdout:
      the raylet writes them to raylet.out itself.
    - ERROR lines of Ray's C++ core in the driver, which it writes both to
      python-core-driver-*.log and to file descriptor 2 (see `filter_native_stderr`).
    """
    global _quiet
    if _quiet:
        return
    _quiet = True
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    ray._private.worker._worker_logs_enabled = False
    filter_native_stderr()


def filter_native_stderr(pattern: re.Pattern[bytes] = RAY_NATIVE_LINE) -> None:
    """Drop lines matching `pattern` from what native code writes to file descriptor 2.

    Python's sys.stderr moves to a copy of the console's descriptor (it stays a terminal
    when it was one); descriptor 2 becomes a pipe that a thread copies to the console,
    line by line, leaving out the matching lines. At exit, Ray is shut down first (its
    last lines are filtered too), then descriptor 2 is put back.
    """
    try:
        if sys.stderr.fileno() != 2:  # e.g. a notebook's or pytest's stream: leave it alone
            return
    except (AttributeError, OSError, ValueError):
        return
    console = os.dup(2)
    sys.stderr.flush()
    sys.stderr = io.TextIOWrapper(
        io.FileIO(os.dup(console), "w"),
        encoding=sys.stderr.encoding,
        errors="backslashreplace",
        line_buffering=True,  # a line in one write: the copier cannot cut into it
    )
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    copier = threading.Thread(
        target=_copy_lines, args=(read_end, console, pattern), name="rayswap-stderr", daemon=True
    )
    copier.start()

    def restore() -> None:
        ray.shutdown()
        os.dup2(console, 2)  # closes the pipe's last write end: the copier sees EOF
        copier.join(timeout=2.0)

    atexit.register(restore)


def _copy_lines(read_end: int, console: int, pattern: re.Pattern[bytes]) -> None:
    pending = b""
    while chunk := os.read(read_end, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        kept = b"".join(line + b"\n" for line in lines if not pattern.match(line))
        if pending and not pending.startswith(b"["):  # cannot become a Ray line: show it now
            kept, pending = kept + pending, b""
        _write_all(console, kept)
    if pending and not pattern.match(pending):
        _write_all(console, pending)
    os.close(read_end)


def _write_all(fd: int, payload: bytes) -> None:
    try:
        while payload:
            payload = payload[os.write(fd, payload) :]
    except OSError:
        pass  # the console went away (a closed pipe): keep draining, or writers would block


def wait_for_free_cpu(timeout_s: float = 10.0, poll_s: float = 0.1) -> bool:
    """Wait until the joined Ray has a free CPU (at most `timeout_s`); True if it has.

    The actors of a stage that just ended (extract before train, train before render, in
    one process) give their CPUs back a moment after the stage returns. A Ray Data job
    started in that moment finds none free and warns that it "will hang"; it does not,
    but the warning is wrong and alarming, so the next stage waits for the CPUs first.
    """
    deadline = time.monotonic() + timeout_s
    while ray.available_resources().get("CPU", 0.0) <= 0:
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def actor_pool(requested: int | None, workers: int) -> ray.data.ActorPoolStrategy:
    """A fixed pool when --workers is given (all actors start at once); otherwise one
    that grows from 1 to `workers` with the queue, so an autoscaling cluster adds nodes."""
    if requested is not None:
        return ray.data.ActorPoolStrategy(size=requested)
    return ray.data.ActorPoolStrategy(min_size=1, max_size=workers)
