"""`edge-agent dashboard` against three real agents over mutual TLS: the page in headless Chromium shows the agents,
links with bytes and a rising round, live; `/api/fleet` says what `status --all --json` says; a fleet that
disappears leaves the page on its last state, marked gone; Ctrl-C ends it with 0; mistakes are one line.

The screenshot goes to the test's folder, and also to $EDGE_AGENT_DASHBOARD_SCREENSHOT when set (how the README's
docs/dashboard.png is taken).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asking import address, cli, fleet_args, one_error_line
from browser import CHROMIUM, Chromium
from fleet import Fleet

from edge_agent.fleet.status import AGENT_KEYS

IDS = [f"client-{i}" for i in range(3)]
STABLE = ("address", "id", "run", "version", "profile", "backend", "algorithm", "shard", "clients", "security",
          "rounds", "members", "link")  # what does not change between two asks a moment apart
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make test` "
                                    "installs it: apt-get install chromium)")


class Dashboard:
    """An `edge-agent dashboard` process and the URL it announced; killed on the way out if it still runs."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "edge_agent", "dashboard", "--listen", "127.0.0.1:0",
                                         "--interval", "1", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        self.line = _first_line(self.process, timeout=60)
        match = re.match(r"dashboard at (http://127\.0\.0\.1:\d+/), watching ", self.line)
        assert match is not None, self.line
        self.url = match[1]

    def fleet(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "api/fleet", timeout=10) as answer:
            assert answer.status == 200
            document: dict[str, Any] = json.load(answer)
            return document

    def fleet_when(self, ready: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60) -> dict[str, Any]:
        """/api/fleet once `ready(document)` holds."""
        deadline = time.monotonic() + timeout
        while not ready(document := self.fleet()):
            assert time.monotonic() < deadline, f"/api/fleet never showed {what}: {document}"
            time.sleep(0.5)
        return document

    def ctrl_c(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGINT)
        stdout, stderr = self.process.communicate(timeout=20)
        return self.process.returncode, stdout, stderr

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            process.kill()
            raise AssertionError(f"no start-up line in {timeout:.0f} s: {process.communicate()[1][-3000:]}")
    line = process.stdout.readline().rstrip("\n")
    assert line, f"exited {process.wait()}: {process.communicate()[1][-3000:]}"
    return line


@pytest.fixture(scope="module")
def dashboard(operator_fleet: Fleet) -> Iterator[Dashboard]:
    """The dashboard of the module's fleet, found on mDNS, read with the operator's certificate."""
    watching = Dashboard(*fleet_args(operator_fleet))
    try:
        yield watching
    finally:
        watching.stop()


def test_mistakes_are_one_line_and_exit_status_2(tmp_path: Path) -> None:
    assert one_error_line(cli("dashboard", "--listen", "localhost:8080"), 2) == (
        "Error: --listen: 'localhost' is not an IP address")
    assert one_error_line(cli("dashboard", "--peers", "127.0.0.1"), 2).startswith("Error: --peers: ")
    assert one_error_line(cli("dashboard", "--run", "no spaces"), 2).startswith("Error: --run: ")
    assert one_error_line(cli("dashboard", "--certs", str(tmp_path / "none")), 2) == (
        f"Error: --certs: {tmp_path / 'none'} is not a folder")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(cli("dashboard", "--listen", f"127.0.0.1:{port}", "--peers", "127.0.0.1:9"), 2)
    assert line.startswith(f"Error: --listen: cannot serve on 127.0.0.1:{port}: ") and "in use" in line


def test_help_says_it_serves_loopback_by_default_and_reads_only() -> None:
    done = cli("dashboard", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "[default: 127.0.0.1:8080]" in text and "It only reads" in text and "edge-agent[dashboard]" in text


@needs_chromium
def test_the_page_shows_the_three_agents_links_with_bytes_and_a_rising_round(dashboard: Dashboard,
                                                                             tmp_path: Path) -> None:
    with Chromium(tmp_path / "chromium") as page:
        page.open(dashboard.url)
        shown = page.wait_for("[...document.querySelectorAll('#agents tr.agent')].map(r => r.dataset.agent)"
                              ".filter(id => id).length === 3 && [...document.querySelectorAll('#agents tr.agent')]"
                              ".map(r => r.dataset.agent)", 90, "three agents")
        assert sorted(shown) == IDS
        nodes = page.evaluate("[...document.querySelectorAll('#topology .node.online')].map(n => n.dataset.agent)")
        assert sorted(nodes) == IDS
        links = page.wait_for("[...document.querySelectorAll('#links tr.link')].filter(r => "
                              "+r.dataset.lastRoundBytes > 0).map(r => r.innerText)", 60, "a link with bytes")
        assert any(re.search(r"client-\d \u2194 client-\d.*\d+\.\d{3} MB", row) for row in links), links
        first = int(page.wait_for("/^\\d+$/.test(document.getElementById('round').textContent) && "
                                  "document.getElementById('round').textContent", 30, "a round number"))
        later = int(page.wait_for(f"+document.getElementById('round').textContent > {first} && "
                                  "document.getElementById('round').textContent", 90, "the round rising"))
        assert later > first
        assert page.evaluate("document.getElementById('feed').className") == "feed live"
        assert page.wait_for("document.querySelectorAll('.uplot').length >= 7", 30, "every chart")
        loaded = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(url.startswith(dashboard.url) for url in loaded), loaded  # no CDN, nothing outside
        png = page.screenshot(tmp_path / "dashboard.png")
    assert png.startswith(PNG_SIGNATURE) and len(png) > 50_000
    if os.environ.get("EDGE_AGENT_DASHBOARD_SCREENSHOT"):
        shutil.copyfile(tmp_path / "dashboard.png", os.environ["EDGE_AGENT_DASHBOARD_SCREENSHOT"])


def test_api_fleet_says_what_status_all_json_says_found_on_mdns_or_given_by_peers(operator_fleet: Fleet,
                                                                                 dashboard: Dashboard) -> None:
    served = dashboard.fleet_when(lambda d: len(d["agents"]) == 3 and all(d["history"].get(i) for i in IDS),
                                  "three agents and their rounds")
    done = cli("status", "--all", "--json", *fleet_args(operator_fleet))
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    peers = Dashboard("--peers", ",".join(address(operator_fleet, i) for i in range(3)), "--certs",
                      str(operator_fleet.certs_dir()))
    try:
        given = peers.fleet_when(lambda d: len(d["agents"]) == 3, "three agents")
    finally:
        peers.stop()
    assert (served["discovery"], given["discovery"]) == ("mdns", "peers")
    for document in (served, given):
        assert list(document)[:3] == ["time", "agents", "gone"] and document["gone"] == []
        assert [a["id"] for a in document["agents"]] == [a["id"] for a in status["agents"]] == IDS
        for mine, theirs in zip(document["agents"], status["agents"], strict=True):
            assert tuple(mine) == tuple(theirs) == AGENT_KEYS
            assert {key: mine[key] for key in STABLE} == {key: theirs[key] for key in STABLE}
            assert {k["peer"] for k in mine["links"]} == {k["peer"] for k in theirs["links"]}
    for before, asked, after in zip(served["agents"], status["agents"], given["agents"], strict=True):
        assert before["next_round"] <= asked["next_round"] <= after["next_round"]  # asked in that order
        assert before["total_sent_bytes"] <= asked["total_sent_bytes"] <= after["total_sent_bytes"]
    for agent in served["agents"]:  # its rounds as its records say
        written = {r["round"]: r for r in operator_fleet.records(IDS.index(agent["id"]))}
        for point in served["history"][agent["id"]]:
            assert point["accuracy"] == written[point["round"]]["test_accuracy"]


@needs_chromium
def test_a_fleet_that_disappears_leaves_the_last_state_marked_gone_and_ctrl_c_ends_it(
        operator_fleet: Fleet, dashboard: Dashboard, tmp_path: Path) -> None:
    with Chromium(tmp_path / "chromium") as page:
        page.open(dashboard.url)
        page.wait_for("document.querySelectorAll('#agents tr.agent').length === 3 && "
                      "/^\\d+$/.test(document.getElementById('round').textContent)", 90, "the fleet")
        operator_fleet.stop()  # every agent killed at once: no goodbye, nothing answers
        page.wait_for("document.querySelectorAll('#agents tr.agent.gone').length === 3", 60, "three boards gone")
        assert page.evaluate("document.getElementById('gone-count').textContent") == "3"
        rows = page.evaluate("[...document.querySelectorAll('#agents tr.agent.gone')].map(r => r.innerText)")
        assert all(re.match(r"client-\d\s+gone since \d\d:\d\d:\d\dZ\s+\d+\s+0\.\d{4}", row) for row in rows), rows
        assert page.evaluate("document.querySelectorAll('#topology .node.gone').length") == 3
        assert page.evaluate("document.querySelectorAll('#chart-accuracy .uplot').length") == 1  # curves stay up
        document = dashboard.fleet()
        assert document["agents"] == [] and sorted(g["id"] for g in document["gone"]) == IDS
        assert sorted(document["last_answers"]) == IDS and all(document["history"][i] for i in IDS)
        assert dashboard.process.poll() is None  # still serving
        last_round = page.evaluate("document.getElementById('round').textContent")
        code, stdout, stderr = dashboard.ctrl_c()
        assert (code, stdout, stderr) == (0, "", "")
        page.wait_for("document.getElementById('feed').textContent.startsWith('dashboard unreachable since ')", 30,
                      "that the dashboard went away")
        assert page.evaluate("document.getElementById('round').textContent") == last_round  # the last state stays
        assert page.evaluate("document.querySelectorAll('#agents tr.agent.gone').length") == 3
