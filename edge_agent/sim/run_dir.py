"""One simulation run's output directory: rounds.jsonl, state.npz after every round, and summary.json at the end.

With a link model, each round's messages and compute go to work.jsonl too (a resumed run may repeat a round there:
the last line of a round counts), so the round can be modelled later on other links and boards. A round's record is
appended before its state is saved, so after a crash the log holds every round the state
has (and at most one more, which a resumed run drops and runs again). A run can also start from another run's
saved rounds when the two differ only in SPARK switches and schedule that had not acted yet (an ablation forked from
a shared start).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge_agent.records import JsonLinesLog, write_json_atomic, write_text_atomic
from edge_agent.round_records import SIM_ROUND, read_jsonl, stamped, without_envelope
from edge_agent.sim.engine import Simulation
from edge_agent.sim.records import RoundRecord, summarize
from edge_agent.sim.round_work import work_to_json
from edge_agent.sim.state import load_state, save_state

ROUNDS_FILE, STATE_FILE, SUMMARY_FILE = "rounds.jsonl", "state.npz", "summary.json"
WORK_FILE = "work.jsonl"  # with a link model: each round's messages and compute (round_work.work_to_json)


class RunDirectory:
    """Runs a simulation into `out`, continuing a saved run there when `resume` is set and one exists.

    With `fork_from` (another run's directory) and no run of its own to continue, it starts from that run's saved
    rounds, which must differ from this configuration only in switches still dormant there.
    """

    def __init__(self, out: Path, simulation: Simulation, resume: bool = False, fork_from: Path | None = None) -> None:
        self.out, self.simulation = out, simulation
        self._config = simulation.config.to_json()
        self.records: list[RoundRecord] = []
        self._times: dict[int, str] = {}  # round -> when its record was first written, kept across a resume
        state = load_state(out / STATE_FILE, self._config) if resume else None
        if resume and state is None and read_records(out / ROUNDS_FILE):
            raise ValueError(f"{out / ROUNDS_FILE} has rounds but {out / STATE_FILE} is missing, so the run cannot be "
                             "continued; run without --resume to start afresh there, or use another directory")
        source = out
        if state is None and fork_from is not None:
            state = load_state(fork_from / STATE_FILE, self._config, fork=True)
            if state is None:
                raise ValueError(f"{fork_from / STATE_FILE} is missing: there is no saved run to fork from")
            source = fork_from
        if state is None:
            for stale in (STATE_FILE, SUMMARY_FILE):  # a fresh run must never be continued from an older one
                (out / stale).unlink(missing_ok=True)
        else:
            simulation.restore(state)
            self.records = [r for r in read_records(source / ROUNDS_FILE) if r.round < state.rounds_done]
            self._times = {int(line["round"]): line["time"] for line in read_jsonl(source / ROUNDS_FILE)
                           if isinstance(line.get("time"), str) and "round" in line}
            if len(self.records) != state.rounds_done:
                raise ValueError(f"{source / ROUNDS_FILE} holds {len(self.records)} of the {state.rounds_done} rounds "
                                 f"in {source / STATE_FILE}; remove both to start the run afresh")
        self._rewrite_log()
        if source != out and state is not None:  # the fork is this directory's own run from now on
            save_state(out / STATE_FILE, state, self._config)
            (out / SUMMARY_FILE).unlink(missing_ok=True)

    @property
    def resumed_at(self) -> int:
        """Rounds already done when this directory was opened (0 for a fresh run)."""
        return len(self.records)

    def run(self) -> Iterator[RoundRecord]:
        """Run the remaining rounds; each is logged and its state saved before it is yielded."""
        log = JsonLinesLog(self.out / ROUNDS_FILE, append=True)
        work = JsonLinesLog(self.out / WORK_FILE, append=True) if self.simulation.config.link is not None else None
        try:
            for record in self.simulation.run():
                if work is not None and self.simulation.last_work is not None:
                    work.append(work_to_json(record.round, self.simulation.last_work))
                log.append(stamped(SIM_ROUND, asdict(record)))
                save_state(self.out / STATE_FILE, self.simulation.state(), self._config)
                self.records.append(record)
                yield record
        finally:
            log.close()
            if work is not None:
                work.close()

    def finish(self) -> dict[str, Any]:
        """Write summary.json over every round of the run (including those before a resume) and return it."""
        summary = summarize(self._config, self.records, self.simulation.config.target_accuracy)
        write_json_atomic(self.out / SUMMARY_FILE, summary)
        return summary

    def _rewrite_log(self) -> None:
        """Replace rounds.jsonl atomically with the kept records (an empty file for a new run)."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out / ROUNDS_FILE, "".join(
            json.dumps(stamped(SIM_ROUND, asdict(record), self._times.get(record.round))) + "\n"
            for record in self.records))


def read_records(path: Path) -> list[RoundRecord]:
    """The round records of a rounds.jsonl (with or without the envelope of docs/records.md); a line cut short by
    a crash ends the list."""
    records = []
    for line in read_jsonl(path):
        try:
            records.append(RoundRecord(**without_envelope(line)))
        except TypeError:
            break
    return records
