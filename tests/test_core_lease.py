"""Lease reads: the leader serves reads without a heartbeat round while a quorum has acknowledged a
heartbeat it sent less than election_ticks - margin ago; followers that heard from it refuse other
candidates for election_ticks, so no other leader can exist meanwhile (given bounded clock drift). A
restarted node refuses votes for one election timeout (it may have promised a lease).

Under membership changes (the second half): the lease counts the voters of the configuration in
force only: a voter added within a lease period raises the quorum at once, a removed voter's acks
stop counting, a learner's never count, several single-server steps in one lease period keep it
exact; a leader handing over by TimeoutNow (also to remove itself) has no lease from the moment it
starts the handover, and none for the rest of its term even if the handover is given up (the heir's
vote requests override stickiness for as long as they travel)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from raftnet import PAPER, RaftNet

from rast_maelstrom.core import Heartbeat, HeartbeatResponse, RequestVote, Role, TimeoutNow, raft

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


def test_a_node_that_may_still_have_term_0_on_disk_acknowledges_heartbeats_only_once_durable() -> None:
    # A brand-new node restarts without quarantine (term 0: it never promised anything). So until a
    # term above 0 is durable, an ack it sends (a promise to n1's lease) must wait for the disk:
    # else a crash could bring it back with term 0, free to vote at once.
    net = RaftNet(THREE, config=LEASE, auto_persist=False)
    n2 = net["n2"]
    n2.step(Heartbeat("n1", "n2", 1, 0, 1))
    first = n2.ready()  # the term change is handed to storage, not yet durable
    assert first.hard_state == (1, None) and [type(m) for m in first.messages_after_persist] == [HeartbeatResponse]
    n2.step(Heartbeat("n1", "n2", 1, 0, 2))
    second = n2.ready()
    assert second.messages == [] and [m.read_seq for m in second.messages_after_persist] == [2]
    # Once storage reports entries of a term above 0 durable, acks leave at once again.
    n2.persisted(0, 0)
    n2.step(Heartbeat("n1", "n2", 1, 0, 3))
    assert [m.read_seq for m in n2.ready().messages_after_persist] == [3]
    n2.log.append(1, "x")
    n2.persisted(1, 1)
    n2.step(Heartbeat("n1", "n2", 1, 0, 4))
    assert [m.read_seq for m in n2.ready().messages] == [4]


def test_lease_reads_need_check_quorum() -> None:
    with pytest.raises(AssertionError, match="stickiness"):
        replace(LEASE, check_quorum=False)


# ---------------------------------------------------------------------- membership changes

FIVE = ["n1", "n2", "n3", "n4", "n5"]
LEASE_MEMBERS = replace(LEASE, learner_snapshot=False)  # (learners catch up from entries here)
LEASE_TICKS = LEASE.election_ticks - LEASE.lease_margin_ticks


def _members_net(members=("n1", "n2", "n3")) -> RaftNet:
    net = RaftNet(FIVE, config=LEASE_MEMBERS, members=list(members))
    net.tick_all(LEASE.election_ticks)
    net.elect("n1")
    net.propose("n1", "x")
    net.stabilize()
    return net


def _reconfigure(net: RaftNet, voters, rounds: int = 20) -> None:
    """Reach `voters` with heartbeats going, ticking as little as possible (within one lease)."""
    assert net["n1"].reconfigure(voters) is None
    for _ in range(rounds):
        net.stabilize()
        if net["n1"].reconfigured(voters):
            return
        beat(net)
    raise AssertionError(f"{sorted(voters)} not reached: {net['n1'].conf}")


def _served_at_once(net: RaftNet, ctx: str = "r") -> bool:
    """Does the leader serve a read from its lease, without a heartbeat round?"""
    assert net["n1"].read_index(ctx)
    rd = net.ready("n1")
    net.take()  # (the round's heartbeats, if any, are not delivered)
    return any(c == ctx for c, _ in rd.read_states)


def _age_acks_except(net: RaftNet, fresh: list[str]) -> None:
    """A lease period of beats that only `fresh` answer: everyone else's acks grow too old."""
    for _ in range(LEASE_TICKS // LEASE.heartbeat_ticks + 1):
        net.tick("n1", LEASE.heartbeat_ticks)
        net.stabilize(["n1", *fresh])


def test_a_voter_added_within_a_lease_period_raises_the_lease_quorum_at_once() -> None:
    net = _members_net()
    net.isolate("n3")
    _age_acks_except(net, ["n2"])
    assert _served_at_once(net)  # n1 + n2: a quorum of n1, n2, n3
    net.heal()
    net.isolate("n3")
    _reconfigure(net, {"n1", "n2", "n3", "n4"})  # committed by n1, n2, n4
    net.isolate("n4")
    net.cut.add(frozenset(("n1", "n3")))
    _age_acks_except(net, ["n2"])
    # n1 + n2 are not a quorum of four: n3 and n4 (one of which may still be in the old
    # configuration) must not be able to elect a leader while n1 serves from a lease.
    assert not _served_at_once(net)


def test_a_learner_never_counts_toward_a_lease() -> None:
    net = _members_net()
    net.partition(["n1", "n4"], ["n2", "n3", "n5"])
    assert net["n1"].reconfigure({"n1", "n2", "n3", "n4"}) is None
    net.stabilize(["n1", "n4"])
    assert net["n1"].conf.learners == ("n4",)
    _age_acks_except(net, ["n4"])  # the learner answers every beat; the voters n2, n3 none
    assert not _served_at_once(net)  # n2 and n3 may elect a leader of their own meanwhile


def test_a_learner_counting_toward_a_lease_is_a_planted_bug_this_test_file_catches() -> None:
    net = RaftNet(FIVE, config=replace(LEASE_MEMBERS, bugs=frozenset({raft.BUG_LEASE_COUNTS_LEARNERS})),
                  members=["n1", "n2", "n3"])
    net.tick_all(LEASE.election_ticks)
    net.elect("n1")
    net.partition(["n1", "n4"], ["n2", "n3", "n5"])
    assert net["n1"].reconfigure({"n1", "n2", "n3", "n4"}) is None
    net.stabilize(["n1", "n4"])
    _age_acks_except(net, ["n4"])
    assert _served_at_once(net)  # (what the test above rules out)


def test_a_removed_voter_s_acks_stop_counting() -> None:
    net = _members_net(FIVE)
    _reconfigure(net, {"n1", "n2", "n3"})  # n4, n5 removed: they still hear heartbeats as outsiders
    net.partition(["n1", "n4", "n5"], ["n2", "n3"])
    _age_acks_except(net, ["n4", "n5"])
    assert net["n4"].leader_id == "n1"  # (they answer; their answers count for nothing)
    assert not _served_at_once(net)


def test_several_single_server_changes_within_one_lease_period_keep_the_lease_exact() -> None:
    # n1, n2, n3 -> n1, n2, n4, n5 is four steps (learners n4, n5; promote n4; promote n5; remove
    # n3), all taken here within less than one lease period, with n3 cut off throughout.
    net = _members_net()
    net.isolate("n3")
    ticks0 = net["n1"].ticks
    _reconfigure(net, {"n1", "n2", "n4", "n5"})
    beat(net)
    assert net["n1"].ticks - ticks0 < LEASE_TICKS
    assert _served_at_once(net, "a")  # n1, n2, n4, n5 all answered within the period
    # Now only n2 keeps answering: 2 of 4 is no quorum, though it was one of n1, n2, n3 (where n3,
    # if it lagged, still is): the lease must end when the period runs out.
    net.isolate("n4")
    net.isolate("n5")
    net.isolate("n3")
    net.cut -= {frozenset(("n1", "n2"))}
    _age_acks_except(net, ["n2"])
    assert not _served_at_once(net, "b")
    # With n4 answering again, n1, n2, n4 are a quorum of the configuration in force.
    net.cut -= {frozenset(("n1", "n4"))}
    _age_acks_except(net, ["n2", "n4"])
    assert _served_at_once(net, "c")


def test_a_leader_removing_itself_serves_no_lease_read_once_the_handover_starts() -> None:
    net = _members_net()
    beat(net)
    assert _served_at_once(net, "a")
    assert net["n1"].reconfigure({"n2", "n3"}) is None
    net.ready("n1")  # the planner starts the transfer (no entry to add for the target's voters)
    assert not _served_at_once(net, "b")


@pytest.mark.parametrize("bug", [None, raft.BUG_LEASE_AFTER_TRANSFER])
def test_timeout_now_ends_the_lease_for_the_rest_of_the_term_even_if_the_transfer_is_given_up(bug) -> None:
    net = leader(replace(LEASE, bugs=frozenset({bug} if bug else ())))
    beat(net)
    n1 = net["n1"]
    assert n1.transfer_leadership("n3")
    net.ready("n1")
    tn = net.take(lambda m: isinstance(m, TimeoutNow))
    assert len(tn) == 1
    net.step(tn[0])  # n3 campaigns with transfer vote requests, which we hold back in the network
    net.ready("n3")
    net.persist("n3")
    held = net.take(lambda m: isinstance(m, RequestVote))
    assert held and all(m.transfer for m in held)
    net.isolate("n3")
    for _ in range(LEASE.election_ticks // LEASE.heartbeat_ticks):  # the transfer is given up ...
        beat(net)
    assert n1.role is Role.LEADER and n1.reconfigure(set(THREE)) is None  # ... n1 leads on (no transfer)
    # ... and its followers acknowledge its beats, yet it must not serve from a lease: n3's vote
    # requests, still on their way, override n2's stickiness, so n3 can win while n1 thinks it leads.
    assert _served_at_once(net) is (bug is not None)  # (the planted bug serves it: the hazard below)
    to_n2 = next(m for m in held if m.dest == "n2")
    net.heal()
    net.step(to_n2)
    net.ready("n2")
    net.persist("n2")
    granted = [m for m in net.take(lambda m: m.dest == "n3") if getattr(m, "granted", False)]
    assert granted, "n2 grants the heir its vote through its stickiness"
