"""A real multi-node Ray cluster on this machine, for the cluster test and ``bench archive --ray``.

``LoopbackCluster(nodes=2, cpus=1)`` runs ``ray start --head`` and ``nodes - 1`` times ``ray start --address``
on 127.0.0.1, each ``--block`` in its own session, so that every node (its raylet, object store, GCS on
the head, and the workers holding actors) is one process group: :meth:`LoopbackCluster.kill` ends one
node with SIGKILL, as a crash would, and :meth:`LoopbackCluster.close` ends them all, by process group,
never touching other Ray instances on the machine. Every port is chosen free, the temporary folders are
short (Ray's unix sockets live there) and node death is detected within ~3 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    """A Ray head and ``nodes - 1`` worker nodes of ``cpus`` CPUs each on 127.0.0.1 (see the module docstring).

    Use as a context manager, or call :meth:`close`. :meth:`start_workers` joins the workers and waits.
    """

    def __init__(self, nodes: int = 2, cpus: int = 1, object_store_mb: int = 80, start_workers: bool = True) -> None:
        self.cpus, self.object_store_mb, self.workers = cpus, object_store_mb, nodes - 1
        # RAY_AUTH_MODE: a token in ~/.ray (left by a local ray.init) must not turn token auth on for some nodes only
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled",
                        RAY_health_check_period_ms="1000",
                        RAY_health_check_failure_threshold="3", RAY_health_check_timeout_ms="1000")
        self.nodes: dict[str, subprocess.Popen] = {}
        self._start_head()
        if start_workers:
            self.start_workers()

    def _start_head(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sray", dir="/tmp"))  # unix socket paths must stay short
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._start("head", ["--head", "--port", str(self.port), "--include-dashboard=false",
                             "--dashboard-port", str(free_port())])

    def _start(self, name: str, args: list[str]) -> None:
        cmd = [RAY, "start", *args, "--num-cpus", str(self.cpus), "--node-ip-address", "127.0.0.1", "--block",
               "--disable-usage-stats", "--object-store-memory", str(self.object_store_mb << 20),
               "--temp-dir", str(self.root / name), "--dashboard-agent-listen-port", str(free_port()),
               "--dashboard-agent-grpc-port", str(free_port()), "--runtime-env-agent-port", str(free_port()),
               "--metrics-export-port", str(free_port())]
        with open(self.root / f"{name}.log", "wb") as log:
            self.nodes[name] = subprocess.Popen(cmd, env=self.env, start_new_session=True, stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=subprocess.STDOUT)

    def wait_started(self, name: str, timeout: float = 120.0) -> None:
        """Wait until ``ray start`` of node ``name`` says the node is up."""
        deadline = time.monotonic() + timeout
        log = self.root / f"{name}.log"
        while b"Ray runtime started" not in log.read_bytes():
            if self.nodes[name].poll() is not None:
                raise RuntimeError(f"ray start ({name}) ended: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"ray start ({name}) not up within {timeout:.0f} s: {log.read_text()[-2000:]}")
            time.sleep(0.3)

    def start_workers(self, tries: int = 2) -> None:
        """Join the worker nodes (``worker1`` ...) once the head is up; wait for each. A node that fails to
        join (a port taken between its choice and its use) costs a fresh cluster, ``tries`` times in all."""
        for attempt in range(tries):
            try:
                self.wait_started("head")
                names = [f"worker{i}" for i in range(1, self.workers + 1)]
                for name in names:
                    self._start(name, ["--address", self.address])
                for name in names:
                    self.wait_started(name)
                return
            except (RuntimeError, TimeoutError):
                self.close()
                if attempt + 1 == tries:
                    raise
                self._start_head()

    def kill(self, name: str) -> None:
        """SIGKILL every process of node ``name`` (its process group: no clean-up, as a crash)."""
        proc = self.nodes[name]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def close(self) -> None:
        for name in list(self.nodes):
            self.kill(name)
        self.nodes.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LoopbackCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
