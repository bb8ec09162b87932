"""Every script under bench/, run as a user runs it with its smallest arguments, so none can silently rot.

The scripts are not part of the package (the wheel does not ship them), so each runs as a subprocess from the
repository root with this checkout first on PYTHONPATH, and each test asserts on the values the script promises:
its tables, records and plots.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_agent.learning.algorithms.spark import PRESETS
from edge_agent.transport.kernel_link import namespaces, unavailable_reason

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim" / "engines"))  # the Ray namespace helper
import ray_cluster

REPO = Path(__file__).resolve().parents[2]
# The published split, vendored where bench_paper.py looks for it (bench/data/README.md).
SPLIT = REPO / "bench" / "data" / "fmnist300-alpha0.1-split0.npz"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
D = 79_510  # MLP parameters (SPEC)
KAPPA = 5  # the paper setting's degree
PAPER_CLIENTS = 8  # the fewest that leave a degree-5 graph incomplete, so neighbourhoods differ
LEAN = "spark-int4-w8-r90-t25"  # int4 Jacobians, int8 weights, residual rows and a tail: most of SPARK's switches


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python bench/SCRIPT ARGS` from the repository root, one BLAS thread, this checkout's edge_agent first."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, f"bench/{script}", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def stdout_of(script: str, *args: str) -> str:
    """The script's stdout, after checking that it exited 0 (its stderr in the failure message otherwise)."""
    done = run_script(script, *args)
    assert done.returncode == 0, f"bench/{script} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done.stdout


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each markdown table in `text`, in order, as its rows of cells (header and rule left out)."""
    tables: list[list[list[str]]] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if previous.startswith("|"):
                tables[-1].append(cells)
            else:
                tables.append([])  # its header
        previous = line
    return tables


def keyed(rows: list[list[str]]) -> dict[str, list[str]]:
    """First cell -> the other cells, for a table whose first cells differ."""
    assert len({row[0] for row in rows}) == len(rows), rows
    return {row[0]: row[1:] for row in rows}


def aligned_rows(text: str, title: str) -> dict[str, list[str]]:
    """Rows of the space-aligned table under `title` (bench_link.py's format): first cell -> the other cells."""
    lines = text.split(f"\n{title}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line.strip()) for line in lines[2:])}


def number(cell: str) -> float:
    """The number a cell shows, without its unit, thousands separators or per cent sign (then as a fraction)."""
    value = float(cell.split()[0].replace(",", "").rstrip("%"))
    return value / 100 if cell.endswith("%") else value


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """bench_paper.py's output directory and stdout after one round of DFedAvg and lean SPARK on 8 clients."""
    out = tmp_path_factory.mktemp("bench-paper")
    stdout = stdout_of("bench_paper.py", "--variants", f"dfedavg,{LEAN}", "--clients", str(PAPER_CLIENTS),
                       "--rounds", "1", "--workers", "1", "--partition", str(SPLIT), "--out", str(out))
    return out, stdout


def test_bench_link_prints_goodput_exact_wire_overhead_and_loopback_rates() -> None:
    output = stdout_of("bench_link.py", "--seconds", "0.2", "--repeats", "1")
    goodput = aligned_rows(output, "Goodput on a throttled link (goal >= 95% of the rate)")
    assert list(goodput) == ["1 Mbit/s", "10 Mbit/s", "100 Mbit/s"]
    for link, (payload, seconds, share) in goodput.items():
        assert number(payload) == pytest.approx(number(link) * 0.2 / 8, abs=0.005)  # MB in 0.2 s at the rate
        assert number(seconds) > 0
        assert 0.3 < number(share) < 1.2  # the throttle holds the rate; it never lets far more through
    overhead = aligned_rows(output, "Wire overhead = wire / payload - 1 (goal < 1%)")
    fp32_reply = 4 * (200 * 10 * 1024 + 200 * 10 + 200)  # (N, C, m) Jacobian, (N, C) logits, (N,) labels
    int8_reply = 200 * 10 * 1024 + 4 * (200 * 10 * 1024 // 256) + 4 * (200 * 10 + 200)
    payloads = {"weights (d)": 4 * D, "Jacobian request (d)": 4 * D, "SPARK reply (N,C,m) fp32": fp32_reply,
                "SPARK reply (N,C,m) int8": int8_reply, "NTK-DFL reply (N,C,d) fp32": 4 * (200 * 10 * D + 200 * 11),
                "candidates (T,d)": 4 * 4 * D, "scores (T)": 16, "SPARK reply via gRPC (counted)": fp32_reply}
    assert {name: int(number(cells[0])) for name, cells in overhead.items()} == payloads
    for name, (_, wire, ratio, _) in overhead.items():
        assert number(wire) > payloads[name]
        assert name == "scores (T)" or number(ratio) < 0.01
    assert overhead["SPARK reply via gRPC (counted)"][-1] == "= predicted"
    loopback = aligned_rows(output, "8 MB projected Jacobian reply, unthrottled loopback "
                                    "(goal: gRPC >= 50% of raw TCP)")
    assert len(loopback) == 4 and loopback["raw TCP socket copy"][-2:] == ["100%", "100%"]
    assert all(cells[0] == "8.20 MB" and number(cells[1]) > 0 for cells in loopback.values())


def test_bench_link_kernel_tc_adds_the_tc_shaped_columns_and_leaves_no_namespace() -> None:
    reason = unavailable_reason()  # root with ip, tc, veth, ifb, tbf: as in tests/transport/test_kernel_link.py
    if reason is not None:
        pytest.skip(reason)
    before = namespaces()
    goodput = aligned_rows(stdout_of("bench_link.py", "--kernel-tc", "--seconds", "0.2", "--repeats", "1"),
                           "Goodput on a throttled link (goal >= 95% of the rate)")
    assert list(goodput) == ["1 Mbit/s", "10 Mbit/s", "100 Mbit/s"]
    for link, (_, _, _, tc_seconds, tc_share, of_tcp_max) in goodput.items():
        assert number(tc_seconds) > 0 and number(tc_share) > 0.3 and number(of_tcp_max) > number(tc_share)
        # The 16 KiB tbf burst is most of 0.2 s at 1 Mbit/s (bench/results/link.md), a sliver of it at 100.
        assert link != "100 Mbit/s" or number(tc_share) < 1.2
    assert orphaned_namespaces(before) == []


def orphaned_namespaces(before: list[str]) -> list[str]:
    """Namespaces made since `before` whose maker is gone (names start "ea<pid>-"): those a script left behind.
    A test in another worker may hold namespaces of its own meanwhile; its process is alive."""
    def maker_alive(name: str) -> bool:
        pid = re.match(r"ea(\d+)-", name)
        return pid is not None and Path("/proc", pid.group(1)).exists()
    return [name for name in namespaces() if name not in before and not maker_alive(name)]


def test_bench_paper_writes_records_summaries_and_table_of_each_variant(paper_run: tuple[Path, str]) -> None:
    out, stdout = paper_run
    summaries = json.loads((out / "summaries.json").read_text())
    assert list(summaries) == ["dfedavg", LEAN]
    for name, summary in summaries.items():
        records = [json.loads(line) for line in (out / name / "rounds.jsonl").read_text().splitlines()]
        assert [r["round"] for r in records] == [0] and summary["rounds_run"] == 1
        assert (out / name / "state.npz").stat().st_size > 0
        assert summary["config"]["partition_file"] == str(SPLIT)
        assert 0.2 < summary["best_agg_accuracy"] <= 1  # one round from chance (0.1)
        assert summary["total_bytes_per_client"] == records[-1]["cumulative_bytes_per_client"]
    assert summaries["dfedavg"]["total_bytes_per_client"] == KAPPA * 4 * D  # fp32 weights to each neighbour
    lean = json.loads((out / LEAN / "rounds.jsonl").read_text())
    int8_weights = D + 4 * math.ceil(D / 256)  # a byte each, a float32 scale per 256
    assert lean["bytes_by_kind"]["WeightsMessage"] == PAPER_CLIENTS * KAPPA * int8_weights
    table = (out / "table.md").read_text()
    assert stdout.strip() == table.strip()
    assert [[row[0] for row in rows] for rows in markdown_tables(table)] == [["dfedavg", LEAN]]


def test_bench_paper_takes_the_engine_options_and_says_what_ray_needs(tmp_path: Path) -> None:
    done = run_script("bench_paper.py", "--variants", "dfedavg", "--clients", str(PAPER_CLIENTS), "--rounds", "1",
                      "--generated-split", "--address", "auto", "--out", str(tmp_path))
    assert done.returncode == 2 and "--address joins a Ray cluster: it needs --engine ray" in done.stderr


def test_bench_engines_runs_both_engines_in_lockstep_with_equal_weights_and_reports_their_workers() -> None:
    reason = ray_cluster.unavailable_reason()  # a local Ray listens on every address: it runs in a namespace
    if reason is not None:
        pytest.skip(reason)
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    with ray_cluster.RayNamespace() as namespace:
        namespace.env["PYTHONPATH"] = path
        done = namespace.run([sys.executable, "bench/bench_engines.py", "--clients", "6", "--rounds", "2",
                              "--workers", "2"], cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]  # it exits 1 if the engines' weights ever differ
    rounds, engines = markdown_tables(done.stdout)
    rows = keyed(rounds)
    assert list(rows) == ["1", "2", "mean", "mean without round 1"]
    for local, ray, ratio in rows.values():
        assert number(local) > 0 and number(ray) > 0 and number(ratio.strip("*")) > 0
    workers = keyed(engines)
    assert list(workers) == ["local", "ray"]
    for start, count, peaks in workers.values():
        assert number(start) >= 0 and count == "2"
        assert all(50 < float(peak) < 2000 for peak in peaks.split(", "))  # MiB of a worker holding 6 clients


def test_bench_paper_table_only_rebuilds_the_table_from_the_saved_runs(paper_run: tuple[Path, str]) -> None:
    out, _ = paper_run
    table = stdout_of("bench_paper.py", "--table-only", "--out", str(out))
    assert table.strip() == (out / "table.md").read_text().strip()


def test_bench_request_delta_measures_the_deltas_of_a_saved_run(paper_run: tuple[Path, str]) -> None:
    out, _ = paper_run
    output = stdout_of("bench_request_delta.py", str(out / LEAN / "state.npz"), "--requesters", str(PAPER_CLIENTS))
    assert f"round 2, {PAPER_CLIENTS} requesters, weights in int8" in output  # the run's weights codec, read back
    values = {name: float(value) for name, value in (line.strip().rsplit(": ", 1) for line in output.splitlines()[1:])}
    assert 0 < values["|wbar_i - w_i| / |wbar_i|"] < 1  # an incomplete graph: neighbourhoods differ
    errors = {name.removeprefix("relative error of wbar_i sent as "): value for name, value in values.items()
              if name.startswith("relative error")}
    assert set(errors) == {"int8 whole", "int4 delta", "int8 delta"}
    assert all(0 < error < 0.1 for error in errors.values())
    assert errors["int8 delta"] < errors["int4 delta"]  # the same delta, finer steps


def test_bench_lowrank_reply_full_rank_keeps_the_projected_kernel_error() -> None:
    output = stdout_of("bench_lowrank_reply.py", "--clients", "2", "--ranks", "4,16", "--proj-dim", "16",
                       "--partition", str(SPLIT))
    assert f"2 clients of {SPLIT.name}, initial weights; tensorsketch, m = 16" in output
    rows = keyed(*markdown_tables(output))
    projected = number(rows["projected, every value"][0])
    assert 0 < projected < 1
    assert rows["rank 16"][:2] == [f"{projected:.4f}", "1.000"]  # rank m: nothing truncated, all energy kept
    assert 0 < number(rows["rank 4"][1]) < 1 and number(rows["rank 4"][2]) == pytest.approx(0.25, abs=0.01)


def test_bench_lowrank_reply_reads_the_weights_of_a_saved_run(paper_run: tuple[Path, str]) -> None:
    out, _ = paper_run
    output = stdout_of("bench_lowrank_reply.py", "--clients", "2", "--ranks", "4", "--proj-dim", "16",
                       "--partition", str(SPLIT), "--state", str(out / LEAN / "state.npz"))
    assert "weights after round 1 of spark" in output
    assert 0 < number(keyed(*markdown_tables(output))["rank 4"][0]) < 2


def test_bench_projection_prints_kernel_errors_and_exact_reply_bytes() -> None:
    output = stdout_of("bench_projection.py", "--dims", "16", "--samples", "20", "--seeds", "1", "--repeats", "1",
                       "--precisions", "fp32,int8")
    first, wire = markdown_tables(output)
    fidelity = keyed(first)
    assert list(fidelity) == ["gaussian", "sparse", "kron r=1", "kron r=4", "tensorsketch"]
    assert fidelity["gaussian"][3] == "1.000" and fidelity["gaussian"][5] == "1.00"  # ratios to itself
    assert all(cells[0] == "16" and 0 < number(cells[1]) < 1 for cells in fidelity.values())
    assert [(name, precision) for name, _, precision, _, _ in wire] == [
        (name, precision) for name in fidelity for precision in ("fp32", "int8")]
    n_values = 20 * 10 * 16  # (N, C, m)
    expected_bytes = {"fp32": 4 * n_values, "int8": n_values + 4 * math.ceil(n_values / 256)}
    for name, m, precision, error, size in wire:
        assert m == "16" and number(size) == expected_bytes[precision]
        assert 0 < number(error) < 1
        if precision == "fp32":
            assert error == fidelity[name][1]  # fp32 is lossless on the wire


def test_bench_backends_times_requests_and_an_agent_round_torch_free() -> None:
    output = stdout_of("bench_backends.py", "--n", "20", "--dim", "16", "--candidates", "2", "--repeats", "1",
                       "--backends", "numpy,torch,onnxruntime@8", "--round-backends", "onnxruntime", "--agents", "3",
                       "--setting", "smoke", "--rounds", "1")
    assert "onnxruntime processes torch-free: True" in output
    requests, rounds = (keyed(rows) for rows in markdown_tables(output))
    assert list(requests) == ["numpy", "torch", "onnxruntime@8"]
    for jacobian_ms, _, scoring_ms, _, rss_mb, _ in requests.values():
        assert number(jacobian_ms) > 0 and number(scoring_ms) > 0 and number(rss_mb) > 10
    assert requests["torch"][1::2] == ["1.00", "1.00", "1.00"]  # ratios to itself
    assert "3 agents, setting smoke, profile rpi-zero-2w" in output and "median of rounds 0..0" in output
    assert list(rounds) == ["onnxruntime"]
    round_s, *_, peak_mb, _, accuracy = rounds["onnxruntime"]
    assert number(round_s) > 0 and number(peak_mb) > 10 and 0 <= number(accuracy) <= 1


def test_plot_curves_writes_a_png_of_the_runs(paper_run: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = paper_run
    png = tmp_path / "curves.png"
    assert stdout_of("plot_curves.py", str(out), "--out", str(png)).strip() == f"wrote {png}"
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


@pytest.mark.parametrize("contents", ["nothing", "an empty rounds.jsonl"])
def test_plot_curves_refuses_a_run_directory_without_records(tmp_path: Path, contents: str) -> None:
    runs = tmp_path / "runs"
    (runs / "spark").mkdir(parents=True)
    if contents != "nothing":
        (runs / "spark" / "rounds.jsonl").write_text("")
    png = tmp_path / "curves.png"
    done = run_script("plot_curves.py", str(runs), "--out", str(png))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"plot_curves: no round records (simulator or agent) in {runs}; nothing to plot"]
    assert not png.exists()


def test_plot_curves_plots_agent_metrics_beside_a_simulation(paper_run: tuple[Path, str], tmp_path: Path) -> None:
    """Agent records (two agents, three rounds, the envelope of docs/records.md) and simulator records in one plot;
    an empty agent metrics file alone is refused."""
    out, _ = paper_run
    agents = tmp_path / "agents"
    agents.mkdir()
    for i in range(2):
        lines = [{"schema": 1, "record": "agent-round", "time": "2026-12-03T19:40:00.000Z", "round": k,
                  "agent": f"client-{i}", "status": "trained", "payload_sent_bytes": 2_000_000,
                  "test_accuracy": 0.5 + 0.1 * k} for k in range(3)]
        (agents / f"agent-{i}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    png = tmp_path / "both.png"
    assert stdout_of("plot_curves.py", str(out), str(agents), "--out", str(png)).strip() == f"wrote {png}"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    done = run_script("plot_curves.py", str(empty), "--out", str(tmp_path / "none.png"))
    assert done.returncode == 1 and "nothing to plot" in done.stderr and not (tmp_path / "none.png").exists()


def test_bench_soak_kills_freezes_and_restarts_agents_and_reports_every_round_and_exit(tmp_path: Path) -> None:
    """Too short for a fair memory verdict (RSS still grows over a life of a few rounds), but the table is made from
    the agents' own records; rounds, kills, freezes and exits are checked."""
    done = run_script("bench_soak.py", "--agents", "3", "--rounds", "8", "--kill-every", "3", "--pause-every", "3",
                      "--pause-windows", "1", "--setting", "smoke", "--warmup", "1", "--window", "2",
                      "--stall-window", "5", "--agent-flags", "--uplink 8mbit --proj-dim 256", "--out", str(tmp_path))
    out = done.stdout
    assert re.search(r"round \d+: killed agent \d; restarting it", out), done.stderr[-2000:]
    assert re.search(r"round \d+: froze agent \d for 5 s", out) and "thawed agent" in out
    assert "every round recorded once by every agent: yes" in out
    settled = r"until every agent is within 2 rounds of the others: \[(\d+|None)(, (\d+|None))*\] \(limit 15 s\)"
    assert re.search(settled, out)
    assert re.search(r"three stall windows after each thaw, whatever else happened by then: \[\d", out)
    assert re.search(r"rounds apart when the first agent finished: \d+; together after every thaw and at the end: "
                     r"(yes|NO)", out)
    assert "every agent that ended by itself told its exit status and reason: yes" in out
    assert len(re.findall(r"status 0 +client-\d exits with status 0: finished its 8 rounds", out)) == 3
    assert re.search(r"round seconds: median [\d.]+, max [\d.]+; stuck rounds \(over [\d.]+ s\): none", out)
    assert re.search(r"RSS and open fds within 10% of their values after warm-up: (yes|NO)", out)
    judged = re.findall(r"^ +\d +0\.\.\d+ +(\d+) -> +(\d+) \([\d.]+\) +\d+ -> +\d+ \([\d.]+\) +(ok|GREW)", out, re.M)
    assert judged and all(10 < float(mb) < 4096 for row in judged for mb in row[:2]), out  # round-end RSS, MiB
    assert out.rstrip().endswith("PASS") == (done.returncode == 0)
    for index in range(3):
        lines = (tmp_path / f"agent-{index}.jsonl").read_text().splitlines()
        assert [json.loads(line)["round"] for line in lines] == list(range(8))  # round records only


def test_bench_tls_prints_both_modes_and_the_ratios(tmp_path: Path) -> None:
    result = run_script("bench_tls.py", "--setting", "smoke", "--agents", "3", "--rounds", "2", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("| ")}
    assert {"insecure", "mtls"} <= rows.keys()
    ratios = re.search(r"round wall time x([0-9.]+), wire bytes x([0-9.]+)", result.stdout)
    assert ratios is not None
    assert 0.2 < float(ratios.group(1)) < 5 and 0.99 < float(ratios.group(2)) < 1.05  # TLS records: ~0.2%
    assert (tmp_path / "mtls" / "certs" / "client-0.key").exists()


def test_bench_overlap_prints_both_modes_and_the_ratios(tmp_path: Path) -> None:
    result = run_script("bench_overlap.py", "--setting", "smoke", "--agents", "3", "--rounds", "2",
                        "--rate", "100mbit", "--latency", "0", "--chunk", "25", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split("|")[1].strip(): line.split("|") for line in result.stdout.splitlines()
            if line.startswith("| ")}
    assert {"off", "on"} <= rows.keys()
    assert float(rows["off"][6]) == 0.0  # no transfer hidden when a reply is computed whole first
    ratios = re.search(r"max\(compute, bytes/rate\): ([0-9.]+) before \(off\), ([0-9.]+) after", result.stdout)
    assert ratios is not None and all(0.2 < float(r) < 50 for r in ratios.groups())
    for mode in ("off", "on"):  # the same weights, bit for bit
        with (np.load(tmp_path / "off" / "checkpoints" / "client-0.npz") as off,
              np.load(tmp_path / mode / "checkpoints" / "client-0.npz") as this):
            assert off["weights"].tobytes() == this["weights"].tobytes()


def test_bench_link_model_sets_a_fleets_measured_rounds_beside_the_simulators_modelled_ones(tmp_path: Path) -> None:
    result = run_script("bench_link_model.py", "--agents", "3", "--setting", "smoke", "--rates", "10mbit",
                        "--rounds", "2", "--variants", "spark-lean", "--compute-scale", "1.5", "--workers", "1",
                        "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [(row["variant"], row["rate"], len(row["measured"]), len(row["modelled"])) for row in rows] == [
        ("spark-lean", "10mbit", 2, 2)]
    assert all(seconds > 0 for seconds in rows[0]["measured"] + rows[0]["modelled"])
    [table] = markdown_tables(result.stdout)
    ratio = float(table[0][5])
    assert ratio == pytest.approx(rows[0]["modelled"][1] / rows[0]["measured"][1], abs=0.006)  # printed to 2 places
    simulated = json.loads((tmp_path / "sim-spark-lean-10mbit" / "summary.json").read_text())["config"]
    assert simulated["spark"]["kernel_dim"] == PRESETS["lean"]["kernel_dim"]
    assert simulated["link"]["compute_scale"] == 1.5


def test_bench_frontier_tabulates_and_plots_each_variant_and_models_its_seconds_on_other_links(
        tmp_path: Path) -> None:
    for name, flags in (("lean", ["--preset", "lean"]), ("dfedavg-w8", ["--algorithm", "dfedavg",
                                                                         "--weights-precision", "int8"])):
        done = subprocess.run([sys.executable, "-m", "edge_agent", "simulate", "--setting", "smoke", "--rounds", "2",
                               "--solver", "euler", "--workers", "1", "--link", "1mbit", "--latency", "20ms", *flags,
                               "--out", str(tmp_path / "runs" / name)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    plot = tmp_path / "frontier.png"
    out = stdout_of("bench_frontier.py", str(tmp_path / "runs"), "--target", "0.2", "--links", "1mbit,10mbit",
                    "--board", "rpi-4", "--plot", str(plot), "--earlier", "dfedavg=82:130.4")
    [rows] = markdown_tables(out)
    by_name = {row[0]: row for row in rows}
    assert by_name.pop("dfedavg (earlier run)")[1:3] == ["82", "130.4"]  # a point from a results table, as given
    assert set(by_name) == {"lean", "dfedavg-w8"}
    for name, row in by_name.items():
        records = [json.loads(line) for line in (tmp_path / "runs" / name / "rounds.jsonl").read_text().splitlines()]
        first = next(r for r in records if r["agg_accuracy"] >= 0.2)
        assert int(row[1]) == first["round"] + 1
        assert float(row[2]) == pytest.approx(first["cumulative_bytes_per_client"] / 1e6, abs=0.05)
        slow, fast = float(row[5].replace(",", "")), float(row[6].replace(",", ""))
        assert slow > fast > 0  # the same rounds, modelled on a link ten times faster
    assert plot.read_bytes().startswith(PNG_SIGNATURE)


def test_bench_dashboard_alternates_stretches_and_prints_the_ratio_and_the_dashboards_cpu(tmp_path: Path) -> None:
    result = run_script("bench_dashboard.py", "--agents", "3", "--blocks", "2", "--block-s", "10", "--warmup-s", "1",
                        "--settle-s", "0", "--idle-s", "5", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split("|") for line in result.stdout.splitlines() if re.match(r"\| \d", line)]
    assert [(row[1].strip(), row[2].strip()) for row in rows] == [("1", "off"), ("2", "on")]
    assert all(int(row[3]) > 0 and float(row[4]) > 0 and float(row[7]) > 0 for row in rows)  # rounds, agents' CPU
    assert float(rows[0][8]) == 0 and float(rows[1][8]) > 0  # the dashboard's CPU, only while it runs
    ratio = re.search(r"round wall time x([0-9.]+) \(mean", result.stdout)
    cpu = re.search(r"CPU per agent-round: agents x([0-9.]+) .* together x([0-9.]+)", result.stdout)
    used = re.search(r"used ([0-9.]+) CPU s .* its page read (\d+) refreshes", result.stdout)
    assert ratio is not None and 0.2 < float(ratio[1]) < 5
    assert cpu is not None and 0.2 < float(cpu[1]) < 5 and float(cpu[2]) > float(cpu[1])
    assert used is not None and float(used[1]) > 0 and int(used[2]) >= 2
    assert (tmp_path / "certs" / "operator.crt").exists()


def test_bench_service_runs_a_finite_fleet_and_a_service_and_writes_both_curves(tmp_path: Path) -> None:
    output = stdout_of("bench_service.py", "--setting", "smoke", "--agents", "3", "--rounds", "2", "--solver",
                       "euler", "--out", str(tmp_path))
    rows = markdown_tables(output)[0]
    assert [row[0] for row in rows] == ["0", "1"]
    assert rows[0][1] == rows[0][2]  # the same run until the schedule's end: round 0 alike, bit for bit
    saved = json.loads((tmp_path / "service.json").read_text())
    assert (saved["rounds"], saved["schedule"]) == (2, 5)
    for name in ("before", "after"):
        curve = saved[name]["accuracy"]
        assert [f"{value:.4f}" for value in curve] == [row[1 if name == "before" else 2] for row in rows]
        assert saved[name]["best_accuracy"] == max(curve) and saved[name]["final_accuracy"] == curve[-1]
        assert all(best in (0, 1) for best in saved[name]["agents_best_round"])  # the agents' own records
    assert saved["after"]["command"] == "edge-agent run --rounds 0"
    assert (tmp_path / "service.png").read_bytes()[:8] == PNG_SIGNATURE


def test_bench_robust_runs_a_clean_an_absent_and_a_poisoned_fleet_and_tables_them(tmp_path: Path) -> None:
    result = run_script("bench_robust.py", "--algorithms", "dfedavg", "--attacks", "scale", "--rules", "off,screen",
                        "--rounds", "1", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = {(row[0], row[1]): row for table in markdown_tables(result.stdout) for row in table}
    assert set(rows) == {("clean", "off"), ("clean", "screen"), ("client-3 absent", "screen"), ("scale", "off"),
                         ("scale", "screen")}
    assert all(row[-1] in ("0,0,0,0", "0,0,0") for row in rows.values())
    assert int(rows[("scale", "screen")][7]) >= 1 and int(rows[("scale", "off")][7]) == 0  # who refused client-3
    assert rows[("clean", "off")][2] == rows[("clean", "screen")][2]  # DFedAvg: honest fleets untouched by the rule
    assert "| scale | screen |" in (tmp_path / "robust.md").read_text()


def test_bench_model_cost_times_one_reply_on_each_model_path(tmp_path: Path) -> None:
    output = stdout_of("bench_model_cost.py", "--samples", "4", "--dim", "16", "--repeats", "1",
                       "--out", str(tmp_path / "cost.md"))
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in (tmp_path / "cost.md").read_text().splitlines() if line.startswith("| mlp") or
            line.startswith("| cnn")}
    assert rows["mlp (exact numpy kernels)"][0] == rows["mlp (torch, by layers)"][0] == "79,510"
    assert rows["cnn (torch, by layers)"][0] == rows["cnn (torch.func, vmap over jacrev)"][0] == "333,526"
    assert all(float(cells[1]) > 0 and float(cells[3]) >= 0 for cells in rows.values()) and "cnn" in output


def test_the_benchs_pytorch_initialised_cnn_is_the_cnn_with_smaller_seeded_weights() -> None:
    """bench/models/cnn_torch_init.py, the CNN DFedAvg's figures start from: same shapes, PyTorch's own init."""
    pytest.importorskip("torch")
    from edge_agent.learning.models.select import load_model
    ours = load_model("cnn", (28, 28), 10)
    torch_init = load_model(str(REPO / "bench" / "models" / "cnn_torch_init.py") + ":cnn", (28, 28), 10)
    assert torch_init.num_params == ours.num_params == 333_526
    first, again = torch_init.init_weights(0), torch_init.init_weights(0)
    assert np.array_equal(first, again)  # seeded
    assert 0.3 < np.linalg.norm(first) / np.linalg.norm(ours.init_weights(0)) < 0.7  # Kaiming-uniform a=sqrt(5)
