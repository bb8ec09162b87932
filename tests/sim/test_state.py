"""The saved simulation state: what counts as the same run, and clear errors for files that cannot be used."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_agent.sim.state import SimulationState, config_differences, load_state, same_schedule_so_far, save_state

CONFIG = {"algorithm": "dfedavg", "rounds": 10, "alpha": 0.1, "spark": {"projection": {"dim": 1024}}}


def _state(rounds_done: int = 3) -> SimulationState:
    weights = np.arange(12, dtype=np.float32).reshape(3, 4)
    return SimulationState(rounds_done, weights, -weights, 1.5e6)


def test_a_saved_state_loads_back_for_the_same_settings(tmp_path: Path) -> None:
    save_state(tmp_path / "state.npz", _state(), CONFIG)
    loaded = load_state(tmp_path / "state.npz", CONFIG)
    assert loaded is not None and loaded.rounds_done == 3 and loaded.cumulative_bytes_per_client == 1.5e6
    np.testing.assert_array_equal(loaded.velocity, -_state().weights)
    assert loaded.strikes == {}
    assert load_state(tmp_path / "missing.npz", CONFIG) is None


def test_the_robust_rules_strikes_are_saved_with_the_state(tmp_path: Path) -> None:
    """A continued run bars the neighbours the interrupted one had barred, so it goes on exactly as it would have."""
    strikes = {"client-0": {"client-3": 2}, "client-1": {"client-3": 1}}
    save_state(tmp_path / "state.npz", replace(_state(), strikes=strikes), CONFIG)
    loaded = load_state(tmp_path / "state.npz", CONFIG)
    assert loaded is not None and loaded.strikes == strikes


def test_differences_name_the_nested_setting_and_more_rounds_are_allowed_on_the_same_schedule() -> None:
    other = {**CONFIG, "rounds": 20, "spark": {"projection": {"dim": 512}}}
    assert config_differences(CONFIG, other) == ["spark.projection.dim: 1024 -> 512"]
    spark_before, spark_after = {**CONFIG, "algorithm": "spark"}, {**CONFIG, "algorithm": "spark", "rounds": 20}
    assert config_differences(spark_before, spark_after) == ["spark.schedule_rounds: 10 -> 20"]
    kept = {**spark_after, "spark": {"projection": {"dim": 1024}, "schedule_rounds": 10}}
    assert config_differences(spark_before, kept) == []  # saved before the setting existed: its schedule was 10
    assert config_differences(kept, {**kept, "rounds": 30}) == []
    assert config_differences(CONFIG, {**CONFIG, "taus": (1, 2)}) == ["taus: None -> [1, 2]"]


def test_a_longer_spark_run_is_refused_with_the_flag_that_keeps_its_schedule(tmp_path: Path) -> None:
    save_state(tmp_path / "state.npz", _state(rounds_done=9), _spark())
    with pytest.raises(ValueError, match=r"schedule_rounds: 9 -> 12.*--schedule-rounds 9 keeps its stage schedule"):
        load_state(tmp_path / "state.npz", _spark(rounds=12))
    longer = _spark(rounds=12, schedule_rounds=9)
    loaded = load_state(tmp_path / "state.npz", longer)
    assert loaded is not None and loaded.rounds_done == 9


def test_fewer_rounds_than_already_done_is_refused(tmp_path: Path) -> None:
    save_state(tmp_path / "state.npz", _state(rounds_done=5), CONFIG)
    with pytest.raises(ValueError, match="5 rounds done, more than the 4 asked for"):
        load_state(tmp_path / "state.npz", {**CONFIG, "rounds": 4})


def test_an_unreadable_state_file_says_how_to_start_afresh(tmp_path: Path) -> None:
    (tmp_path / "state.npz").write_bytes(b"not an npz file")
    with pytest.raises(ValueError, match=r"unreadable.*remove it to start the run afresh"):
        load_state(tmp_path / "state.npz", CONFIG)


def _spark(rounds: int = 9, **settings: object) -> dict[str, object]:
    spark = {"stage_lambdas": [0.0, 0.3, 0.5], "momentum_from_stage": 1, "momentum": True, "distill": True}
    return {"algorithm": "spark", "rounds": rounds, "alpha": 0.1, "spark": {**spark, **settings}}


def test_the_schedule_agrees_while_the_saved_rounds_got_the_same_coefficients() -> None:
    assert same_schedule_so_far(_spark(), _spark(momentum=False, distill=False), 3)  # rounds 1-3: stage 0
    assert not same_schedule_so_far(_spark(), _spark(momentum=False), 4)
    late_distill = _spark(stage_lambdas=[0.0, 0.0, 0.5])
    assert same_schedule_so_far(late_distill, _spark(stage_lambdas=[0.0, 0.0, 0.5], distill=False), 6)
    assert not same_schedule_so_far(late_distill, _spark(stage_lambdas=[0.0, 0.0, 0.5], distill=False), 7)
    assert same_schedule_so_far(_spark(), _spark(rounds=12), 3)  # 9 or 12 rounds: both still in stage 0
    assert not same_schedule_so_far(_spark(), _spark(rounds=12), 4)  # round 4 is in stage 1 of 9, stage 0 of 12
    assert same_schedule_so_far(_spark(), _spark(temperature=2.0), 3)  # no soft labels yet: no temperature
    assert not same_schedule_so_far(_spark(), _spark(beta=0.5), 4)
    assert not same_schedule_so_far(CONFIG, CONFIG, 3)


def test_a_fork_may_differ_from_its_source_only_in_schedule_and_switches_that_have_not_acted(tmp_path: Path) -> None:
    save_state(tmp_path / "state.npz", _state(rounds_done=3), _spark())
    with pytest.raises(ValueError, match=r"spark\.momentum: True -> False"):
        load_state(tmp_path / "state.npz", _spark(momentum=False))
    assert load_state(tmp_path / "state.npz", _spark(momentum=False), fork=True) is not None
    assert load_state(tmp_path / "state.npz", _spark(distill=False), fork=True) is not None
    assert load_state(tmp_path / "state.npz", _spark(rounds=12, momentum=False), fork=True) is not None
    with pytest.raises(ValueError, match=r"alpha: 0\.1 -> 0\.3"):
        load_state(tmp_path / "state.npz", {**_spark(momentum=False), "alpha": 0.3}, fork=True)
    save_state(tmp_path / "state.npz", _state(rounds_done=4), _spark())
    with pytest.raises(ValueError, match=r"spark\.distill: True -> False"):
        load_state(tmp_path / "state.npz", _spark(distill=False), fork=True)
    with pytest.raises(ValueError, match=r"schedule_rounds: 9 -> 12"):
        load_state(tmp_path / "state.npz", _spark(rounds=12), fork=True)


def test_a_run_saved_before_a_setting_existed_continues_under_the_value_it_used() -> None:
    codec = {"precision": "fp32", "block_size": 256}
    current = {**CONFIG, "weights_codec": codec, "spark": {**CONFIG["spark"], "candidates_codec": codec}}
    assert config_differences(CONFIG, current) == []
    assert config_differences(CONFIG, {**CONFIG, "weights_codec": {"precision": "int8"}}) == [
        "weights_codec.precision: 'fp32' -> 'int8'"]
