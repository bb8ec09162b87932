"""The systemd unit passes `systemd-analyze verify` and rates an exposure of 3.0 or less in `security --offline`."""

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest

from edge_agent.deploy.unit import UnitSettings, render_unit

ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)")


def _unit(tmp_path: Path) -> Path:
    """The unit for an install root in tmp_path, with the ExecStart program verify wants to find."""
    program = tmp_path / "root" / "current" / "venv" / "bin" / "edge-agent"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    path = tmp_path / "edge-agent.service"
    path.write_text(render_unit(UnitSettings(root=PurePosixPath(tmp_path / "root"))))
    return path


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    verified = subprocess.run([str(ANALYZE), "verify", str(_unit(tmp_path))], capture_output=True, text=True,
                              timeout=60, check=False)
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr


def test_the_unit_is_sandboxed_to_an_exposure_of_3_or_less(tmp_path: Path) -> None:
    rated = subprocess.run([str(ANALYZE), "security", "--offline=true", str(_unit(tmp_path))], capture_output=True,
                           text=True, timeout=60, check=False)
    exposure = re.search(r"Overall exposure level for edge-agent.service: (\d+\.\d)", rated.stdout)
    assert exposure is not None, rated.stdout + rated.stderr
    assert float(exposure[1]) <= 3.0


def test_the_unit_keeps_what_the_agent_needs_and_nothing_more() -> None:
    lines = render_unit().splitlines()
    assert "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK" in lines  # gRPC, mDNS, interfaces
    for line in ("User=edge-agent", "StateDirectory=edge-agent", "Restart=on-failure", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes", "CapabilityBoundingSet=",
                 "StandardOutput=journal",
                 "ExecStart=/opt/edge-agent/current/venv/bin/edge-agent run --config "
                 "/opt/edge-agent/current/agent.toml \\"):
        assert line in lines
    assert "--checkpoint-dir /var/lib/edge-agent/checkpoints --metrics /var/lib/edge-agent/metrics.jsonl" in lines[
        lines.index("ExecStart=/opt/edge-agent/current/venv/bin/edge-agent run --config "
                    "/opt/edge-agent/current/agent.toml \\") + 1]
