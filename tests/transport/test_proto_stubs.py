"""The committed stubs in edge_agent/v1 are what `make proto` generates from proto/edge_agent/v1/agent.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO = "proto/edge_agent/v1/agent.proto"
GENERATED = ("agent_pb2.py", "agent_pb2.pyi", "agent_pb2_grpc.py")


def test_generated_stubs_are_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Iproto", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", PROTO],
        cwd=ROOT, check=True, capture_output=True,
    )
    stale = [name for name in GENERATED
             if (tmp_path / "edge_agent/v1" / name).read_bytes() != (ROOT / "edge_agent/v1" / name).read_bytes()]
    if stale:
        pytest.fail(f"edge_agent/v1/{', '.join(stale)} differ from {PROTO}: run `make proto`")


def test_the_contract_is_a_versioned_package() -> None:
    from edge_agent.v1 import agent_pb2

    assert agent_pb2.DESCRIPTOR.package == "edge_agent.v1"
    assert set(agent_pb2.DESCRIPTOR.services_by_name) == {"Agent"}
