"""Nothing of a command's local Ray outlives the command, even when it is SIGKILLed.

Each test starts its command in a new session and recognises that command's processes by
their session id, never by name (other Ray instances run on this machine during tests).
Only processes of that session are ever signalled, by pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.runtime.ray_guard import end_processes, read_process_table

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self"), reason="finds a session's processes through /proc"
)
ROOT = Path(__file__).resolve().parents[2]


def session_pids(session: int) -> list[int]:
    """Processes whose session id is `session` (see proc(5), field 6 of /proc/PID/stat)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        state, session_id = stat[stat.rindex(b")") + 2 :].split()[0:4:3]
        if int(session_id) == session and state != b"Z":
            found.append(int(name))
    return found


def guard_of(command: int) -> int:
    table = read_process_table()
    for pid, (ppid, _) in table.items():
        if ppid == command and "ray_guard" in Path(f"/proc/{pid}/cmdline").read_text():
            return pid
    raise AssertionError(f"no guard started by {command}")


def wait_until_gone(pids: list[int], timeout_s: float) -> list[int]:
    """The pids still alive after `timeout_s`; those are then SIGKILLed so nothing leaks."""
    deadline = time.monotonic() + timeout_s
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if os.path.exists(f"/proc/{pid}") and not _zombie(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    return alive


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return False


def start(script: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


STUBBORN = """
import signal, subprocess, sys, time
from pipelines.runtime.ray_guard import start_guard
start_guard()
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
print(child.pid, flush=True)
time.sleep(300)
"""


def test_guard_ends_a_child_that_ignores_sigterm_after_its_parent_is_killed():
    command = start(STUBBORN)
    child = int(command.stdout.readline())
    guard = guard_of(command.pid)
    time.sleep(1.0)  # the guard has seen the child
    command.kill()
    command.wait()
    assert wait_until_gone([child, guard], timeout_s=8) == []


def test_end_processes_leaves_a_pid_whose_start_time_changed_alone():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert end_processes({sleeper.pid: "not its start time"}, grace_s=0.1) == []
        assert sleeper.poll() is None
        start_time = read_process_table()[sleeper.pid][1]
        assert end_processes({sleeper.pid: start_time}, grace_s=2.0) == []  # ended by SIGTERM
        assert sleeper.wait(timeout=5) == -signal.SIGTERM
    finally:
        sleeper.kill()


LOCAL_RAY = """
import os, time
import ray
from pipelines.runtime.ray_setup import connect_ray
connect_ray()
@ray.remote
def busy():
    time.sleep(300)
ref = busy.remote()
@ray.remote
class Holder:
    def pid(self):
        return os.getpid()
holder = Holder.remote()
print(ray.get(holder.pid.remote()), flush=True)
time.sleep(300)
"""


def test_sigkilled_command_leaves_no_process_of_its_local_ray():
    """Without the guard, ray::DashboardAgent and ray::RuntimeEnvAgent stayed (PPID 1)."""
    command = start(LOCAL_RAY)
    try:
        actor = int(command.stdout.readline())  # Ray is up, an actor and a task run
        guard = guard_of(command.pid)
        time.sleep(1.5)  # the guard has seen every process
        started = session_pids(command.pid)
        assert actor in started and len(started) >= 6  # driver, gcs, raylet, agents, workers
        command.kill()
        command.wait()
        assert wait_until_gone(session_pids(command.pid) + [guard], timeout_s=15) == []
    finally:
        if command.poll() is None:
            command.kill()
        wait_until_gone(session_pids(command.pid), timeout_s=0)
