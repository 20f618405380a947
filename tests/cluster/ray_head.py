"""A private `ray start --head --block` on 127.0.0.1 for tests: own temp dir, HOME and ports.

It never touches another Ray on the machine: it is stopped by signalling its own process
group (never `ray stop`, which stops every Ray of the host).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (outside Ray's worker port range)."""
    ports: set[int] = set()
    while len(ports) < n:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not 10002 <= port <= 19999:
            ports.add(port)
    return sorted(ports)


class LocalHead:
    """`ray start --head --block` with token auth, in a process group of its own."""

    def __init__(self, num_cpus: int = 2, token: str | None = None) -> None:
        # short paths: Ray's unix sockets live under temp_dir (108-byte limit)
        self.root = Path(tempfile.mkdtemp(prefix="rsh-", dir="/tmp"))
        self.home = self.root / "home"
        self.temp_dir = self.root / "ray"
        self.token = token or uuid.uuid4().hex + uuid.uuid4().hex
        (self.home / ".ray").mkdir(parents=True)
        (self.home / ".ray" / "auth_token").write_text(self.token)
        gcs, dash, client, agent, agent_grpc, runtime_env, metrics, nm, om = free_ports(9)
        self.gcs_port, self.dashboard_port = gcs, dash
        self.address = f"http://127.0.0.1:{dash}"
        self.args = [
            str(VENV_BIN / "ray"),
            "start",
            "--head",
            "--block",
            f"--num-cpus={num_cpus}",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
            f"--ray-client-server-port={client}",
            f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--runtime-env-agent-port={runtime_env}",
            f"--metrics-export-port={metrics}",
            f"--node-manager-port={nm}",
            f"--object-manager-port={om}",
            f"--temp-dir={self.temp_dir}",
            "--object-store-memory=200000000",
            "--disable-usage-stats",
        ]
        self.log = self.root / "head.log"
        self.process: subprocess.Popen | None = None
        self.session = 0  # its session id = process group id (start_new_session)

    def env(self) -> dict[str, str]:
        """The head's environment: own HOME (token file), token auth on, venv first on PATH."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
        env.update(
            HOME=str(self.home),
            RAY_AUTH_MODE="token",
            RAY_USAGE_STATS_ENABLED="0",
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        )
        return env

    def start(self, timeout_s: float = 60.0) -> LocalHead:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                self.args,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.session = self.process.pid
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited: {self.log.read_text()[-2000:]}")
            if self._jobs_api_up():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"head not up in {timeout_s} s: {self.log.read_text()[-2000:]}")

    def _jobs_api_up(self) -> bool:
        request = urllib.request.Request(
            f"{self.address}/api/jobs/", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the head's process group (`ray start --block` and the daemons it
        started), SIGKILL to whatever is left after a grace period; waits until all are gone."""
        if self.process is None:
            return
        deadline = time.monotonic() + timeout_s
        grace = time.monotonic() + 1.0  # the test is over: no need to wait long
        sig = signal.SIGTERM
        while self.leftover_pids() and time.monotonic() < deadline:
            for pid in self.leftover_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if self.process.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=0.5)
            else:
                time.sleep(0.5)
            if time.monotonic() > grace:
                sig = signal.SIGKILL
        self.process = None

    def leftover_pids(self) -> list[int]:
        """Live processes of the head's session (Ray's daemons and workers stay in it)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # fields: state, ppid, pgrp, session, ...
            if fields[0] != "Z" and self.session in (int(fields[2]), int(fields[3])):
                found.append(int(entry.name))
        return found
