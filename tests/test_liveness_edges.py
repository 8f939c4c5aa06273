"""Three liveness edges found in review, each as a user would see it:

(a) entries lost on the way to a pipelined follower are resent while reads keep flowing (a read
    round's heartbeat must not starve the leader's stall check);
(b) a leader resumed after a long pause, demoted by check-quorum while catching up on its ticks,
    does not go on to write one pre-vote campaign per election timeout of the pause in one pass;
(c) with --lease-reads a brand-new cluster elects its first leader as fast as without (only a node
    that restarts with state is quarantined, since only it can have acknowledged a lease).
"""

from __future__ import annotations

import statistics

import orjson
from raftnet import PAPER, RaftNet
from test_node_clock import make_node

from rast_maelstrom.core import AppendEntries, Role
from rast_maelstrom.sim.cluster import BOOT_SPREAD_S, FaultMix, SimConfig, Simulation

THREE = ["n1", "n2", "n3"]


def test_entries_lost_to_a_pipelined_follower_are_resent_while_reads_keep_flowing() -> None:
    net = RaftNet(THREE, config=PAPER)
    net.elect("n1")
    net.propose("n1", "a")
    net.stabilize()  # n2 and n3 replicate (pipelined) from here
    n1 = net["n1"]
    assert not n1.progress["n2"].probing
    net.propose("n1", "b")
    net.propose("n1", "c")
    net.ready("n1")
    lost = net.take(lambda m: isinstance(m, AppendEntries) and m.dest == "n2")
    assert lost and any(m.entries for m in lost)
    net.stabilize()  # n3 acknowledges: b and c commit without n2
    assert n1.commit_index == n1.log.last_index()
    for k in range(20 * PAPER.heartbeat_ticks):  # a read every tick: a read round every tick
        assert n1.read_index(("client", k))
        net.tick("n1")
        net.stabilize()
    assert net.reads["n1"], "the reads were served"
    assert net.datas("n2") == ["a", "b", "c"], "the lost entries were never resent to n2"


def test_a_leader_resumed_after_a_long_pause_writes_at_most_one_campaign() -> None:
    n, loop, out = make_node(["n0", "n1", "n2"])

    def feed(body: dict) -> None:
        n.on_line(orjson.dumps({"src": "n1", "dest": "n0", "body": body}))
        n.flush()

    for _ in range(1000):
        loop.now += 0.01
        loop.fire_due()
        n.flush()
        if n.raft.role is not Role.FOLLOWER:
            break
    feed({"type": "rvr", "term": n.raft.current_term + 1, "g": True, "pre": True})
    feed({"type": "rvr", "term": n.raft.current_term, "g": True, "pre": False})
    assert n.raft.role is Role.LEADER
    out.clear()
    loop.now += 100.0  # SIGSTOP for 100 s, then SIGCONT: one pass catches up on the ticks
    loop.fire_due()
    n.flush()
    assert n.raft.role is not Role.LEADER, "check-quorum demotes a leader nobody answered"
    lines = b"".join(out).split(b"\n")
    pre_votes = [x for x in lines if b'"type":"rv"' in x and b'"pre":true' in x]
    assert len(pre_votes) <= 2, f"{len(pre_votes)} pre-vote requests written in one pass"


def _first_leader_s(seed: int, node_argv: tuple[str, ...]) -> float:
    sim = Simulation(SimConfig(seed=seed, steps=0, faults=FaultMix(), node_argv=node_argv,
                               check_lin=False))
    for s in sim.slots:
        sim._after(sim.rng.uniform(0, BOOT_SPREAD_S), sim._boot, s.index)

    def led() -> bool:
        return any(s.node is not None and s.node.raft.role is Role.LEADER for s in sim.slots)

    sim._run(1_000_000, 30.0, led)
    assert led()
    return sim.now


def test_lease_reads_do_not_slow_down_the_first_election() -> None:
    seeds = range(1, 13)
    plain = statistics.mean(_first_leader_s(s, ("--no-lease-reads",)) for s in seeds)
    lease = statistics.mean(_first_leader_s(s, ("--lease-reads",)) for s in seeds)
    assert lease <= plain * 1.2, f"first leader after {lease * 1000:.0f} ms with --lease-reads, " \
                                 f"{plain * 1000:.0f} ms without"
