"""A watchdog that ends what is left of a command's local Ray when the command dies.

    python pipelines/runtime/ray_guard.py PID      # started by connect_ray, never by hand

`ray.init()` starts gcs_server, raylet and helpers as children of the driver; the raylet
starts the dashboard and runtime-env agents and the workers. Ray ties the direct children
to the driver (PR_SET_PDEATHSIG), but when the driver is killed (SIGKILL, OOM) the agents
outlive it: they notice that the raylet is gone and call sys.exit in a background task,
which does not end the process. They stay forever, re-parented to init.

The guard is a small process in its own session (so a Ctrl-C or a kill of the command's
process group does not take it down first). While the command runs, it notes the command's
descendants, with their start times, every `interval_s`. When the command is gone, it
sends SIGTERM to those still alive, and SIGKILL after a grace period. A pid whose start
time changed belongs to another process now and is left alone. Ray-free on purpose.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

GRACE_S = 2.0

ProcessTable = dict[int, tuple[int, str]]  # pid -> (parent pid, start time)


def read_process_table() -> ProcessTable:
    """Every process of the machine: /proc on Linux, `ps` elsewhere."""
    if os.path.isdir("/proc/self"):
        return _proc_table()
    return parse_ps(subprocess.run(_PS, capture_output=True, text=True, check=False).stdout)


_PS = ["ps", "-A", "-o", "pid=", "-o", "ppid=", "-o", "stat=", "-o", "lstart="]


def _proc_table() -> ProcessTable:
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # ended meanwhile
        fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (comm) "
        if fields[0] != b"Z":  # a zombie has ended already
            table[int(name)] = (int(fields[1]), fields[19].decode())  # ppid, starttime
    return table


def parse_ps(text: str) -> ProcessTable:
    """Parse `ps -A -o pid= -o ppid= -o stat= -o lstart=` output (zombies left out)."""
    table = {}
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[0].isdigit() and parts[1].isdigit():
            if not parts[2].startswith("Z"):
                table[int(parts[0])] = (int(parts[1]), parts[3].strip())
    return table


def descendants(root: int, table: ProcessTable) -> dict[int, str]:
    """pid -> start time of every process below `root` in `table`."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in found:
            found[pid] = table[pid][1]
            todo.extend(children.get(pid, []))
    return found


def end_processes(known: dict[int, str], grace_s: float = GRACE_S) -> list[int]:
    """SIGTERM, then SIGKILL after `grace_s`, the processes of `known` still running.

    Only a pid whose start time is unchanged is signalled; children they started since
    the last look are included. Returns the pids that outlived SIGTERM.
    """
    table = read_process_table()
    alive = {pid: start for pid, start in known.items() if table.get(pid, (0, ""))[1] == start}
    for pid in list(alive):
        alive.update(descendants(pid, table))
    for pid in alive:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        table = read_process_table()
        alive = {pid: s for pid, s in alive.items() if table.get(pid, (0, ""))[1] == s}
    for pid in alive:
        _signal(pid, signal.SIGKILL)
    return sorted(alive)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def watch(parent: int, interval_s: float = 0.5) -> None:
    """Note `parent`'s descendants until `parent` is gone, then end those left."""
    me = os.getpid()
    known: dict[int, str] = {}
    while os.getppid() == parent:  # re-parented once the command has ended
        table = read_process_table()
        known = {pid: s for pid, s in known.items() if table.get(pid, (0, ""))[1] == s}
        known.update(descendants(parent, table))
        known.pop(me, None)
        time.sleep(interval_s)
    end_processes(known)


def start_guard() -> subprocess.Popen:
    """Start the guard for this process (the command), in its own session, output nowhere.

    It runs as a script (stdlib only), so it starts in ~50 ms whatever the current folder.
    """
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    watch(int(sys.argv[1]))
