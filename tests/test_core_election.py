"""Elections in the sans-IO core: votes (Figure 2, §5.2, §5.4.1) and terms (§5.1).

Each test is named after the claim of the Raft paper it proves. Single-replica tests feed
hand-written messages to one `Raft`; cluster tests use the deterministic driver in tests/raftnet.py.
"""

from __future__ import annotations

import random

import pytest
from raftnet import PAPER, RaftNet, fmt

from rast_maelstrom.core import (
    AppendEntries,
    AppendResponse,
    Config,
    Heartbeat,
    HeartbeatResponse,
    Raft,
    RequestVote,
    Role,
    VoteResponse,
)

IDS = ["n1", "n2", "n3"]


def replica(node_id: str = "n1", config: Config = PAPER, **state) -> Raft:
    return Raft(node_id, IDS, random.Random(0), config, **state)


def vote_replies(rd) -> tuple[list[VoteResponse], list[VoteResponse]]:
    now = [m for m in rd.messages if isinstance(m, VoteResponse)]
    after = [m for m in rd.messages_after_persist if isinstance(m, VoteResponse)]
    return now, after


def test_golden_transcript_of_a_first_election() -> None:
    net = RaftNet()
    net.trace = []
    net.elect("n2")
    assert net.trace == [
        "n2->n1 t1 Vote last=0/0",
        "n2->n3 t1 Vote last=0/0",
        "n1->n2 t1 VoteResp granted",
        "n3->n2 t1 VoteResp granted",
        "n2->n1 t1 App prev=0/0 [1:None] commit=0",
        "n2->n3 t1 App prev=0/0 [1:None] commit=0",
        "n1->n2 t1 AppResp ok match=1",
        "n3->n2 t1 AppResp ok match=1",
    ]
    assert [net[i].commit_index for i in IDS] == [0, 1, 0]  # followers learn it on the next beat
    net.tick("n2", PAPER.heartbeat_ticks)
    net.stabilize()
    assert [net[i].commit_index for i in IDS] == [1, 1, 1]
    assert all(net[i].leader_id == "n2" for i in IDS)


def test_a_node_grants_at_most_one_vote_per_term() -> None:
    r = replica()
    r.step(RequestVote("n2", "n1", 1, 0, 0))
    _, after = vote_replies(r.ready())
    assert [(m.dest, m.granted) for m in after] == [("n2", True)]
    r.step(RequestVote("n3", "n1", 1, 0, 0))
    _, after = vote_replies(r.ready())
    assert [(m.dest, m.granted) for m in after] == [("n3", False)]
    r.step(RequestVote("n2", "n1", 1, 0, 0))  # the same candidate asking again gets the same answer
    _, after = vote_replies(r.ready())
    assert [(m.dest, m.granted) for m in after] == [("n2", True)]
    assert (r.current_term, r.voted_for) == (1, "n2")
    r.step(RequestVote("n3", "n1", 2, 0, 0))  # a new term: a new vote
    _, after = vote_replies(r.ready())
    assert [(m.dest, m.term, m.granted) for m in after] == [("n3", 2, True)]


def test_a_vote_leaves_only_after_the_hard_state_is_handed_to_storage() -> None:
    r = replica()
    r.step(RequestVote("n2", "n1", 1, 0, 0))
    rd = r.ready()
    now, after = vote_replies(rd)
    assert now == [] and len(after) == 1 and after[0].granted
    assert rd.hard_state == (1, "n2")  # the vote is in the same batch as the message that needs it
    # Through the driver: the candidate hears nothing until the voter's disk has the vote.
    net = RaftNet()
    net.campaign("n1")
    net.ready("n1")
    net.persist("n1")
    net.deliver()  # the vote requests
    for i in ("n2", "n3"):
        net.ready(i)
    assert not any(isinstance(m, VoteResponse) for m in net.inbox)
    net.persist("n2")
    assert [fmt(m) for m in net.inbox] == ["n2->n1 t1 VoteResp granted"]
    assert net.disks["n2"].voted_for == "n1"


def test_a_vote_not_yet_durable_is_never_sent_and_a_crash_forgets_it() -> None:
    net = RaftNet()
    net.campaign("n1")
    net.ready("n1")
    net.persist("n1")
    net.deliver()
    net.ready("n2")
    net.restart("n2")  # crash before the vote reached the disk
    assert not any(isinstance(m, VoteResponse) for m in net.inbox)
    assert (net["n2"].current_term, net["n2"].voted_for) == (0, None)


def test_candidates_send_request_vote_only_after_persisting_their_own_vote() -> None:
    r = replica()
    for _ in range(2 * PAPER.election_ticks):
        r.tick()
    assert r.role is Role.CANDIDATE
    rd = r.ready()
    assert rd.hard_state == (1, "n1")
    assert not any(isinstance(m, RequestVote) for m in rd.messages)
    assert sorted(m.dest for m in rd.messages_after_persist if isinstance(m, RequestVote)) == ["n2", "n3"]


@pytest.mark.parametrize(
    ("last_index", "last_term", "granted"),
    [
        (5, 1, False),  # older last term, longer log: refused
        (1, 2, False),  # same last term, shorter log: refused
        (2, 2, True),  # same last term, same length
        (3, 2, True),  # same last term, longer
        (1, 3, True),  # newer last term, shorter log
    ],
)
@pytest.mark.parametrize("pre_vote", [False, True])
def test_log_up_to_dateness_decides_the_vote(
    last_index: int, last_term: int, granted: bool, pre_vote: bool
) -> None:
    """§5.4.1: a voter refuses a candidate whose log is less up to date than its own (last 2/2)."""
    voter = replica(current_term=2, entries=[(1, "a"), (2, "b")])
    voter.step(RequestVote("n2", "n1", 3, last_index, last_term, pre_vote))
    rd = voter.ready()
    replies = [m for m in rd.messages + rd.messages_after_persist if isinstance(m, VoteResponse)]
    assert [m.granted for m in replies] == [granted]
    assert voter.current_term == (2 if pre_vote else 3)  # a pre-vote changes nothing
    assert voter.voted_for == ("n2" if granted and not pre_vote else None)


def test_a_candidate_with_a_stale_log_cannot_win() -> None:
    net = RaftNet()
    net.elect("n1")
    net.propose("n1", "x")
    net.stabilize()
    net.isolate("n1")
    net.load("n3", net["n3"].current_term, None, [(1, None)])  # n3 lost the entry: stale
    net.campaign("n3")
    net.stabilize()
    assert net["n3"].role is not Role.LEADER
    assert net.leaders_by_term.get(net["n3"].current_term, set()) == set()
    net.elect("n2")  # n2 has the entry and wins
    assert "x" in net.datas("n3")


@pytest.mark.parametrize(
    "msg",
    [
        AppendEntries("n2", "n1", 5, 0, 0, [], 0),
        Heartbeat("n2", "n1", 5, 0, 0),
        RequestVote("n2", "n1", 5, 0, 0),
        AppendResponse("n2", "n1", 5, False, reject_index=1, conflict_index=1),
        HeartbeatResponse("n2", "n1", 5, 0),
        VoteResponse("n2", "n1", 5, False),
    ],
    ids=lambda m: type(m).__name__,
)
def test_a_leader_seeing_a_higher_term_becomes_follower(msg) -> None:
    net = RaftNet()
    net.elect("n1")
    assert net["n1"].current_term == 1
    net["n1"].step(msg)
    assert net["n1"].role is Role.FOLLOWER
    assert net["n1"].current_term == 5
    assert net["n1"].voted_for is None


def test_stale_term_messages_are_rejected_and_the_stale_leader_learns_the_term() -> None:
    net = RaftNet()
    net.elect("n1")
    net.isolate("n1")
    net.elect("n2")  # term 2
    net.heal()
    before = {i: net.log_of(i) for i in ("n2", "n3")}
    net.propose("n1", "stale")  # n1 still believes it leads term 1
    net.trace = []
    net.stabilize()
    assert net.trace[:2] == [
        "n1->n2 t1 App prev=1/1 [1:stale] commit=1",
        "n1->n3 t1 App prev=1/1 [1:stale] commit=1",
    ]
    assert net.trace[2:4] == ["n2->n1 t2 BeatResp seq=0", "n3->n1 t2 BeatResp seq=0"]
    assert net["n1"].role is Role.FOLLOWER and net["n1"].current_term == 2
    assert {i: net.log_of(i)[: len(before[i])] for i in before} == before  # nothing stale was appended
    # A stale vote request gets no vote.
    r = net["n3"]
    r.step(RequestVote("n1", "n3", 1, 9, 1))
    rd = net.ready("n3")
    assert not any(isinstance(m, VoteResponse) and m.granted for m in rd.messages + rd.messages_after_persist)


def test_restart_from_recovered_state_keeps_term_vote_and_log_and_does_not_vote_twice() -> None:
    net = RaftNet()
    net.campaign("n2")
    net.ready("n2")
    net.persist("n2")
    net.deliver()
    net.ready("n1")
    net.persist("n1")  # n1's vote for n2 in term 1 is durable
    assert net.disks["n1"].voted_for == "n2"
    r = net.restart("n1")
    assert (r.current_term, r.voted_for) == (1, "n2")
    r.step(RequestVote("n3", "n1", 1, 0, 0))
    rd = r.ready()
    assert rd.hard_state is None  # nothing new to persist: the recovered state is durable
    assert [m.granted for m in rd.messages_after_persist] == [False]
    # A full restart with a log: the log, term and vote all come back, and it is all stable.
    r2 = Raft("n1", IDS, random.Random(1), PAPER, current_term=4, voted_for="n3",
              entries=[(1, "a"), (4, "b")])
    assert (r2.log.last_index(), r2.log.last_term(), r2.current_term, r2.voted_for) == (2, 4, 4, "n3")
    rd2 = r2.ready()
    assert rd2.hard_state is None and rd2.entries == [] and rd2.committed == []
    r2.step(RequestVote("n2", "n1", 4, 2, 4))
    assert [m.granted for m in r2.ready().messages_after_persist] == [False]
