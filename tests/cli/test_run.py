"""`edge-agent run` turns user mistakes into one clear line before it starts anything."""

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import edge_agent.cli.run as run_command
from edge_agent.agent.config import AgentConfig
from edge_agent.cli.main import cli
from edge_agent.cli.run import kernel_providers
from edge_agent.deploy.profiles import find_profile


@pytest.mark.parametrize(("args", "message"), [
    (["--shard", "3"], "expected i/M"),
    (["--shard", "4/4"], "0 <= i < M"),
    (["--shard", "0/4", "--no-mdns"], "--peers"),
    (["--shard", "0/4", "--peers", "localhost"], "host:port"),
    (["--shard", "0/4", "--uplink", "fast"], "fast"),
    (["--shard", "0/4", "--profile", "rpi-9"], "unknown profile"),
    (["--shard", "0/4", "--threads", "0"], "--threads"),
])
def test_run_rejects_bad_input_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["run", "--insecure", *args])
    assert result.exit_code == 2 or result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_run_help_explains_the_shard_and_links() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert result.exit_code == 0
    for flag in ("--shard", "--uplink", "--downlink", "--latency", "--peers", "--no-mdns", "--checkpoint-dir",
                 "--threads"):
        assert flag in result.output


def test_a_backend_gets_only_the_profiles_execution_providers_that_name_its_own_devices() -> None:
    zero = find_profile("rpi-zero-2w")  # onnxruntime on CPUExecutionProvider, not a torch device
    assert kernel_providers(zero, "onnxruntime") == ("CPUExecutionProvider",)
    assert kernel_providers(zero, "torch") == kernel_providers(zero, "numpy") == ()
    generic = find_profile("generic")  # auto: a torch device and an ONNX Runtime provider
    assert generic.runtime.backend == "auto"
    assert kernel_providers(generic, "torch") == ("cpu",)
    assert kernel_providers(generic, "onnxruntime") == ("CPUExecutionProvider",)


@pytest.mark.parametrize(("flags", "expected"), [
    ([], ("int4", "fp16", "int4", 0.9, 0.25, 32)),  # the Pi Zero 2 W runs the lean preset
    (["--precision", "fp16", "--candidates-precision", "int8", "--residual-share", "0.5", "--tail-rate", "0"],
     ("fp16", "int8", "int4", 0.5, 0.0, 32)),
    (["--preset", "published"], ("int4", "fp32", "int8", 0.9, 0.25, 0)),  # the profile's own [spark] values
    (["--kernel-dim", "16", "--weights-precision", "fp16"], ("int4", "fp16", "fp16", 0.9, 0.25, 16)),
])
def test_the_profile_and_its_preset_set_what_spark_sends_unless_a_flag_says_otherwise(
        monkeypatch: pytest.MonkeyPatch, flags: list[str], expected: tuple[Any, ...]) -> None:
    seen: list[AgentConfig] = []

    def stop_before_the_data(config: AgentConfig, data_dir: Path | None) -> None:
        seen.append(config)
        raise ValueError("stopped before loading data")

    monkeypatch.setattr(run_command, "load_shard", stop_before_the_data)
    result = CliRunner().invoke(cli, ["run", "--insecure", "--shard", "0/4", "--profile", "rpi-zero-2w", *flags])
    assert result.exit_code == 1 and "stopped before loading data" in result.output
    spark = seen[0].spark
    assert (spark.codec.precision, spark.candidates_codec.precision, seen[0].weights_codec.precision,
            spark.residual_share, spark.tail_rate, spark.kernel_dim) == expected
