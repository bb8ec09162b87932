"""Helpers of the `status` and `inspect` tests: the CLI as a subprocess, a fleet agent's address, one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from fleet import Fleet


def address(agents: Fleet, index: int) -> str:
    """host:port agent i serves on, from its start-up line."""
    match = re.search(r"serving on (\S+) in run", agents.log(index))
    assert match is not None, agents.log(index)
    return match[1]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


def fleet_args(agents: Fleet, certs: bool = True) -> list[str]:
    """--service-type and --run of the fleet, and the operator's certificate."""
    return ["--service-type", agents.service, "--run", str(agents.run), "--timeout", "4",
            *(["--certs", str(agents.certs_dir())] if certs else [])]


def one_error_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The single stderr line of a command that failed with `code` and printed nothing on stdout."""
    assert (done.returncode, done.stdout) == (code, ""), done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]
