"""`edge-agent simulate`: outputs a user relies on, and one clear line for each input mistake."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli.main import cli

ROUND_FIELDS = {"round", "agg_accuracy", "mean_client_accuracy", "bytes_per_client", "cumulative_bytes_per_client",
                "tau", "seconds"}


def _simulate(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["simulate", "--setting", "smoke", "--out", str(tmp_path / "out"), *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("algorithm", ["spark", "ntk-dfl", "dpsgd"])
def test_simulate_writes_rounds_and_summary_and_learns(tmp_path: Path, algorithm: str) -> None:
    code, output = _simulate(tmp_path, "--algorithm", algorithm, "--rounds", "2", "--solver", "euler")
    assert code == 0, output
    rounds = [json.loads(line) for line in (tmp_path / "out" / "rounds.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [r["round"] for r in rounds] == [0, 1]
    assert set(rounds[0]) >= ROUND_FIELDS
    assert rounds[1]["cumulative_bytes_per_client"] == pytest.approx(2 * rounds[0]["bytes_per_client"])
    assert rounds[-1]["agg_accuracy"] > 0.3  # 10 classes: chance is 0.1
    assert summary["config"]["algorithm"] == algorithm and summary["config"]["clients"] == 10
    assert summary["rounds_to_target"] is None and summary["bytes_to_target"] is None
    assert summary["final_agg_accuracy"] == rounds[-1]["agg_accuracy"]
    assert "final aggregated accuracy" in output


def test_spark_traffic_is_a_fraction_of_ntk_dfl(tmp_path: Path) -> None:
    sizes = {}
    for algorithm in ("spark", "ntk-dfl"):
        code, output = _simulate(tmp_path / algorithm, "--algorithm", algorithm, "--rounds", "1", "--solver", "euler")
        assert code == 0, output
        sizes[algorithm] = json.loads((tmp_path / algorithm / "out" / "rounds.jsonl").read_text())["bytes_by_kind"]
    ratio = sizes["spark"]["JacobianReply"] / sizes["ntk-dfl"]["JacobianReply"]
    assert ratio == pytest.approx(1024 / 79_510, rel=0.01)  # (N*C*m + N*C + N) / (N*C*d + N*C + N)


def test_wire_precisions_shrink_the_counted_bytes(tmp_path: Path) -> None:
    sizes = {}
    low = ("--precision", "int4", "--weights-precision", "fp16", "--candidates-precision", "int8")
    for name, flags in (("fp32", ()), ("low", low)):
        code, output = _simulate(tmp_path / name, "--algorithm", "spark", "--rounds", "1", "--solver", "euler", *flags)
        assert code == 0, output
        sizes[name] = json.loads((tmp_path / name / "out" / "rounds.jsonl").read_text())["bytes_by_kind"]
    for kind in ("WeightsMessage", "JacobianRequest"):
        assert sizes["low"][kind] * 2 == sizes["fp32"][kind]
    # A candidate request of T = 4 taus in R^m, m = 1024: a byte each and a float32 scale per 256, against 4 bytes.
    assert sizes["low"]["CandidateRequest"] * 4 * 4 * 1024 == sizes["fp32"]["CandidateRequest"] * (4 * 1024 + 4 * 16)
    # A reply of N samples: N * C * m = 10,240 N Jacobian elements (half a byte each, a float32 scale per 256)
    # and N * C + N = 11 N float32 logits and labels.
    per_sample = {"fp32": 4 * 10_240 + 4 * 11, "low": 10_240 // 2 + 4 * 10_240 // 256 + 4 * 11}
    samples = {name: sizes[name]["JacobianReply"] / per_sample[name] for name in sizes}
    assert samples["low"] == samples["fp32"] and samples["low"].is_integer()


def test_a_residual_share_sends_fewer_jacobian_rows_and_is_checked(tmp_path: Path) -> None:
    sizes = {}
    for share, tail in (("1", "0"), ("0.8", "0"), ("0.8", "0.5")):
        out = tmp_path / f"{share}-{tail}"
        code, output = _simulate(out, "--algorithm", "spark", "--rounds", "1", "--solver", "euler",
                                 "--residual-share", share, "--tail-rate", tail)
        assert code == 0, output
        sizes[share, tail] = json.loads((out / "out" / "rounds.jsonl").read_text())["bytes_by_kind"]
    replies = [sizes[key]["JacobianReply"] for key in (("0.8", "0"), ("0.8", "0.5"), ("1", "0"))]
    assert replies == sorted(replies) and len(set(replies)) == 3  # a tail adds rows back, never all of them
    assert sizes["0.8", "0"]["WeightsMessage"] == sizes["1", "0"]["WeightsMessage"]
    code, output = _simulate(tmp_path / "bad", "--residual-share", "0")
    assert code == 2 and "Invalid value for '--residual-share'" in output and "Traceback" not in output


def test_weights_precision_applies_to_the_baselines_too(tmp_path: Path) -> None:
    code, output = _simulate(tmp_path, "--algorithm", "dfedavg", "--rounds", "1", "--weights-precision", "int8")
    assert code == 0, output
    sizes = json.loads((tmp_path / "out" / "rounds.jsonl").read_text())["bytes_by_kind"]
    assert sizes == {"WeightsMessage": 10 * 2 * (79_510 + 4 * -(-79_510 // 256))}  # smoke: 10 clients, kappa 2


@pytest.mark.parametrize(("args", "message"), [
    (["--alpha", "0"], "alpha must be positive"),
    (["--kappa", "10"], "degree"),
    (["--clients", "5", "--kappa", "3"], "must be even"),
    (["--rounds", "0"], "rounds must be at least 1"),
    (["--eta0", "0"], "need eta0 > 0"),
    (["--gamma", "-1"], "gamma >= 0"),
    (["--taus", "200,100"], "taus must be distinct positive integers in increasing order"),
])
def test_bad_input_gets_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    code, output = _simulate(tmp_path, *args)
    assert code == 1
    assert output.startswith("Error: ") and message in output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1


def test_unparsable_taus_are_a_usage_error(tmp_path: Path) -> None:
    code, output = _simulate(tmp_path, "--taus", "25,fifty")
    assert code == 2
    assert "Invalid value for '--taus'" in output and "comma-separated integers" in output
    assert "Traceback" not in output


def test_learning_rate_schedule_and_taus_reach_the_run(tmp_path: Path) -> None:
    code, output = _simulate(tmp_path, "--algorithm", "ntk-dfl", "--rounds", "1", "--solver", "euler",
                             "--eta0", "0.05", "--gamma", "0", "--taus", "3,7")
    assert code == 0, output
    ntk = json.loads((tmp_path / "out" / "summary.json").read_text())["config"]["ntk"]
    assert ntk["eta0"] == 0.05 and ntk["gamma"] == 0.0 and ntk["evolution"]["taus"] == [3, 7]
    rounds = [json.loads(line) for line in (tmp_path / "out" / "rounds.jsonl").read_text().splitlines()]
    assert {int(tau) for tau in rounds[0]["tau"]} <= {3, 7}  # counts of the chosen tau


def test_missing_data_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_AGENT_DATA", str(tmp_path / "empty"))
    code, output = _simulate(tmp_path)
    assert code == 1
    assert "apt-get install dataset-fashion-mnist" in output and "Traceback" not in output


def test_resume_continues_a_saved_run_and_refuses_other_settings_in_one_line(tmp_path: Path) -> None:
    code, output = _simulate(tmp_path, "--algorithm", "dfedavg", "--rounds", "1")
    assert code == 0, output
    code, output = _simulate(tmp_path, "--algorithm", "dfedavg", "--rounds", "2", "--resume")
    assert code == 0, output
    assert "resuming" in output and "at round 1 (1 of 2 done)" in output
    rounds = [json.loads(line)["round"] for line in (tmp_path / "out" / "rounds.jsonl").read_text().splitlines()]
    assert rounds == [0, 1]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["rounds_run"] == 2

    code, output = _simulate(tmp_path, "--algorithm", "dfedavg", "--rounds", "2", "--alpha", "0.5", "--resume")
    assert code == 1
    assert output.startswith("Error: ") and "alpha: 0.1 -> 0.5" in output and len(output.strip().splitlines()) == 1


def test_a_spark_run_goes_on_past_its_schedule_as_if_it_had_been_asked_for_from_the_start(tmp_path: Path) -> None:
    base = ("--algorithm", "spark", "--solver", "euler", "--proj-dim", "64")
    assert _simulate(tmp_path / "whole", *base, "--rounds", "3", "--schedule-rounds", "2")[0] == 0
    assert _simulate(tmp_path / "parts", *base, "--rounds", "2")[0] == 0
    code, output = _simulate(tmp_path / "parts", *base, "--rounds", "3", "--resume")
    assert code == 1 and "--schedule-rounds 2 keeps its stage schedule" in output
    code, output = _simulate(tmp_path / "parts", *base, "--rounds", "3", "--schedule-rounds", "2", "--resume")
    assert code == 0, output
    whole, parts = ((tmp_path / run / "out" / "rounds.jsonl").read_text().splitlines() for run in ("whole", "parts"))
    fields = ("round", "agg_accuracy", "mean_client_accuracy", "cumulative_bytes_per_client", "tau")
    assert [[json.loads(line)[key] for key in fields] for line in parts] == [
        [json.loads(line)[key] for key in fields] for line in whole]


@pytest.mark.parametrize(("flags", "expected"), [
    (["--preset", "lean"], ("int4", "int4", 32)),
    (["--preset", "lean", "--kernel-dim", "16", "--precision", "int8"], ("int8", "int4", 16)),
    (["--preset", "lean", "--proj-dim", "32"], ("int4", "int4", 0)),  # a sketch as wide as m is left out
    ([], ("fp32", "fp32", 0)),
])
def test_a_preset_sets_the_method_flags_the_user_left_alone(tmp_path: Path, flags: list[str],
                                                            expected: tuple[str, str, int]) -> None:
    code, output = _simulate(tmp_path, "--rounds", "1", "--solver", "euler", *flags)
    assert code == 0, output
    config = json.loads((tmp_path / "out" / "summary.json").read_text())["config"]
    assert (config["spark"]["codec"]["precision"], config["weights_codec"]["precision"],
            config["spark"]["kernel_dim"]) == expected
    kinds = json.loads((tmp_path / "out" / "rounds.jsonl").read_text())["bytes_by_kind"]
    assert ("PullBackRequest" in kinds) == (expected[2] > 0)
