"""What `status` prints about an agent's neighbours: a neighbour its --robust rule refused or clipped is named, with
why, beside the ones taking part or missing."""

from __future__ import annotations

from edge_agent.fleet.dial import Target
from edge_agent.fleet.status import status_json, status_text
from edge_agent.transport.contract import AgentStatus, NeighbourState


def test_refused_and_clipped_neighbours_are_named_with_why() -> None:
    status = AgentStatus(round=4, state="round 4", agent_id="client-0", security="mtls", rounds=10, neighbours=(
        NeighbourState("client-1", "ok"),
        NeighbourState("client-2", "clipped", "jacobian x0.012"),
        NeighbourState("client-3", "refused", "weights 846 from ours, beyond the radius 17.2"),
        NeighbourState("client-4", "missing", "unavailable")))
    agent = status_json(Target("127.0.0.1", 50051, "client-0"), status)
    assert [n["state"] for n in agent["neighbours"]] == ["ok", "clipped", "refused", "missing"]
    line = next(line for line in status_text(agent).splitlines() if line.strip().startswith("neighbours"))
    assert line.split(None, 1)[1] == ("client-1, client-2 clipped (jacobian x0.012), client-3 refused (weights 846 "
                                      "from ours, beyond the radius 17.2), client-4 missing (unavailable)")
