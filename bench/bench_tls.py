"""What mutual TLS costs: the same fleet of real agents with --certs and with --insecure, one after the other.

Prints, per mode, the mean round wall time (the agents' own `seconds.total`, round 0 left out as warm-up) and the
TCP bytes the agent processes sent (`ss -tinp`: bytes_sent of every TCP connection an agent process owns, polled
every 50 ms and kept at its largest, so TLS records and handshakes are included), then the ratios TLS / plaintext.
The agents' own records count frames before TLS, so they cannot show TLS's overhead; the socket counters do.
Needs `ss` (iproute2), and root to see the process that owns each socket.

    python bench/bench_tls.py --setting edge --agents 4 --rounds 4
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import time
import uuid
from pathlib import Path

from edge_agent.agent.launcher import launch_local_agents
from edge_agent.deploy.certs import throwaway_cluster
from edge_agent.learning.topology import client_ids


def fleet(mode: str, args: argparse.Namespace, out: Path) -> tuple[float, int]:
    """Run one fleet to the end; (mean round seconds after round 0, bytes written by all agent processes)."""
    folder = out / mode
    folder.mkdir(parents=True, exist_ok=True)
    security = (["--certs", str(throwaway_cluster(folder / "certs", list(client_ids(args.agents))))]
                if mode == "mtls" else ["--insecure"])
    run = launch_local_agents(args.agents, folder, [
        "--setting", args.setting, "--rounds", str(args.rounds), "--backend", "numpy", "--uplink", "unlimited",
        "--downlink", "unlimited", "--latency", "0", "--run", f"tls-{mode}-{uuid.uuid4().hex[:6]}",
        "--wait-peers", "60", "--quiet", *security])
    pids = {p.pid for p in run.processes}
    sent: dict[str, int] = {}  # connection (local and peer address, owner) -> the most bytes_sent seen
    while run.running():
        for key, value in tcp_bytes_sent(pids).items():
            sent[key] = max(value, sent.get(key, 0))
        time.sleep(0.05)
    if run.failed():
        raise SystemExit(f"{mode}: an agent failed; see {folder}/agent-*.log")
    try:
        records = run.records_with_every_neighbour()
    except ValueError as error:
        raise SystemExit(f"{mode}: {error}") from None
    seconds = [r["seconds"]["total"] for rounds in records for r in rounds if r["round"] > 0]
    return statistics.mean(seconds), sum(sent.values())


def tcp_bytes_sent(pids: set[int]) -> dict[str, int]:
    """bytes_sent of each TCP connection owned by one of `pids`, by connection."""
    lines = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    result, owner = {}, None
    for line in lines:
        if not line[:1].isspace():  # a socket line: state, two queues, local, peer, users:(("python",pid=N,...))
            found = [int(pid) for pid in re.findall(r"pid=(\d+)", line)]
            owner = " ".join(line.split()[3:5]) if any(pid in pids for pid in found) else None  # local, peer
        elif owner is not None:
            match = re.search(r"bytes_sent:(\d+)", line)
            if match:
                result[owner] = int(match.group(1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", default="edge")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per fleet (round 0 is left out as warm-up)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-tls"))
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be >= 2 (round 0 is warm-up)")
    results = {mode: fleet(mode, args, args.out) for mode in ("insecure", "mtls")}
    print(f"| mode | round wall time (s) | TCP bytes sent by the agents |  ({args.setting}, {args.agents} agents, "
          f"{args.rounds} rounds, unlimited links)")
    print("|---|---|---|")
    for mode, (seconds, written) in results.items():
        print(f"| {mode} | {seconds:.3f} | {written:,} |")
    (plain_s, plain_b), (tls_s, tls_b) = results["insecure"], results["mtls"]
    print(f"TLS / plaintext: round wall time x{tls_s / plain_s:.3f}, wire bytes x{tls_b / plain_b:.4f}")


if __name__ == "__main__":
    main()
