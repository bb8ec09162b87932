"""`edge-agent run` turns user mistakes into one clear line before it starts anything."""

import pytest
from click.testing import CliRunner

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
    result = CliRunner().invoke(cli, ["run", *args])
    assert result.exit_code == 2 or result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_run_help_explains_the_shard_and_links() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert result.exit_code == 0
    for flag in ("--shard", "--uplink", "--downlink", "--latency", "--peers", "--no-mdns", "--checkpoint-dir",
                 "--threads"):
        assert flag in result.output


def test_a_backend_other_than_the_profiles_does_not_get_the_profiles_execution_providers() -> None:
    zero = find_profile("rpi-zero-2w")  # onnxruntime on CPUExecutionProvider, not a torch device
    assert kernel_providers(zero, None) == kernel_providers(zero, "onnxruntime") == ("CPUExecutionProvider",)
    assert kernel_providers(zero, "torch") == kernel_providers(zero, "numpy") == ()
