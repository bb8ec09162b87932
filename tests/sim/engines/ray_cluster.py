"""Ray inside a network namespace of the test's own: Ray's servers listen on every address of their host, and in a
namespace that holds only loopback that is 127.0.0.1 alone. Its processes (head, more nodes, drivers) share a token
and a temp folder of their own, and `stop` ends every process in the namespace by its id, never another's Ray."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")
OBJECT_STORE_BYTES = 80_000_000  # per node; Ray's floor is 75 MiB-ish, the smoke clients' data is 3 MB


def unavailable_reason() -> str | None:
    """Why a Ray namespace cannot be made here (not root, no `ip`, no network namespaces), or None."""
    if os.geteuid() != 0:
        return "a Ray namespace needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "a Ray namespace needs ip (iproute2)"
    name = f"ea-probe-{os.getpid()}-{secrets.token_hex(2)}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    try:
        ran = subprocess.run(["ip", "netns", "exec", name, "true"], capture_output=True, text=True, check=False)
        return None if ran.returncode == 0 else f"cannot run in a network namespace: {ran.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


class RayNamespace:
    """A loopback-only namespace for Ray; use it as a context manager so everything in it is stopped."""

    def __init__(self) -> None:
        self.name = f"ea-ray-{os.getpid()}-{secrets.token_hex(3)}"
        # Short: Ray's unix sockets live under it and a socket path may not pass 107 bytes.
        self.temp = Path(tempfile.mkdtemp(prefix="ea-ray-", dir="/tmp"))
        self.env = {**os.environ, "RAY_TMPDIR": str(self.temp), "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0",
                    "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self.address: str | None = None

    def __enter__(self) -> RayNamespace:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        try:
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, capture_output=True)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def run(self, argv: Sequence[str], timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """argv inside the namespace with its Ray environment; waits for it and returns its outputs."""
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd, check=False)

    def start_head(self, cpus: int) -> str:
        """`ray start --head` on a free port; returns the address other nodes and drivers join."""
        done = self.run([RAY, "start", "--head", "--port", "0", "--num-cpus", str(cpus),
                         "--object-store-memory", str(OBJECT_STORE_BYTES), "--dashboard-port", "0",
                         "--disable-usage-stats"], timeout=180)
        found = re.search(r"ray start --address='([^']+)'", done.stdout + done.stderr)
        assert done.returncode == 0 and found, done.stdout + done.stderr
        self.address = found.group(1)
        return self.address

    def add_node(self, cpus: int) -> None:
        """A second node: `ray start --address` with CPUs and an object store of its own."""
        assert self.address is not None, "start the head first"
        done = self.run([RAY, "start", "--address", self.address, "--num-cpus", str(cpus),
                         "--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats"], timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr

    def pids(self) -> list[int]:
        """Every process in the namespace."""
        listed = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True, check=False)
        return [int(pid) for pid in listed.stdout.split()]

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM every process in the namespace, SIGKILL what is left after `grace_s`, then remove it all."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.2)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
        shutil.rmtree(self.temp, ignore_errors=True)


@contextmanager
def two_node_cluster(tries: int = 2) -> Iterator[RayNamespace]:
    """A head and a second node, one CPU each. A loaded machine can keep a raylet past Ray's own 30 s start-up
    limit, so a cluster that fails to come up is stopped and started once more in a fresh namespace."""
    for attempt in range(1, tries + 1):
        namespace = RayNamespace().__enter__()
        try:
            namespace.start_head(cpus=1)
            namespace.add_node(cpus=1)
            break
        except AssertionError:
            namespace.stop()
            if attempt == tries:
                raise
    try:
        yield namespace
    finally:
        namespace.stop()
