"""Log replication in the sans-IO core: log matching (§5.3), follower truncation, leader append-only,
reordered and duplicated AppendEntries, fast backtracking, pipelining and recovery from lost messages.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from raftnet import PAPER, RaftNet, fmt

from rast_maelstrom.core import AppendEntries, AppendResponse, Config, ProtocolError, Raft

IDS = ["n1", "n2", "n3"]


def follower(entries=None, term: int = 0, config: Config = PAPER) -> Raft:
    return Raft("n1", IDS, random.Random(0), config, current_term=term, entries=entries)


def terms(r: Raft) -> list[int]:
    return [t for t, _ in r.log.entries(1, r.log.last_index())]


def acks(rd) -> list[AppendResponse]:
    return [m for m in rd.messages_after_persist if isinstance(m, AppendResponse)]


def leader_histories(rng: random.Random, terms_max: int = 6) -> dict[int, list[tuple[int, str]]]:
    """One log per term, as that term's leader would hold it: a prefix of an earlier leader's log
    followed by new entries of its own term (how Raft logs come to be)."""
    logs: dict[int, list[tuple[int, str]]] = {}
    for t in range(1, terms_max + 1):
        base = logs[rng.choice(list(logs))] if logs and rng.random() < 0.9 else []
        keep = rng.randrange(len(base) + 1)
        logs[t] = base[:keep] + [(t, f"{t}.{k}") for k in range(rng.randrange(1, 5))]
    return logs


def matching_holds(a: list, b: list) -> bool:
    """Log matching between two logs: wherever they share a term at an index, the prefixes are equal."""
    for k in range(min(len(a), len(b))):
        if a[k][0] == b[k][0] and a[: k + 1] != b[: k + 1]:
            return False
    return True


def test_log_matching_after_arbitrary_append_and_conflict_sequences() -> None:
    accepted = truncations = 0
    for seed in range(300):
        rng = random.Random(seed)
        logs = leader_histories(rng)
        r = follower()
        for _ in range(30):
            t = rng.choice(list(logs))
            lead = logs[t]
            prev = rng.randrange(len(lead) + 1)
            n = rng.randrange(len(lead) - prev + 1)
            prev_term = lead[prev - 1][0] if prev else 0
            before = r.log.entries(1, r.log.last_index())
            r.step(AppendEntries("n2", "n1", t, prev, prev_term, lead[prev : prev + n], 0))
            after = r.log.entries(1, r.log.last_index())
            ok = [m for m in acks(r.ready()) if m.success]
            if ok:
                accepted += 1
                assert after[: prev + n] == lead[: prev + n]  # what was acknowledged is the leader's
                assert ok[0].match_index == prev + n
                if after[: len(before)] != before:
                    truncations += 1
                    # Only a conflict truncates: the first differing entry is one the leader replaced.
                    k = next(k for k in range(len(before)) if k >= len(after) or after[k] != before[k])
                    assert k < prev + n and before[k][0] != lead[k][0]
                else:
                    assert len(after) >= len(before)
            else:
                assert after == before  # a rejected append changes nothing
            for other in logs.values():
                assert matching_holds(after, other), (seed, after, other)
            if len(r.log.entries(1, r.log.last_index())) > 1:
                ts = terms(r)
                assert ts == sorted(ts)
    assert accepted > 700 and truncations > 50, (accepted, truncations)


def test_follower_truncates_a_conflicting_suffix() -> None:
    r = follower([(1, "a"), (1, "b"), (2, "c"), (2, "d")], term=2)
    r.step(AppendEntries("n2", "n1", 3, 2, 1, [(3, "x")], 0))
    assert r.log.entries(1, r.log.last_index()) == [(1, "a"), (1, "b"), (3, "x")]
    rd = r.ready()
    assert (rd.entries_start, rd.entries) == (3, [(3, "x")])  # storage is told to replace from 3
    assert [m.match_index for m in acks(rd)] == [3]


def test_follower_never_truncates_a_matching_suffix() -> None:
    log = [(1, "a"), (3, "b"), (3, "c"), (3, "d"), (3, "e")]
    r = follower(log, term=3)
    r.step(AppendEntries("n2", "n1", 3, 1, 1, [(3, "b")], 0))  # a prefix of what we have
    r.step(AppendEntries("n2", "n1", 3, 0, 0, [], 0))
    assert r.log.entries(1, 5) == log and r.log.last_index() == 5
    rd = r.ready()
    assert rd.entries == []  # nothing to rewrite on disk
    assert [m.match_index for m in acks(rd)] == [2, 0]  # each acknowledges only what it verified


def test_a_stale_shorter_append_arriving_after_a_longer_one_does_not_truncate() -> None:
    net = RaftNet(config=dataclasses.replace(PAPER, inflight_max=8))
    net.elect("n1")
    for k in range(3):
        net.propose("n1", f"v{k}")
        net.ready("n1")
    to_n2 = net.take(lambda m: m.dest == "n2")
    assert [fmt(m) for m in to_n2] == [
        "n1->n2 t1 App prev=1/1 [1:v0] commit=1",
        "n1->n2 t1 App prev=2/1 [1:v1] commit=1",
        "n1->n2 t1 App prev=3/1 [1:v2] commit=1",
    ]
    # The longest message first, then the older ones (a reordering network), then all again.
    long = AppendEntries("n1", "n2", 1, 1, 1, [(1, "v0"), (1, "v1"), (1, "v2")], 1)
    for m in [long, *reversed(to_n2), *to_n2, long]:
        net.step(m)
    assert net.datas("n2") == ["v0", "v1", "v2"]
    net.stabilize()
    assert [m[2] for m in net.applied["n1"]] == [None, "v0", "v1", "v2"]
    net.tick("n1", PAPER.heartbeat_ticks)
    net.stabilize()
    for i in IDS:
        assert [d for _, _, d in net.applied[i]] == [None, "v0", "v1", "v2"], i


def test_stale_append_with_planted_truncation_bug_loses_entries() -> None:
    """Mutation check of the test above: the planted bug truncates on a stale append, and it shows."""
    r = follower(config=dataclasses.replace(PAPER, bugs=frozenset({"truncate-on-stale-append"})))
    r.step(AppendEntries("n2", "n1", 1, 0, 0, [(1, "a"), (1, "b")], 0))
    r.step(AppendEntries("n2", "n1", 1, 0, 0, [(1, "a")], 0))
    assert r.log.last_index() == 1


def test_duplicated_messages_are_harmless() -> None:
    def run(dup: bool) -> RaftNet:
        net = RaftNet(["n1", "n2", "n3", "n4", "n5"], config=dataclasses.replace(PAPER, inflight_max=4))
        net.elect("n1")
        for k in range(10):
            net.propose("n1", k)
            for _ in range(3):
                net.ready_all()
                net.persist_all()
                if dup:
                    net.inbox = [m for m in net.inbox for _ in range(2)]
                net.deliver()
        net.tick("n1", PAPER.heartbeat_ticks)
        net.stabilize()
        return net

    plain, dup = run(False), run(True)
    for i in plain.ids:
        assert dup.applied[i] == plain.applied[i]
        assert dup.log_of(i) == plain.log_of(i)
        assert [d for _, _, d in dup.applied[i]] == [None, *range(10)]


def test_leader_append_only_it_never_overwrites_or_deletes_its_entries() -> None:
    net = RaftNet()
    net.elect("n1")
    net.isolate("n1")
    net.propose("n1", "lost")  # n1 keeps an uncommitted entry
    net.stabilize()
    net.elect("n2")
    net.propose("n2", "won")
    net.stabilize()
    leader_log = net.log_of("n2")
    # n1 comes back with a conflicting entry; its rejections and hints must not touch n2's log.
    net.heal()
    for _ in range(3 * PAPER.heartbeat_ticks):
        net.tick("n2")
        net.stabilize()
        assert net.log_of("n2")[: len(leader_log)] == leader_log
    assert net.log_of("n1") == net.log_of("n2") and "lost" not in net.datas("n1")
    # A leader handed AppendEntries-shaped rejections of any kind keeps its log.
    n2 = net["n2"]
    for prev in range(1, 9):
        try:
            n2.step(AppendResponse("n1", "n2", n2.current_term, False, reject_index=prev, conflict_index=1,
                                   conflict_term=1))
        except ProtocolError:  # a rejection of an index it never sent is dropped outright
            assert prev > n2.log.last_index()
        net.ready("n2")
    assert net.log_of("n2") == leader_log


def test_fast_backtracking_converges_in_round_trips_per_divergent_term_not_per_entry() -> None:
    common = [(1, "c")] * 3
    divergent = [(t, f"old{t}") for t in (2, 3, 4, 5) for _ in range(50)]  # 200 entries, 4 terms
    net = RaftNet()
    net.load("n1", 6, None, common + [(6, "new")] * 250)
    net.load("n2", 6, None, common + [(6, "new")] * 250)
    net.load("n3", 5, None, common + divergent)
    net.campaign("n1")
    net.ready("n1")
    net.persist("n1")
    net.deliver()
    net.trace = []
    net.stabilize()
    to_n3 = [line for line in net.trace if line.startswith(("n1->n3 t7 App", "n3->n1 t7 AppResp"))]
    assert to_n3 == [
        "n1->n3 t7 App prev=253/6 [7:None] commit=0",
        "n3->n1 t7 AppResp reject prev=253 conflict=204/None",  # too short
        "n1->n3 t7 App prev=203/6 [6:new .. 7:None (51)] commit=254",
        "n3->n1 t7 AppResp reject prev=203 conflict=154/5",  # one hint per divergent term
        "n1->n3 t7 App prev=153/6 [6:new .. 7:None (101)] commit=254",
        "n3->n1 t7 AppResp reject prev=153 conflict=104/4",
        "n1->n3 t7 App prev=103/6 [6:new .. 7:None (151)] commit=254",
        "n3->n1 t7 AppResp reject prev=103 conflict=54/3",
        "n1->n3 t7 App prev=53/6 [6:new .. 7:None (201)] commit=254",
        "n3->n1 t7 AppResp reject prev=53 conflict=4/2",
        "n1->n3 t7 App prev=3/1 [6:new .. 7:None (251)] commit=254",
        "n3->n1 t7 AppResp ok match=254",
    ]
    rejections = sum("reject" in line for line in to_n3)
    assert rejections <= 4 + 1  # at most one per divergent term (+1 for a too-short log), never ~200
    assert net.log_of("n3") == net.log_of("n1")


def test_fast_backtracking_when_the_leader_shares_the_follower_terms() -> None:
    """A follower with a long suffix of an old term the leader also holds: one hint skips it all."""
    base = [(1, "a")] * 2
    leader_log = base + [(2, "b")] * 3 + [(4, "d")] * 3
    follower_log = base + [(2, "b")] * 3 + [(3, "x")] * 60
    net = RaftNet()
    net.load("n1", 4, None, leader_log)
    net.load("n2", 4, None, leader_log)
    net.load("n3", 3, None, follower_log)
    net.sent = []
    net.elect("n1")
    rejects = [fmt(m) for m in net.sent if isinstance(m, AppendResponse) and m.src == "n3" and not m.success]
    assert rejects == ["n3->n1 t5 AppResp reject prev=8 conflict=6/3"]
    assert net.log_of("n3") == net.log_of("n1")


def test_pipelining_sends_several_appends_without_waiting_bounded_by_inflight_max() -> None:
    cfg = dataclasses.replace(PAPER, inflight_max=3)
    net = RaftNet(config=cfg)
    net.elect("n1")  # the no-op's ack moved every follower to the replicate state
    for k in range(10):
        net.propose("n1", k)
        net.ready("n1")  # one AppendEntries per proposal while the window has room
    to_n2 = [m for m in net.inbox if m.dest == "n2" and isinstance(m, AppendEntries)]
    assert [[d for _, d in m.entries] for m in to_n2] == [[0], [1], [2]]
    # Acknowledgements open the window again; the rest goes out in batches.
    net.stabilize()
    assert net.datas("n2") == list(range(10)) and net["n1"].commit_index == 11


def test_probe_state_sends_one_append_at_a_time() -> None:
    net = RaftNet(config=dataclasses.replace(PAPER, inflight_max=8))
    net.isolate("n3")  # n3 never acknowledges: the leader stays in probe for it
    net.elect("n1")
    for k in range(5):
        net.propose("n1", k)
        net.ready("n1")
    to_n3 = net.take(lambda m: m.dest == "n3" and isinstance(m, AppendEntries))
    to_n2 = net.take(lambda m: m.dest == "n2" and isinstance(m, AppendEntries))
    assert len(to_n3) == 0 and len(to_n2) == 5  # n3's one probe went out (and was lost) during elect()
    assert net["n1"].progress["n3"].probing and not net["n1"].progress["n2"].probing


def heal_and_converge(net: RaftNet, leader: str, rounds: int) -> int:
    """Heal, then tick and deliver until every log equals the leader's and all have committed it.
    Returns the number of leader ticks it took; no proposals are made."""
    net.heal()
    for t in range(rounds):
        lead = net[leader]
        if all(net.log_of(i) == net.log_of(leader) and net[i].commit_index == lead.log.last_index()
               for i in net.ids):
            return t
        net.tick(leader)
        net.stabilize()
    raise AssertionError(f"wedged: {[net[i].log.last_index() for i in net.ids]} {net[leader].progress}")


@pytest.mark.parametrize(("inflight_max", "proposals"), [(1, 40), (4, 40), (32, 40), (32, 3)])
def test_no_wedge_after_appends_are_lost_in_a_partition_and_it_heals_without_new_proposals(
    inflight_max: int, proposals: int
) -> None:
    """With a full window or a partly used one (nothing then frees it), the leader must resend."""
    cfg = Config(election_ticks=10, heartbeat_ticks=2, inflight_max=inflight_max, append_entries_max=2)
    net = RaftNet(["n1", "n2", "n3", "n4", "n5"], config=cfg)
    net.elect("n1")
    net.partition(["n1", "n2", "n3"], ["n4", "n5"])
    for k in range(proposals):
        net.propose("n1", k)
        net.stabilize()  # n4 and n5 lose every AppendEntries
    net.tick("n1")  # less than an election timeout: n1 stays leader
    t = heal_and_converge(net, "n1", 10 * cfg.election_ticks)
    assert t <= 4 * cfg.heartbeat_ticks + 2, t
    assert net.datas("n5") == list(range(proposals))


def test_no_wedge_after_a_full_window_of_appends_is_lost_while_heartbeats_get_through() -> None:
    cfg = Config(election_ticks=10, heartbeat_ticks=2, inflight_max=4, append_entries_max=1)
    net = RaftNet(config=cfg)
    net.elect("n1")
    for k in range(12):
        net.propose("n1", k)
        net.ready("n1")
        net.take(lambda m: isinstance(m, AppendEntries))  # every append lost, on both links
    assert len(net["n1"].progress["n2"].inflight) == 4
    t = heal_and_converge(net, "n1", 10 * cfg.election_ticks)
    assert t <= 4 * cfg.heartbeat_ticks + 2, t
