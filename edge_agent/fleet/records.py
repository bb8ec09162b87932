"""What `edge-agent inspect` shows of an agent's round records (docs/records.md): a table, a JSON document, or a
plot of accuracy, MB per link and seconds per phase against the record's 0-based round."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from edge_agent.fleet.dial import Target

PHASES = ("average", "jacobian", "transfer", "evolve", "score", "total")
PLOT_EXTRA = "plot"  # pip install 'edge-agent[plot]'


def records_json(target: Target, records: Sequence[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The agent and its records as it wrote them, oldest first."""
    return {"time": now.isoformat(timespec="seconds").replace("+00:00", "Z"), "address": target.address,
            "id": target.agent_id, "records": list(records)}


def records_table(records: Sequence[dict[str, Any]]) -> str:
    """One line per record: round, status, accuracy, neighbours, wire MB, seconds per phase."""
    rows = [("ROUND", "STATUS", "ACCURACY", "NEIGHBOURS", "MISSING", "SENT MB", "RECV MB",
             *(f"{p.upper()} S" for p in PHASES), "TIME")]
    for r in records:
        if r.get("status") != "trained":
            rows.append((str(r["round"]), str(r.get("status", "?")), *("-",) * (5 + len(PHASES)),
                         str(r.get("time", ""))))
            continue
        seconds = r.get("seconds", {})
        rows.append((str(r["round"]), "trained", f"{r['test_accuracy']:.4f}", ",".join(r.get("neighbours", [])) or "-",
                     ",".join(r.get("missing", {})) or "-", f"{r['wire_sent_bytes'] / 1e6:.3f}",
                     f"{r['wire_received_bytes'] / 1e6:.3f}", *(f"{seconds.get(p, 0.0):.2f}" for p in PHASES),
                     str(r.get("time", ""))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def records_figure(records: Sequence[dict[str, Any]], title: str) -> Any:
    """A matplotlib figure of the trained rounds: accuracy, wire MB per link (sent + received), seconds per phase.

    ImportError, naming the extra to install, without matplotlib (a dev/plot dependency, not a board's).
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"--plot needs matplotlib: pip install 'edge-agent[{PLOT_EXTRA}]'") from None
    trained = [r for r in records if r.get("status") == "trained"]
    rounds = [int(r["round"]) for r in trained]
    figure, (accuracy, traffic, phases) = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    figure.suptitle(title)
    accuracy.plot(rounds, [float(r["test_accuracy"]) for r in trained], marker="o")
    accuracy.set_ylabel("test accuracy")
    for peer in sorted({peer for r in trained for peer in r.get("links", {})}):
        megabytes = [(r["links"].get(peer, {}).get("wire_sent", 0) + r["links"].get(peer, {}).get("wire_received", 0))
                     / 1e6 for r in trained]
        traffic.plot(rounds, megabytes, marker="o", label=peer)
    traffic.set_ylabel("wire MB per link\n(sent + received)")
    if traffic.lines:
        traffic.legend(fontsize="small")
    for phase in PHASES:
        phases.plot(rounds, [float(r["seconds"].get(phase, 0.0)) for r in trained], marker="o", label=phase)
    phases.set_ylabel("seconds")
    phases.set_xlabel("round (0-based, as recorded)")
    phases.legend(fontsize="small", ncol=3)
    figure.tight_layout()
    return figure
