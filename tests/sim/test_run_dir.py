"""An interrupted simulation continues from its saved state exactly as if it had never stopped."""

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from edge_agent.learning.data import Dataset, load_fashion_mnist
from edge_agent.learning.ntk import EvolutionConfig
from edge_agent.learning.projection import ProjectionConfig
from edge_agent.sim.config import SimulationConfig
from edge_agent.sim.engine import Simulation
from edge_agent.sim.run_dir import ROUNDS_FILE, STATE_FILE, RunDirectory, read_records


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, Dataset]:
    return load_fashion_mnist()


def _config(rounds: int = 3, algorithm: str = "spark", dim: int = 64) -> SimulationConfig:
    config = SimulationConfig.from_setting("smoke", algorithm, rounds=rounds, clients=6, samples_per_client=40)  # type: ignore[arg-type]
    euler = EvolutionConfig(solver="euler")
    spark = replace(config.spark, ntk=replace(config.spark.ntk, evolution=euler),
                    projection=ProjectionConfig(dim=dim))
    return replace(config, ntk=replace(config.ntk, evolution=euler), spark=spark)


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without_seconds(path: Path) -> list[dict[str, object]]:
    return [{k: v for k, v in asdict(r).items() if k != "seconds"} for r in read_records(path)]


def test_a_run_stopped_after_a_round_and_resumed_equals_an_uninterrupted_run(
        tmp_path: Path, data: tuple[Dataset, Dataset]) -> None:
    whole = RunDirectory(tmp_path / "whole", Simulation(_config(), *data))
    assert len(list(whole.run())) == 3
    whole.finish()

    first = RunDirectory(tmp_path / "split", Simulation(_config(), *data))
    for _ in first.run():
        break  # the process dies after its first round
    [written] = _lines(tmp_path / "split" / ROUNDS_FILE)
    resumed = RunDirectory(tmp_path / "split", Simulation(_config(), *data), resume=True)
    assert resumed.resumed_at == 1
    assert [r.round for r in resumed.run()] == [1, 2]
    summary = resumed.finish()
    lines = _lines(tmp_path / "split" / ROUNDS_FILE)  # docs/records.md: the envelope, round 0's time kept
    assert [(line["schema"], line["record"], line["round"]) for line in lines] == [
        (1, "sim-round", k) for k in range(3)]
    assert lines[0]["time"] == written["time"] and lines[0]["time"] <= lines[1]["time"] <= lines[2]["time"]

    np.testing.assert_array_equal(resumed.simulation.weights, whole.simulation.weights)
    np.testing.assert_array_equal(resumed.simulation.velocity, whole.simulation.velocity)
    assert _without_seconds(tmp_path / "split" / ROUNDS_FILE) == _without_seconds(tmp_path / "whole" / ROUNDS_FILE)
    assert summary["rounds_run"] == 3
    assert summary["total_bytes_per_client"] == json.loads((tmp_path / "whole" / "summary.json").read_text())[
        "total_bytes_per_client"]


def test_a_logged_round_whose_state_was_not_saved_is_dropped_and_run_again(
        tmp_path: Path, data: tuple[Dataset, Dataset]) -> None:
    run = RunDirectory(tmp_path, Simulation(_config(), *data))
    for _ in run.run():
        break
    log = tmp_path / ROUNDS_FILE
    line = log.read_text().splitlines()[0]
    log.write_text(line + "\n" + line.replace('"round": 0', '"round": 1') + "\n" + '{"round": 2, "agg')  # torn tail
    resumed = RunDirectory(tmp_path, Simulation(_config(), *data), resume=True)
    assert resumed.resumed_at == 1
    assert [r.round for r in read_records(log)] == [0]


def test_resuming_with_other_settings_names_the_setting_that_differs(
        tmp_path: Path, data: tuple[Dataset, Dataset]) -> None:
    run = RunDirectory(tmp_path, Simulation(_config(), *data))
    for _ in run.run():
        break
    with pytest.raises(ValueError, match=r"spark\.projection\.dim: 64 -> 32"):
        RunDirectory(tmp_path, Simulation(_config(dim=32), *data), resume=True)
    with pytest.raises(ValueError, match=r"rounds: 3 -> 5"):  # SPARK's stages are spread over the rounds
        RunDirectory(tmp_path, Simulation(_config(rounds=5), *data), resume=True)


def test_a_baseline_run_may_be_extended_by_more_rounds(tmp_path: Path, data: tuple[Dataset, Dataset]) -> None:
    run = RunDirectory(tmp_path, Simulation(_config(rounds=1, algorithm="dfedavg"), *data))
    list(run.run())
    longer = RunDirectory(tmp_path, Simulation(_config(rounds=2, algorithm="dfedavg"), *data), resume=True)
    assert [r.round for r in longer.run()] == [1]
    assert longer.finish()["rounds_run"] == 2


def test_a_fresh_run_discards_an_older_runs_state(tmp_path: Path, data: tuple[Dataset, Dataset]) -> None:
    run = RunDirectory(tmp_path, Simulation(_config(), *data))
    for _ in run.run():
        break
    assert (tmp_path / STATE_FILE).exists()
    RunDirectory(tmp_path, Simulation(_config(), *data))
    assert not (tmp_path / STATE_FILE).exists() and read_records(tmp_path / ROUNDS_FILE) == []


def test_a_log_missing_rounds_of_the_state_is_an_error(tmp_path: Path, data: tuple[Dataset, Dataset]) -> None:
    run = RunDirectory(tmp_path, Simulation(_config(), *data))
    for _ in run.run():
        break
    (tmp_path / ROUNDS_FILE).write_text("")
    with pytest.raises(ValueError, match="holds 0 of the 1 rounds"):
        RunDirectory(tmp_path, Simulation(_config(), *data), resume=True)


def test_resume_never_discards_the_rounds_of_a_run_it_cannot_continue(
        tmp_path: Path, data: tuple[Dataset, Dataset]) -> None:
    run = RunDirectory(tmp_path, Simulation(_config(), *data))
    for _ in run.run():
        break
    (tmp_path / STATE_FILE).unlink()  # e.g. a run written before states were saved
    with pytest.raises(ValueError, match="cannot be continued"):
        RunDirectory(tmp_path, Simulation(_config(), *data), resume=True)
    assert [r.round for r in read_records(tmp_path / ROUNDS_FILE)] == [0]


def test_an_ablation_forked_before_its_switch_acts_equals_the_ablation_run_from_the_start(
        tmp_path: Path, data: tuple[Dataset, Dataset]) -> None:
    ablation = replace(_config(), spark=replace(_config().spark, momentum=False, distill=False))
    direct = RunDirectory(tmp_path / "direct", Simulation(ablation, *data))
    list(direct.run())
    shared = RunDirectory(tmp_path / "shared", Simulation(_config(), *data))
    for _ in shared.run():
        break  # round 1 of 3 is stage 0: neither momentum nor the soft-label target has acted
    fork = RunDirectory(tmp_path / "fork", Simulation(ablation, *data), fork_from=tmp_path / "shared")
    assert fork.resumed_at == 1
    assert [r.round for r in fork.run()] == [1, 2]
    np.testing.assert_array_equal(fork.simulation.weights, direct.simulation.weights)
    assert _without_seconds(tmp_path / "fork" / ROUNDS_FILE) == _without_seconds(tmp_path / "direct" / ROUNDS_FILE)
    assert RunDirectory(tmp_path / "fork", Simulation(ablation, *data), resume=True).resumed_at == 3


def test_a_fork_after_the_switch_has_acted_is_refused(tmp_path: Path, data: tuple[Dataset, Dataset]) -> None:
    shared = RunDirectory(tmp_path / "shared", Simulation(_config(), *data))
    for record in shared.run():
        if record.round == 1:
            break
    no_momentum = replace(_config(), spark=replace(_config().spark, momentum=False))
    with pytest.raises(ValueError, match=r"spark\.momentum: True -> False"):
        RunDirectory(tmp_path / "fork", Simulation(no_momentum, *data), fork_from=tmp_path / "shared")
    with pytest.raises(ValueError, match="no saved run to fork from"):
        RunDirectory(tmp_path / "fork", Simulation(no_momentum, *data), fork_from=tmp_path / "nothing")
