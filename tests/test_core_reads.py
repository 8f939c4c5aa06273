"""ReadIndex in the sans-IO core (thesis §6.4): linearizable reads without log writes.

A read is served at the commit index the leader had when a round of heartbeats began, once a quorum
answered that round; a leader that has not yet committed an entry of its own term waits; a leader
that loses office hands every pending read back in `dropped_reads` so the caller can fail them.
"""

from __future__ import annotations

import random

from raftnet import PAPER, RaftNet, fmt

from rast_maelstrom.core import AppendEntries, Config, Heartbeat, HeartbeatResponse, Raft, RequestVote, Role

FIVE = ["n1", "n2", "n3", "n4", "n5"]


def leader5() -> RaftNet:
    net = RaftNet(FIVE)
    net.elect("n1")
    net.propose("n1", "x")
    net.stabilize()
    assert net["n1"].commit_index == 2
    return net


def test_a_read_is_confirmed_only_by_a_quorum_of_answers_to_a_round_started_after_it() -> None:
    net = leader5()
    n1 = net["n1"]
    net.tick("n1", PAPER.heartbeat_ticks)
    net.ready("n1")
    old_beats = net.take()  # a timed heartbeat round, sent before the read arrives
    assert {fmt(m).split(" ", 2)[2] for m in old_beats} == {"Beat commit=2 seq=0"}
    assert n1.read_index("r1")
    net.ready("n1")
    new_beats = net.take()
    assert [fmt(m) for m in new_beats] == [f"n1->{i} t1 Beat commit=2 seq=1" for i in FIVE[1:]]
    for m in old_beats:  # every follower answers the old round: that says nothing about after the read
        net.step(m)
    net.ready_all()
    net.deliver()
    net.ready("n1")  # (a confirmed read would come out here)
    assert net.reads["n1"] == []
    net.step(new_beats[0])
    net.ready("n2")
    net.deliver()
    net.ready("n1")
    assert net.reads["n1"] == []  # the leader and one follower: 2 of 5
    net.step(new_beats[1])
    net.ready("n3")
    net.deliver()
    net.ready("n1")
    assert net.reads["n1"] == [("r1", 2)]  # 3 of 5, at the commit index when the round began
    for m in new_beats[2:]:  # late answers confirm nothing twice
        net.step(m)
    net.stabilize()
    assert net.reads["n1"] == [("r1", 2)]


def test_no_read_round_before_the_leader_commits_an_entry_of_its_term() -> None:
    net = RaftNet(FIVE)
    net.elect("n1")
    net.propose("n1", "x")
    net.stabilize()
    net.isolate("n1")
    net.campaign("n2")
    for _ in range(2):  # vote requests, then votes; no appends yet
        for i in FIVE:
            net.ready(i)
            net.persist(i)
        net.deliver(lambda m: not isinstance(m, AppendEntries))
    net.ready("n2")
    net.take()
    net.heal()
    # n2 leads term 2 but its no-op is not committed: its commit index may be behind the last write.
    n2 = net["n2"]
    assert n2.role is Role.LEADER and n2.log.term_at(n2.commit_index) != n2.current_term
    assert n2.read_index("r")
    net.ready("n2")
    to_followers = net.take()
    assert not any(isinstance(m, Heartbeat) and m.read_seq > 0 for m in to_followers)
    net.tick("n2", PAPER.heartbeat_ticks)  # heartbeats and their answers do not confirm it either
    for _ in range(3):
        net.ready_all()
        net.persist_all()
        net.take(lambda m: isinstance(m, AppendEntries))
        net.deliver()
    assert net.reads["n2"] == [] and net.dropped_reads["n2"] == []
    net.tick("n2", PAPER.heartbeat_ticks)  # the answers to this beat re-arm the lost probes
    net.stabilize()  # now the no-op appends get through: the term's entry commits and the round runs
    assert n2.log.term_at(n2.commit_index) == n2.current_term
    assert net.reads["n2"] == [("r", n2.commit_index)]


def test_a_deposed_leader_returns_its_pending_reads_in_dropped_reads() -> None:
    net = leader5()
    n1 = net["n1"]
    n1.read_index("in-round")
    net.ready("n1")
    net.take()  # its heartbeats are lost
    n1.read_index("queued")  # waits for the next round
    n1.step(RequestVote("n3", "n1", 2, 9, 2))  # a higher term deposes it
    rd = net.ready("n1")
    assert n1.role is Role.FOLLOWER
    assert sorted(rd.dropped_reads) == ["in-round", "queued"]
    assert net.reads["n1"] == []
    assert not n1.read_index("after")  # a follower refuses reads


def test_a_leader_stepping_down_by_check_quorum_drops_its_pending_reads() -> None:
    net = RaftNet(config=Config(election_ticks=10, heartbeat_ticks=2))
    net.elect("n1")
    net.isolate("n1")
    net["n1"].read_index("r")
    for _ in range(3 * 10):
        net.tick("n1")
        net.stabilize(["n1"])
        if net["n1"].role is not Role.LEADER:
            break
    assert net.dropped_reads["n1"] == ["r"] and net.reads["n1"] == []


def test_one_round_serves_every_read_pending_when_it_started() -> None:
    net = leader5()
    n1 = net["n1"]
    for ctx in ("a", "b", "c"):
        n1.read_index(ctx)
    net.ready("n1")
    beats = net.take()
    assert len(beats) == 4 and {m.read_seq for m in beats} == {1}  # one round for the three reads
    n1.read_index("d")  # arrives after the round began: not served by it
    net.inbox.extend(beats)
    net.stabilize()
    assert net.reads["n1"][:3] == [("a", 2), ("b", 2), ("c", 2)]
    assert net.reads["n1"][3:] == [("d", 2)]  # by a second round (seq 2)
    assert n1.read_seq == 2


def test_a_heartbeat_answer_from_an_older_round_cannot_confirm_a_newer_read() -> None:
    net = leader5()
    n1 = net["n1"]
    n1.read_index("a")
    net.ready("n1")
    net.take()
    n1.read_index("b")
    net.ready("n1")  # round 1 is not confirmed yet: b waits
    for src in ("n2", "n3"):  # answers to round 1 only
        n1.step(HeartbeatResponse(src, "n1", 1, 1))
    rd = net.ready("n1")
    assert [c for c, _ in rd.read_states] == ["a"]
    assert n1.read_seq == 2  # round 2 started for b in the same ready
    for src in ("n2", "n3"):
        n1.step(HeartbeatResponse(src, "n1", 1, 2))
    assert [c for c, _ in net.ready("n1").read_states] == ["b"]


def test_a_one_node_cluster_serves_reads_without_messages() -> None:
    r = Raft("n1", ["n1"], random.Random(0), PAPER)
    r.tick()
    rd = r.ready()
    assert r.read_index("early")
    assert r.ready().read_states == []  # the no-op of its term is not committed yet
    r.persisted(rd.entries_start + len(rd.entries) - 1, r.current_term)
    rd = r.ready()
    assert rd.read_states == [("early", 1)] and rd.messages == []
