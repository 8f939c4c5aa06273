"""Commitment in the sans-IO core: the §5.4.2 rule (the paper's Figure 8), and the leader's own
durability (thesis §10.2.1: the leader counts itself toward a commit only up to its persisted index).
"""

from __future__ import annotations

import dataclasses
import random

from raftnet import PAPER, RaftNet

from rast_maelstrom.core import AppendEntries, Config, Raft, Role

FIVE = ["n1", "n2", "n3", "n4", "n5"]
FIG8 = dataclasses.replace(PAPER, append_entries_max=1)  # one entry per message: full control


def pump(net: RaftNet, ids: list[str], allow) -> None:
    """Ready+persist `ids` and deliver only messages among them that `allow` accepts, until quiet."""
    for _ in range(100):
        for i in ids:
            net.ready(i)
            net.persist(i)
        if not net.deliver(lambda m: m.src in ids and m.dest in ids and allow(m)):
            return
    raise AssertionError("no quiet")


def win(net: RaftNet, node: str, ids: list[str], allow=lambda m: True) -> None:
    """Campaign until `node` leads a new term (a rejection with a higher term means: campaign again;
    a stale leader first learns the current term from its followers' answers to its heartbeats)."""
    r = net[node]
    term = r.current_term
    for _ in range(5):
        if r.role is Role.LEADER:
            if r.current_term > term:
                return
            net.tick(node, r.config.heartbeat_ticks)
        else:
            net.campaign(node)
        pump(net, ids, allow)
    raise AssertionError(f"{node} cannot win")


def carries_term(term: int):
    return lambda m: isinstance(m, AppendEntries) and any(t == term for t, _ in m.entries)


def figure8(config: Config) -> RaftNet:
    """Up to Figure 8 (c): n1 leads term 3 and knows its term-1 entry X is on a majority (n1, n3, n4),
    while its own term-3 entry has reached nobody."""
    net = RaftNet(FIVE, config=config)
    net.elect("n1")  # term 1, no-op at index 1 everywhere
    net.propose("n1", "X")  # index 2, term 1
    pump(net, FIVE, lambda m: not isinstance(m, AppendEntries) or m.dest == "n2")
    net.take()
    assert net.datas("n2") == ["X"] and net.datas("n3") == []
    # (b) n5 wins term 2 with n3's and n4's votes and appends its no-op locally, then is cut off.
    net.isolate("n1")
    win(net, "n5", FIVE, lambda m: not isinstance(m, AppendEntries))
    assert net["n5"].current_term == 2
    net.take()
    net.isolate("n5")
    # (c) n1 returns and wins term 3; X reaches n3 and n4; nothing of term 3 is accepted anywhere.
    net.partition(["n1", "n2", "n3", "n4"], ["n5"])
    win(net, "n1", ["n1", "n2", "n3", "n4"], lambda m: not isinstance(m, AppendEntries))
    assert net["n1"].current_term == 3

    def rejected_or_old(m) -> bool:  # lets through only the term-3 probes that will be refused anyway
        return not carries_term(3)(m) or net[m.dest].log.term_at(m.prev_index) != m.prev_term

    pump(net, ["n1", "n2", "n3", "n4"], rejected_or_old)
    return net


def test_figure8_an_old_term_entry_on_a_majority_is_not_committed_by_counting() -> None:
    net = figure8(FIG8)
    assert [net[i].log.term_at(2) for i in FIVE] == [1, 1, 1, 1, 2]
    assert [net[i].log.last_term() for i in FIVE] == [3, 1, 1, 1, 2]
    n1 = net["n1"]
    assert n1.progress["n3"].match == 2 and n1.progress["n4"].match == 2  # n1 knows a majority holds X ...
    assert n1.commit_index == 1  # ... yet it is not committed
    # (d) why: n5 can still win (its last term 2 beats their 1) and overwrite X everywhere.
    net.take()
    net.partition(["n1"], ["n2", "n3", "n4", "n5"])
    win(net, "n5", ["n2", "n3", "n4", "n5"])
    net.tick("n5", PAPER.heartbeat_ticks)
    net.stabilize(["n2", "n3", "n4", "n5"])
    for i in ["n2", "n3", "n4", "n5"]:
        assert net[i].log.term_at(2) == 2 and "X" not in net.datas(i), i
        assert net[i].commit_index >= 2
    assert all("X" not in [d for _, _, d in net.applied[i]] for i in FIVE)


def test_figure8_the_old_entry_commits_once_a_current_term_entry_is_on_a_majority() -> None:
    net = figure8(FIG8)
    assert net["n1"].commit_index == 1
    pump(net, ["n1", "n2", "n3", "n4"], lambda m: True)  # n1's term-3 no-op reaches the others
    assert net["n1"].commit_index == 3
    assert [d for _, _, d in net.applied["n1"]] == [None, "X", None]


def test_figure8_with_planted_commit_by_counting_bug_commits_too_early() -> None:
    """Mutation check of the two tests above: counting old-term replicas commits X in (c)."""
    net = figure8(dataclasses.replace(FIG8, bugs=frozenset({"commit-old-term"})))
    assert net["n1"].commit_index == 2


def test_a_slow_leader_disk_does_not_hold_back_a_commit_by_two_followers() -> None:
    net = RaftNet(config=PAPER)
    net.elect("n1")
    net.propose("n1", "x")
    net.ready("n1")  # handed to n1's storage, which is slow: no persist for n1
    n1 = net["n1"]
    net.deliver(lambda m: m.dest == "n2")
    net.ready("n2")
    net.persist("n2")
    net.deliver(lambda m: m.dest == "n1")
    assert n1.commit_index == 1  # n2's ack alone: 1 of 3 durable copies of x (n1's is not)
    net.deliver(lambda m: m.dest == "n3")
    net.ready("n3")
    net.persist("n3")
    net.deliver(lambda m: m.dest == "n1")
    assert n1.commit_index == 2  # n2 and n3: a majority, the leader's disk still not done
    assert net.disks["n1"].log == [(1, None)]
    rd = net.ready("n1")
    assert [d for _, _, d in rd.committed] == ["x"]


def test_the_leader_counts_itself_only_up_to_its_persisted_index() -> None:
    net = RaftNet(config=PAPER)
    net.elect("n1")
    net.propose("n1", "x")
    net.ready("n1")
    net.deliver(lambda m: m.dest == "n2")
    net.ready("n2")
    net.persist("n2")
    net.deliver(lambda m: m.dest == "n1")
    n1 = net["n1"]
    assert n1.commit_index == 1
    net.persist("n1")  # now n1 + n2 are a durable majority
    assert n1.commit_index == 2


def test_a_one_node_cluster_commits_only_after_persisted() -> None:
    r = Raft("n1", ["n1"], random.Random(0), PAPER)
    r.tick()
    assert r.role is Role.LEADER
    rd = r.ready()
    assert rd.entries == [(1, None)] and rd.committed == []
    index, term = r.propose("x")
    rd = r.ready()
    assert rd.entries == [(1, "x")] and rd.committed == [] and r.commit_index == 0
    r.persisted(1, 1)  # the no-op is durable, x is not yet
    assert [d for _, _, d in r.ready().committed] == [None]
    r.persisted(index, term)
    assert [(i, d) for i, _, d in r.ready().committed] == [(2, "x")]


def test_persisted_for_an_entry_since_replaced_is_ignored() -> None:
    """A storage report for a batch whose entries a new leader overwrote must not count them durable."""
    r = Raft("n1", ["n1", "n2", "n3"], random.Random(0), PAPER)
    r.step(AppendEntries("n2", "n1", 1, 0, 0, [(1, "a"), (1, "b")], 0))
    r.ready()
    r.step(AppendEntries("n3", "n1", 2, 1, 1, [(2, "c")], 0))  # replaces index 2 before it was durable
    r.ready()
    r.persisted(2, 1)  # the old batch's report: (2, 1) is no longer in the log
    assert r.persisted_index < 2
    r.persisted(2, 2)
    assert r.persisted_index == 2


def test_in_a_cluster_of_four_half_the_nodes_do_not_commit() -> None:
    """Four nodes: a quorum is three. The leader and one follower hold an entry durably; that is two
    of four, and it must wait for a third (a cut-off pair could otherwise commit on each side)."""
    four = ["n1", "n2", "n3", "n4"]
    net = RaftNet(four)
    net.elect("n1")
    before = net["n1"].commit_index
    net.partition(["n1", "n2"], ["n3", "n4"])
    net.propose("n1", "x")
    net.stabilize()
    assert net["n2"].log.last_index() == net["n1"].log.last_index() > before  # replicated to n2
    assert net["n1"].commit_index == before and net.applied["n1"][-1][0] == before
    net.partition(["n1", "n2", "n3"], ["n4"])
    for _ in range(10):  # a few beats: the leader notices n3 is behind and resends
        net.tick("n1", PAPER.heartbeat_ticks)
        net.stabilize()
    assert net["n1"].commit_index == net["n1"].log.last_index()
    assert net.applied["n1"][-1][2] == "x"
