"""The wheel is a board's install: without torch or scipy it finds its profiles and runs agents on ONNX Runtime."""

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from board_python import board_environment

RunAgents = Callable[[list[list[str]], dict[str, str]], list[str]]  # the run_agents fixture
AGENTS, ROUNDS = 3, 2  # the smoke setting draws 2 neighbours per round: it needs three agents
SHIPPED = sorted(path.stem for path in (Path(__file__).resolve().parents[2] / "firmware_profiles").glob("*.toml"))


def _board(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True,
                          env=board_environment(), cwd=venv, timeout=120, check=False)


def test_the_installed_wheel_has_no_torch_or_scipy_and_lists_the_profiles_it_carries(board_venv: Path) -> None:
    for module in ("torch", "scipy"):
        imported = _board(board_venv, "python", "-c", f"import {module}")
        assert imported.returncode == 1 and f"No module named '{module}'" in imported.stderr, imported.stderr
    listed = _board(board_venv, "edge-agent", "profiles", "list")
    assert listed.returncode == 0, listed.stderr
    assert [row.split()[0] for row in listed.stdout.splitlines()[1:]] == SHIPPED
    shown = _board(board_venv, "edge-agent", "profiles", "show", "rpi-zero-2w")
    assert shown.returncode == 0, shown.stderr
    shown_path = Path(shown.stdout.splitlines()[0].split("(")[1].rstrip(")"))
    assert shown_path.is_relative_to(board_venv)  # the wheel's copy, not the source tree's
    assert shown_path.parts[-4:] == ("edge_agent", "deploy", "firmware_profiles", "rpi-zero-2w.toml")


def test_the_installed_wheel_says_in_one_line_what_it_lacks_for_the_kernels(board_venv: Path, tmp_path: Path) -> None:
    exported = _board(board_venv, "edge-agent", "export", "--profile", "rpi-4")
    assert exported.returncode == 1
    assert exported.stderr.splitlines() == [
        "Error: export needs torch, which is not importable here: pip install 'edge-agent[torch]'"]
    run = subprocess.run([str(board_venv / "bin" / "edge-agent"), "run", "--insecure", "--shard", "0/3",
                          "--setting", "smoke",
                          "--backend", "onnxruntime", "--no-mdns", "--peers", "127.0.0.1:9", "--quiet"],
                         capture_output=True, text=True, env=board_environment(XDG_CACHE_HOME=str(tmp_path)),
                         cwd=tmp_path, timeout=120, check=False)
    assert run.returncode == 1
    line, = run.stderr.splitlines()
    assert "`edge-agent export --profile generic --out DIR`" in line and str(tmp_path / "edge-agent" / "onnx") in line


def test_agents_from_the_wheel_train_two_rounds_on_onnxruntime_with_exported_kernels(
        board_venv: Path, onnx_cache: Path, tmp_path: Path, free_ports: Callable[[int], list[int]],
        run_agents: RunAgents) -> None:
    ports = free_ports(AGENTS)
    peers = ",".join(f"127.0.0.1:{port}" for port in ports)  # the same list on every board
    run_agents([
        [str(board_venv / "bin" / "edge-agent"), "run", "--insecure", "--shard", f"{i}/{AGENTS}", "--setting", "smoke",
         "--rounds", str(ROUNDS), "--solver", "euler", "--backend", "onnxruntime", "--profile", "rpi-zero-2w",
         "--uplink", "unlimited", "--downlink", "unlimited", "--latency", "0", "--host", "127.0.0.1",
         "--port", str(ports[i]), "--no-mdns", "--peers", peers, "--wait-peers", "60",
         "--metrics", str(tmp_path / f"agent-{i}.jsonl"), "--checkpoint-dir", str(tmp_path / "ck"), "--quiet"]
        for i in range(AGENTS)],
        board_environment(OPENBLAS_NUM_THREADS="1", XDG_CACHE_HOME=str(onnx_cache)))
    for i in range(AGENTS):
        records = [json.loads(line) for line in (tmp_path / f"agent-{i}.jsonl").read_text().splitlines()]
        rounds = [record for record in records if record["record"] == "agent-round"]
        assert [record["round"] for record in rounds] == list(range(ROUNDS))
        assert [(record["status"], record["members"]) for record in rounds] == [("trained", AGENTS)] * ROUNDS
        assert all(record["payload_received_bytes"] > 0 for record in rounds)
        assert (tmp_path / "ck" / f"client-{i}.npz").is_file()


def test_the_installed_wheel_carries_the_dashboards_page_and_says_in_one_line_it_needs_the_extra(
        board_venv: Path) -> None:
    located = _board(board_venv, "python", "-c", "import edge_agent.fleet.dashboard as d; print(d.__file__)")
    static = Path(located.stdout.strip()).parent / "static"
    assert static.is_relative_to(board_venv)
    for path in ("index.html", "dashboard.js", "dashboard.css", "vendor/uplot/uPlot.iife.min.js",
                 "vendor/uplot/uPlot.min.css", "vendor/uplot/LICENSE"):
        assert (static / path).is_file(), path
    served = _board(board_venv, "edge-agent", "dashboard", "--peers", "127.0.0.1:9")
    assert served.returncode == 2
    assert served.stderr.splitlines() == [
        "Error: the dashboard needs aiohttp: pip install 'edge-agent[dashboard]'"]


def test_the_wheel_without_torch_runs_the_demo_and_a_link_bench_with_spark_and_names_its_licence(
        board_venv: Path, tmp_path: Path) -> None:
    env = board_environment(XDG_CACHE_HOME=str(tmp_path / "cache"), OPENBLAS_NUM_THREADS="1")  # no kernels there

    def edge_agent(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(board_venv / "bin" / "edge-agent"), *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=400, check=False)

    demo = edge_agent("demo", "--setting", "smoke", "--agents", "3", "--rounds", "2", "--out", str(tmp_path / "demo"))
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert [line.split()[0] for line in demo.stdout.splitlines() if line[:5].strip().isdigit()] == ["0", "1"]
    assert "kernels on numpy (auto: no torch here" in (tmp_path / "demo" / "agent-0.log").read_text()
    bench = edge_agent("bench", "link", "--agents", "3", "--setting", "smoke", "--algorithms", "spark,dfedavg",
                       "--rounds", "2", "--rate", "100mbit", "--latency", "1ms", "--out", str(tmp_path / "bench"))
    assert bench.returncode == 0, bench.stdout + bench.stderr
    summary = json.loads((tmp_path / "bench" / "summary.json").read_text())
    assert [(f["algorithm"], f["rounds_done"], f["stopped_by"]) for f in summary["fleets"]] == [
        ("spark", 2, "rounds"), ("dfedavg", 2, "rounds")]
    assert "no plots: matplotlib is not installed (pip install 'edge-agent[bench]'" in bench.stderr
    assert "## Verdict" in (tmp_path / "bench" / "report.md").read_text()
    assert not list((tmp_path / "bench").glob("*.png"))
    # the installed distribution's metadata, as any pip reads it (an older pip's `show` omits License-Expression)
    shown = _board(board_venv, "python", "-c", "from importlib.metadata import metadata; "
                   "m = metadata('edge-agent'); print(m['License-Expression'], m['License-File'])")
    assert shown.stdout.split() == ["Apache-2.0", "LICENSE"], shown.stdout + shown.stderr
