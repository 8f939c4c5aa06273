"""Figure 2's safety properties, checked over many seeded randomized runs of the sans-IO core.

Each run drives a small cluster through random ticks, proposals, partial persists, crashes and
restarts, while the network drops, duplicates and reorders messages (tests/raftnet.py). After every
action the run checks election safety, leader append-only, log matching, leader completeness and
state machine safety; then it heals and must make progress. A failing seed reproduces exactly.
"""

from __future__ import annotations

import random

import pytest
from raftnet import PAPER, RaftNet

from rast_maelstrom.core import Config, VoteResponse

DEFAULT = Config(election_ticks=10, heartbeat_ticks=2, inflight_max=4, append_entries_max=3)
PAPER_SMALL = Config(election_ticks=10, heartbeat_ticks=2, inflight_max=4, append_entries_max=3,
                     pre_vote=False, check_quorum=False)
actions_max = 3000  # random actions per run
heal_rounds_max = 300  # tick + stabilize rounds the healed cluster gets to converge


class Invariants:
    """Watches a RaftNet and asserts the Raft paper's safety properties after every action."""

    def __init__(self, net: RaftNet) -> None:
        self.net = net
        self.committed: dict[int, tuple[int, object]] = {}  # index -> (term, data), applied anywhere
        self.commit_term_max: dict[int, int] = {}  # index -> upper bound on the term it committed in
        self.leader_logs: dict[tuple[str, int], list] = {}  # (leader, term) -> its log when last seen
        self.votes: dict[tuple[str, int], set[str]] = {}  # (voter, term) -> candidates granted
        self.applied_seen = {i: 0 for i in net.ids}
        net.sent = []

    def check(self) -> None:
        net = self.net
        # Election safety: at most one leader per term.
        for term, leaders in net.leaders_by_term.items():
            assert len(leaders) <= 1, f"term {term} has leaders {leaders}"
        # One vote per term per voter (counting every granted vote that ever left a node).
        for m in net.sent:
            if isinstance(m, VoteResponse) and m.granted and not m.pre_vote:
                self.votes.setdefault((m.src, m.term), set()).add(m.dest)
                assert len(self.votes[(m.src, m.term)]) == 1, (m.src, m.term, self.votes[(m.src, m.term)])
        net.sent.clear()
        # State machine safety: no two nodes apply different entries at one index.
        for i in net.ids:
            applied = net.applied[i]
            if len(applied) < self.applied_seen[i]:
                self.applied_seen[i] = 0  # restarted: it re-applies from the start
            for index, term, data in applied[self.applied_seen.get(i, 0):]:
                prev = self.committed.setdefault(index, (term, data))
                assert prev == (term, data), f"{i} applied {(term, data)} at {index}, another applied {prev}"
                bound = self.commit_term_max.get(index, net[i].current_term)
                self.commit_term_max[index] = min(bound, net[i].current_term)
            self.applied_seen[i] = len(applied)
        logs = {i: net.log_of(i) for i in net.ids}
        # Leader append-only: while a node leads a term, its log only grows.
        for i in net.leaders():
            key = (i, net[i].current_term)
            before = self.leader_logs.get(key)
            if before is not None:
                assert logs[i][: len(before)] == before, f"leader {key} rewrote its log"
            self.leader_logs[key] = logs[i]
        # Log matching: an index with the same term in two logs means identical prefixes.
        ids = net.ids
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                la, lb = logs[ids[a]], logs[ids[b]]
                same = [k for k in range(min(len(la), len(lb))) if la[k][0] == lb[k][0]]
                if same:
                    k = same[-1]
                    assert la[: k + 1] == lb[: k + 1], f"{ids[a]} and {ids[b]} agree on term at {k + 1} only"
        # Leader completeness: an entry committed in term T is in the log of every leader of a term >= T.
        for i in net.leaders():
            term = net[i].current_term
            for index, entry in self.committed.items():
                if self.commit_term_max[index] <= term:
                    assert index <= len(logs[i]) and logs[i][index - 1] == entry, (
                        f"leader {i} of term {term} lacks committed entry {index}={entry}"
                    )


def chaos(seed: int, config: Config, n: int = 3, actions: int = actions_max) -> tuple[RaftNet, Invariants]:
    """Random faults, then heal; returns the net after the healed cluster converged."""
    rng = random.Random(seed)
    net = RaftNet([f"n{k}" for k in range(1, n + 1)], seed=seed, config=config, auto_persist=False)
    inv = Invariants(net)
    proposals = 0
    for _ in range(actions):
        r = rng.random()
        ids = net.ids
        if r < 0.30:
            net.tick(rng.choice(ids))
        elif r < 0.55 and net.inbox:
            k = rng.randrange(len(net.inbox))  # any order: reordering
            m = net.inbox[k] if rng.random() < 0.1 else net.inbox.pop(k)  # sometimes a duplicate
            net.step(m)
        elif r < 0.62 and net.inbox:
            net.inbox.pop(rng.randrange(len(net.inbox)))  # a drop
        elif r < 0.80:
            net.ready(rng.choice(ids))
        elif r < 0.92:
            net.persist(rng.choice(ids), rng.randrange(1, 3))
        elif r < 0.97:
            for i in net.leaders():
                proposals += 1
                net[i].propose(f"v{proposals}")
        elif r < 0.985:
            net.restart(rng.choice(ids))
        else:
            a, b = rng.sample(ids, 2)
            if rng.random() < 0.5:
                net.cut.add(frozenset((a, b)))
            else:
                net.heal()
        inv.check()
    # Healed phase: everything delivered and persisted; the cluster must elect and commit.
    net.heal()
    net.auto_persist = True
    for _ in range(heal_rounds_max):
        net.tick_all()
        net.stabilize()
        inv.check()
        leaders = net.leaders()
        if len(leaders) == 1:
            lead = net[leaders[0]]
            if lead.log.term_at(lead.commit_index) == lead.current_term and all(
                net[i].log.last_index() == lead.log.last_index() and net[i].commit_index == lead.commit_index
                for i in net.ids
            ):
                break
    else:
        raise AssertionError(f"seed {seed}: no convergence after healing")
    return net, inv


@pytest.mark.parametrize("config", [PAPER_SMALL, DEFAULT], ids=["paper", "prevote+checkquorum"])
def test_election_safety_log_matching_and_state_machine_safety_over_random_runs(config: Config) -> None:
    terms_with_leaders = 0
    entries_committed = 0
    for seed in range(16):
        net, inv = chaos(seed, config)
        terms_with_leaders += len(net.leaders_by_term)
        entries_committed += len(inv.committed)
    # The runs must have exercised what they claim to check.
    assert terms_with_leaders >= 60, terms_with_leaders
    assert entries_committed >= 300, entries_committed


def test_five_nodes_random_runs_keep_leader_completeness() -> None:
    for seed in range(100, 106):
        net, inv = chaos(seed, DEFAULT, n=5)
        assert len(inv.committed) > 0


def test_election_safety_over_many_seeded_elections_with_random_drops() -> None:
    """Elections only: every node ticks, a third of the messages are lost, leaders crash, votes race."""
    elections = 0
    for seed in range(40):
        rng = random.Random(seed)
        net = RaftNet(["n1", "n2", "n3", "n4", "n5"], seed=seed, config=PAPER)
        inv = Invariants(net)
        for step in range(400):
            if step % 50 == 49:
                for i in net.leaders():
                    net.restart(i)  # a crashed leader forces a new election
            net.tick(rng.choice(net.ids))
            for i in net.ids:
                net.ready(i)
                net.persist(i)
            for m in net.take():
                if rng.random() >= 0.33:
                    net.step(m)
            inv.check()
        elections += len(net.leaders_by_term)
    assert elections >= 120, elections


def test_invariants_catch_a_voter_that_ignores_the_log() -> None:
    """The checker is not vacuous: with votes that ignore §5.4.1, some seed breaks a safety property."""
    bad = Config(election_ticks=10, heartbeat_ticks=2, inflight_max=4, append_entries_max=3,
                 pre_vote=False, check_quorum=False, bugs=frozenset({"vote-ignores-log"}))
    failures = 0
    for seed in range(12):
        try:
            chaos(seed, bad)
        except AssertionError:
            failures += 1
    assert failures > 0

