"""`edge-agent inspect` against real agents over mutual TLS: the records it streams are exactly those the agent
wrote to its metrics file, shown as JSON, a table, or a PNG whose axes hold the rounds."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
from asking import address, cli, fleet_args, one_error_line
from fleet import Fleet

from edge_agent.fleet.records import PHASES, records_figure


def test_inspect_json_returns_exactly_the_rounds_the_agent_wrote(operator_fleet: Fleet) -> None:
    before = operator_fleet.records(1)
    done = cli("inspect", "client-1", "--rounds", "1000", "--json", *fleet_args(operator_fleet))
    after = operator_fleet.records(1)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["id"], answer["address"]) == ("client-1", address(operator_fleet, 1))
    records = answer["records"]
    # the agent trains on: what it served lies between what the file held before and after, line for line
    assert records[:len(before)] == before and after[:len(records)] == records
    assert [r["round"] for r in records] == list(range(len(records))) and records[0]["schema"] == 1


def test_inspect_rounds_bounds_the_table_to_the_latest_records(operator_fleet: Fleet) -> None:
    operator_fleet.wait_for_rounds(0, 2)
    done = cli("inspect", address(operator_fleet, 0), "--rounds", "2", *fleet_args(operator_fleet, certs=True))
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split()[:4] == ["ROUND", "STATUS", "ACCURACY", "NEIGHBOURS"] and len(rows) == 2
    rounds = [int(row.split()[0]) for row in rows]
    assert rounds[1] == rounds[0] + 1 and rounds[1] <= len(operator_fleet.records(0)) - 1


def test_inspect_plot_writes_a_png_whose_axes_hold_every_trained_round(operator_fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "client-2.png"
    done = cli("inspect", "client-2", "--rounds", "50", "--plot", str(out), *fleet_args(operator_fleet))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out}"
    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (900, 800) and out.stat().st_size > 20_000
    records = operator_fleet.records(2)[-50:]  # what inspect serves, as the JSON test shows
    figure = records_figure(records, "client-2")
    accuracy, traffic, phases = figure.axes
    rounds = [r["round"] for r in records if r["status"] == "trained"]
    assert list(accuracy.lines[0].get_xdata()) == rounds
    assert list(accuracy.lines[0].get_ydata()) == [r["test_accuracy"] for r in records if r["status"] == "trained"]
    assert sorted(line.get_label() for line in traffic.lines) == ["client-0", "client-1"]
    assert all(min(line.get_ydata()) > 0 for line in traffic.lines)
    assert [line.get_label() for line in phases.lines] == list(PHASES)


def test_inspect_of_a_tls_agent_without_certificates_gives_one_line(operator_fleet: Fleet) -> None:
    line = one_error_line(cli("inspect", "client-0", *fleet_args(operator_fleet, certs=False)), 1)
    assert line.startswith(f"Error: client-0 at {address(operator_fleet, 0)} speaks mutual TLS: give --certs DIR")
