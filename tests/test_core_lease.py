"""Lease reads (off by default): the leader serves reads without a heartbeat round while a quorum has
acknowledged a heartbeat it sent less than election_ticks - margin ago; followers that heard from it
refuse other candidates for election_ticks, so no other leader can exist meanwhile (given bounded
clock drift). A restarted node refuses votes for one election timeout (it may have promised a lease)."""

from __future__ import annotations

from dataclasses import replace

from raftnet import PAPER, RaftNet

from rast_maelstrom.core import RequestVote, Role

LEASE = replace(PAPER, pre_vote=True, check_quorum=True, lease_reads=True, lease_margin_ticks=2)
THREE = ["n1", "n2", "n3"]


def leader(config=LEASE) -> RaftNet:
    net = RaftNet(THREE, config=config)
    net.tick_all(config.election_ticks)  # past the restart quarantine
    net.elect("n1")
    net.propose("n1", "x")
    net.stabilize()
    return net


def beat(net: RaftNet) -> None:
    net.tick("n1", LEASE.heartbeat_ticks)
    net.stabilize()


def test_with_a_fresh_quorum_ack_reads_are_served_without_a_round() -> None:
    net = leader()
    beat(net)
    n1 = net["n1"]
    assert n1.read_index("r")
    rd = n1.ready()
    assert rd.read_states == [("r", n1.commit_index)]
    assert rd.messages == []  # no heartbeat round was needed


def test_the_lease_expires_without_acks_and_reads_fall_back_to_a_round() -> None:
    net = leader()
    beat(net)
    net.isolate("n1")
    net.tick("n1", LEASE.election_ticks - LEASE.lease_margin_ticks)  # beats go unanswered
    net.stabilize()
    n1 = net["n1"]
    assert n1.role is Role.LEADER  # check-quorum has not fired yet: the lease alone must stop it
    assert n1.read_index("r")
    rd = n1.ready()
    assert rd.read_states == [] and any(type(m).__name__ == "Heartbeat" for m in rd.messages)


def test_lease_off_by_default_always_runs_a_round() -> None:
    net = leader(replace(LEASE, lease_reads=False))
    beat(net)
    n1 = net["n1"]
    assert n1.read_index("r")
    rd = n1.ready()
    assert rd.read_states == []


def test_followers_in_lease_ignore_vote_requests() -> None:
    net = leader()
    beat(net)
    n2 = net["n2"]
    term = n2.current_term
    n2.step(RequestVote("n3", "n2", term + 1, 100, term + 1, False))
    assert n2.current_term == term and n2.ready().messages_after_persist == []


def test_a_restarted_node_refuses_votes_for_one_election_timeout() -> None:
    net = leader()
    n2 = net.restart("n2")
    term = n2.current_term
    n2.step(RequestVote("n3", "n2", term + 1, 100, term + 1, False))
    assert n2.current_term == term  # ignored: it may have acknowledged n1's lease before the crash
    for _ in range(LEASE.election_ticks):
        n2.tick()
    n2.step(RequestVote("n3", "n2", term + 5, 100, term + 5, False))
    assert n2.current_term == term + 5
