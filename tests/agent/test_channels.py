"""The peer pool follows the members: a member that restarts on a new port or leaves frees its old channel."""

from dataclasses import replace

from edge_agent.agent.channels import MemberChannels
from edge_agent.discovery.membership import Membership
from edge_agent.discovery.peers import PeerRecord
from edge_agent.transport.client import PeerPool


def _member(agent_id: str, port: int, round_: int = 0) -> PeerRecord:
    return PeerRecord(agent_id, "127.0.0.1", port, "edge_agent.v1", "spark", "smoke", round_, 100, "generic",
                      "lab", "0123456789ab", 1)


def test_a_member_that_restarts_on_a_new_port_leaves_no_channel_to_its_old_one() -> None:
    members, pool = Membership(), PeerPool()
    members.add_listener(MemberChannels(pool).on_change)
    try:
        for restart in range(3):  # the pool holds one channel however often the member comes back
            record = _member("client-1", 6000 + restart)
            members.upsert(record)
            pool.get(record.address, record.agent_id)
            assert pool.addresses() == [record.address]
        members.upsert(replace(record, round=7))  # same address, new round: the channel stays
        assert pool.addresses() == [record.address]
        members.remove("client-1")
        assert pool.addresses() == []
    finally:
        pool.close()


def test_a_member_that_moves_keeps_no_channel_another_member_still_uses_closed() -> None:
    members, pool = Membership(), PeerPool()
    members.add_listener(MemberChannels(pool).on_change)
    try:
        members.upsert(_member("client-1", 6000))
        members.upsert(_member("client-2", 6001))
        pool.get("127.0.0.1:6000", "client-1")
        members.upsert(_member("client-2", 6000))  # client-2 took over the port client-1 still holds
        members.upsert(_member("client-1", 6002))
        assert pool.addresses() == ["127.0.0.1:6000"]  # client-2's channel now
    finally:
        pool.close()
