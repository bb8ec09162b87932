"""Every operator mistake `edge-agent run` can meet gives one line and exit status 2, before the agent advertises
or trains: run as a board runs it, in a subprocess."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_agent.deploy import certs
from edge_agent.discovery.mdns import MdnsBrowser

BASE = [sys.executable, "-m", "edge_agent", "run", "--setting", "smoke", "--backend", "numpy", "--quiet"]
RUN = [*BASE, "--insecure"]


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([*RUN, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False,
                          stdin=subprocess.DEVNULL)


def _one_line_exit_2(result: subprocess.CompletedProcess[str], expected: str) -> None:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2, lines
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], lines


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A regular file: nothing can be created below it, even by root."""
    path = tmp_path / "a-file"
    path.write_text("")
    return path


@pytest.mark.parametrize(("args", "expected"), [
    (["--shard", "0/3", "--host", "not-an-ip"], "is not an IP address"),
    (["--shard", "0/3", "--host", "0.0.0.0"], "cannot be advertised"),
    (["--shard", "0/3", "--id", "bad id/x"], "--id"),
    (["--shard", "0/100000"], "at most 4096 agents"),
    (["--shard", "0/2"], "cannot form the smoke setting's round graphs"),
    (["--shard", "3"], "expected i/M"),
])
def test_bad_arguments_give_one_line_and_status_2(args: list[str], expected: str) -> None:
    _one_line_exit_2(_run(*args, "--no-mdns", "--peers", "127.0.0.1:9"), expected)


def test_an_address_this_machine_does_not_have_gives_one_line_and_status_2() -> None:
    # 192.0.2.1 is TEST-NET-1: binding to it fails locally, and nothing is ever sent to it.
    _one_line_exit_2(_run("--shard", "0/3", "--host", "192.0.2.1", "--no-mdns", "--peers", "127.0.0.1:9"),
                     "cannot listen on 192.0.2.1")


def test_a_port_in_use_gives_one_line_and_status_2(free_ports: Callable[[int], list[int]]) -> None:
    port = free_ports(1)[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        _one_line_exit_2(_run("--shard", "0/3", "--port", str(port), "--no-mdns", "--peers", "127.0.0.1:9"),
                         f"cannot listen on 127.0.0.1:{port}")


@pytest.mark.parametrize("which", ["--metrics", "--checkpoint-dir"])
def test_unwritable_outputs_give_one_line_and_status_2_before_advertising(blocker: Path, which: str) -> None:
    started = time.monotonic()
    result = _run("--shard", "0/3", which, str(blocker / "below"), "--service-type",
                  f"_ea-{uuid.uuid4().hex[:8]}._tcp.local.", "--wait-peers", "60")
    _one_line_exit_2(result, f"{which} {blocker / 'below'}: ")
    assert time.monotonic() - started < 30  # not after the 60 s wait for peers


@pytest.mark.parametrize(("args", "expected"), [
    (["--metrics", "/proc/x"], "--metrics /proc/x: "),
    (["--checkpoint-dir", "/proc/x/y"], "--checkpoint-dir /proc/x/y: "),
    (["--data-dir", "/proc"], "--data-dir: Fashion-MNIST not found in /proc"),
])
def test_every_path_error_names_its_option(args: list[str], expected: str) -> None:
    _one_line_exit_2(_run("--shard", "0/3", "--no-mdns", "--peers", "127.0.0.1:9", *args), expected)


@pytest.fixture
def first_agent(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An agent (shard 0 of 3, run 'dup') waiting for its peers under a service type of its own."""
    service, run = f"_ea-{uuid.uuid4().hex[:8]}._tcp.local.", f"dup-{uuid.uuid4().hex[:6]}"
    process = subprocess.Popen([*RUN, "--shard", "0/3", "--service-type", service, "--run", run,
                                "--wait-peers", "120"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        assert "serving on" in process.stderr.readline()
        _wait_until_advertised(service, run, "client-0")
        yield service, run
    finally:
        process.kill()
        process.wait()


def _wait_until_advertised(service: str, run: str, agent_id: str, timeout: float = 60) -> None:
    """Until the agent answers on mDNS: registered, so a twin's probe meets its answer (a fixed sleep was too short
    on a loaded machine)."""
    deadline = time.monotonic() + timeout
    with MdnsBrowser(service) as browser:
        while time.monotonic() < deadline:
            found = browser.sweep(2.0).values()
            if any(record is not None and (record.run, record.agent_id) == (run, agent_id) for record in found):
                return
    raise AssertionError(f"{agent_id} of run {run} never answered on {service}")


def test_a_duplicate_id_on_the_lan_is_refused_when_it_registers(first_agent: tuple[str, str]) -> None:
    service, run = first_agent
    _one_line_exit_2(_run("--shard", "0/3", "--service-type", service, "--run", run), "already advertised in run")


def test_a_second_agent_for_the_same_shard_is_refused_once_it_browses(first_agent: tuple[str, str]) -> None:
    """Found only by browsing, so after the agent's start-up line; it still ends in one error line and status 2."""
    service, run = first_agent
    result = _run("--shard", "0/3", "--id", "pi-kitchen", "--service-type", service, "--run", run)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert lines[-1].startswith("Error: shard 0/3 is already served by client-0"), lines


@pytest.mark.parametrize(("security", "expected"), [
    ([], "give --certs DIR"),
    (["--insecure", "--certs", "."], "exclude each other"),
    (["--certs", "/nonexistent/certs"], "is not a folder"),
    (["--certs", "{cluster}", "--id", "pi-kitchen"], "--certs: {cluster}/pi-kitchen.crt is missing"),
    (["--certs", "{cluster}", "--id", "operator"], "operator.crt is an operator certificate, which may read status"),
])
def test_security_mistakes_give_one_line(security: list[str], expected: str, cluster_certs: Path,
                                        tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    shutil.copytree(cluster_certs, folder)
    certs.issue(folder, "operator", operator=True)  # `run --id operator` must not start a board on it
    args = [arg.replace("{cluster}", str(folder)) for arg in security]
    result = subprocess.run([*BASE, "--shard", "0/3", "--no-mdns", "--peers", "127.0.0.1:9", *args],
                            capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    _one_line_exit_2(result, expected.replace("{cluster}", str(folder)))


@pytest.mark.parametrize(("data", "expected"), [
    ("missing.npz", "--data missing.npz: no such file: missing.npz"),
    ("bad.npz", "--data bad.npz: y: labels must be 0 or more"),
])
def test_bad_data_is_one_line(tmp_path: Path, data: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "bad.npz", x=np.zeros((300, 4), np.float32), y=np.arange(300) % 3 - 1)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([*RUN, "--shard", "0/4", "--data", data], capture_output=True, text=True, timeout=60,
                            env=env, check=False, stdin=subprocess.DEVNULL)
    _one_line_exit_2(result, expected)
