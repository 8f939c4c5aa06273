"""The Ready contract's persistence rules in the sans-IO core.

What must be durable before a message may leave: a voter's vote (tests in test_core_election.py), a
candidate's own vote, and a follower's log before its acknowledgement; a term change before any answer
carrying it. What may leave at once: the leader's AppendEntries, whose disk write runs in parallel.
A crash loses exactly what was not persisted, and nothing acknowledged or committed is lost with it.
"""

from __future__ import annotations

import dataclasses
import random

from raftnet import PAPER, RaftNet, fmt

from rast_maelstrom.core import AppendEntries, AppendResponse, Heartbeat, HeartbeatResponse, Raft

IDS = ["n1", "n2", "n3"]


def test_a_follower_acknowledges_entries_only_after_persisting_them() -> None:
    r = Raft("n2", IDS, random.Random(0), PAPER)
    r.step(AppendEntries("n1", "n2", 1, 0, 0, [(1, "a")], 0))
    rd = r.ready()
    assert rd.hard_state == (1, None) and rd.entries == [(1, "a")]
    assert not any(isinstance(m, AppendResponse) for m in rd.messages)
    assert [(m.success, m.match_index) for m in rd.messages_after_persist] == [(True, 1)]


def test_with_planted_ack_before_persist_bug_the_ack_leaves_early() -> None:
    """Mutation check of the test above."""
    bad = dataclasses.replace(PAPER, bugs=frozenset({"ack-before-persist"}))
    r = Raft("n2", IDS, random.Random(0), bad)
    r.step(AppendEntries("n1", "n2", 1, 0, 0, [(1, "a")], 0))
    assert any(isinstance(m, AppendResponse) for m in r.ready().messages)


def test_the_leader_sends_appends_before_its_own_write_is_durable() -> None:
    net = RaftNet()
    net.elect("n1")
    net.propose("n1", "x")
    rd = net.ready("n1")
    assert rd.entries == [(1, "x")]
    assert sorted(fmt(m) for m in rd.messages) == [
        "n1->n2 t1 App prev=1/1 [1:x] commit=1",
        "n1->n3 t1 App prev=1/1 [1:x] commit=1",
    ]
    assert rd.messages_after_persist == []


def test_an_answer_carrying_a_new_term_waits_for_that_term_to_be_durable() -> None:
    r = Raft("n2", IDS, random.Random(0), PAPER)
    r.step(Heartbeat("n1", "n2", 3, 0, 0))
    rd = r.ready()
    assert rd.hard_state == (3, None)
    assert rd.messages == [] and [type(m) for m in rd.messages_after_persist] == [HeartbeatResponse]
    r.step(Heartbeat("n1", "n2", 3, 0, 0))  # the term is handed to storage now: answers go at once
    rd = r.ready()
    assert rd.hard_state is None and [type(m) for m in rd.messages] == [HeartbeatResponse]


def test_a_follower_crash_before_persisting_loses_its_ack_and_the_leader_does_not_count_it() -> None:
    net = RaftNet()
    net.elect("n1")
    net.propose("n1", "x")
    net.ready("n1")
    net.persist("n1")
    net.deliver()
    for i in ("n2", "n3"):
        net.ready(i)
        net.restart(i)  # crash: "x" never reached the disk, and no ack was sent
    assert not any(isinstance(m, AppendResponse) for m in net.inbox)
    assert net["n1"].commit_index == 1
    assert all(net.datas(i) == [] for i in ("n2", "n3"))
    # The leader re-sends after its heartbeats find the followers behind; x then commits.
    for _ in range(6):
        net.tick("n1", PAPER.heartbeat_ticks)
        net.stabilize()
    assert net["n1"].commit_index == 2 and all(net.datas(i) == ["x"] for i in IDS)


def test_an_entry_committed_before_the_leaders_own_write_survives_the_leaders_crash() -> None:
    net = RaftNet()
    net.elect("n1")
    net.propose("n1", "x")
    net.ready("n1")  # n1's disk is slow
    net.deliver()
    for i in ("n2", "n3"):
        net.ready(i)
        net.persist(i)
    net.deliver()
    assert net["n1"].commit_index == 2
    net.ready("n1")
    assert [d for _, _, d in net.applied["n1"]] == [None, "x"]  # the client was told: x is committed
    net.restart("n1")  # crash before the leader's own write finished
    assert net.disks["n1"].log == [(1, None)]
    net.elect("n2")
    net.tick("n2", PAPER.heartbeat_ticks)
    net.stabilize()
    assert all(net.datas(i) == ["x"] for i in IDS)
    assert [d for _, _, d in net.applied["n1"]] == [None, "x", None]


def test_storage_is_told_exactly_what_to_write() -> None:
    """Ready.hard_state only when it changed; entries_start says where the batch replaces storage."""
    net = RaftNet()
    net.elect("n1")
    rd = net.ready("n1")
    assert rd.hard_state is None and rd.entries == []  # nothing new
    net.propose("n1", "a")
    net.propose("n1", "b")
    rd = net.ready("n1")
    assert rd.hard_state is None and (rd.entries_start, rd.entries) == (2, [(1, "a"), (1, "b")])
    net.stabilize()
    assert all(net.disks[i].log == [(1, None), (1, "a"), (1, "b")] for i in IDS)
    assert all((net.disks[i].current_term, net.disks[i].voted_for) == (1, "n1") for i in IDS)
