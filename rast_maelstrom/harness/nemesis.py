"""The nemesis: fault kinds, partition shapes and the staggered start/stop schedule.

Owns: deciding when faults start and stop and what they look like (maelstrom-spec §4), recording
each nemesis op as an "info" invoke/completion pair on process "nemesis", and healing at teardown
(not recorded, as the jar's partitioner teardown).

Structure: a `FaultKind` knows its start/stop op names, how to draw a start value, how to apply an
op (returning the completion value) and how to undo everything at teardown. `Nemesis` runs one
flip-flop per kind: at t≈0 the first start fires, then every gap is U[0, 2·interval) s and each
kind alternates start/stop. Later kinds (kill/restart, SIGSTOP pause, packet loss) are new
FaultKind subclasses; only `partition` exists today, as in the jar.

Partition shapes (Jepsen's grudges; a grudge maps a node to the nodes it must not hear from):
one (1 node cut off both ways), majority (shuffled halves, smaller half first), minority-third
(floor((N-1)/3) nodes cut off; none for N=3), majorities-ring (N<=5: each node hears only the
majority window it sits in the middle of — a one-way ring for N=3; N>5: a random symmetric graph
where every node sees a majority).

Invariants: all randomness comes from the rng passed in; nemesis ops stop at the time limit.
May not touch: processes or messages directly (it goes through the network's drop_grudge/heal).
"""
from __future__ import annotations

import logging
import random
from typing import Any, Callable

log = logging.getLogger("maelstrom.nemesis")

PARTITION_SPECS = ("one", "majority", "minority-third", "majorities-ring")
NEMESIS_KINDS = ("partition",)
ring_attempts_max = 1000


# -- grudges --------------------------------------------------------------------------------------
def complete_grudge(components: list[list[str]]) -> dict[str, list[str]]:
    """Every node drops messages from every node outside its own component (both directions)."""
    everyone = [n for comp in components for n in comp]
    grudge: dict[str, list[str]] = {}
    for comp in components:
        members = set(comp)
        for node in comp:
            grudge[node] = sorted(n for n in everyone if n not in members)
    return grudge


def majority_size(n: int) -> int:
    return n // 2 + 1


def majorities_ring_perfect(nodes: list[str], rng: random.Random) -> dict[str, list[str]]:
    """N <= 5: windows of majority size slide round the shuffled ring; each window's middle node
    hears only from its window."""
    ring = list(nodes)
    rng.shuffle(ring)
    n = len(ring)
    m = majority_size(n)
    everyone = set(ring)
    grudge = {}
    for start in range(n):
        window = [ring[(start + j) % n] for j in range(m)]
        middle = window[m // 2]
        grudge[middle] = sorted(everyone - set(window))
    return grudge


def majorities_ring_stochastic(nodes: list[str], rng: random.Random) -> dict[str, list[str]]:
    """N > 5: add random symmetric links until every node sees a majority (itself included)."""
    n = len(nodes)
    need = majority_size(n) - 1  # peers each node must see
    links: dict[str, set[str]] = {node: set() for node in nodes}
    for _ in range(ring_attempts_max * n):
        lonely = [node for node in nodes if len(links[node]) < need]
        if not lonely:
            break
        a = rng.choice(lonely)
        candidates = [b for b in nodes if b != a and b not in links[a]]
        lonely_candidates = [b for b in candidates if len(links[b]) < need]
        b = rng.choice(lonely_candidates or candidates)
        links[a].add(b)
        links[b].add(a)
    everyone = set(nodes)
    return {node: sorted(everyone - links[node] - {node}) for node in nodes}


def partition_grudge(spec: str, nodes: list[str], rng: random.Random) -> dict[str, list[str]]:
    """The grudge for one partition spec (see module docstring)."""
    shuffled = list(nodes)
    if spec == "majorities-ring":
        if len(nodes) <= 5:
            return majorities_ring_perfect(nodes, rng)
        return majorities_ring_stochastic(nodes, rng)
    rng.shuffle(shuffled)
    if spec == "one":
        return complete_grudge([shuffled[:1], shuffled[1:]])
    if spec == "majority":
        half = len(shuffled) // 2
        return complete_grudge([shuffled[:half], shuffled[half:]])
    if spec == "minority-third":
        cut = (len(shuffled) - 1) // 3
        return complete_grudge([shuffled[:cut], shuffled[cut:]])
    raise ValueError(f"unknown partition spec {spec!r}")


# -- fault kinds ----------------------------------------------------------------------------------
class FaultKind:
    """One kind of fault with a start op and a stop op."""
    name = "?"
    start_f = "start-?"
    stop_f = "stop-?"

    def start_value(self, rng: random.Random) -> Any:
        return None

    def apply(self, f: str, value: Any) -> Any:
        """Carry out op f; return the completion value."""
        raise NotImplementedError

    def teardown(self) -> None:
        """Undo everything, unrecorded."""

    def describe(self) -> str:
        return self.name


class PartitionFault(FaultKind):
    name = "partition"
    start_f = "start-partition"
    stop_f = "stop-partition"

    def __init__(self, network, nodes: list[str], rng: random.Random):
        self.network = network
        self.nodes = list(nodes)
        self.rng = rng
        self.current: str | None = None

    def start_value(self, rng: random.Random) -> str:
        return rng.choice(PARTITION_SPECS)

    def apply(self, f: str, value: Any) -> Any:
        if f == self.start_f:
            grudge = partition_grudge(value, self.nodes, self.rng)
            self.network.drop_grudge(grudge)
            self.current = value
            return ["isolated", grudge]
        assert f == self.stop_f, f
        self.network.heal()
        self.current = None
        return "network-healed"

    def teardown(self) -> None:
        self.network.heal()
        self.current = None

    def describe(self) -> str:
        return f"partition {self.current}" if self.current else "healed"


def make_fault_kinds(names: list[str], network, nodes: list[str],
                     rng: random.Random) -> list[FaultKind]:
    kinds: list[FaultKind] = []
    for name in names:
        if name == "partition":
            kinds.append(PartitionFault(network, nodes, rng))
        else:
            raise ValueError(f"unknown nemesis {name!r}")
    return kinds


# -- schedule -------------------------------------------------------------------------------------
class Nemesis:
    """Flip-flops each fault kind on a staggered schedule (first op at t≈0, gaps U[0, 2·interval))."""

    def __init__(self, kinds: list[FaultKind], rng: random.Random, interval_s: float,
                 record: Callable[..., None]):
        assert interval_s > 0
        self.kinds = kinds
        self.rng = rng
        self.interval_s = interval_s
        self.record = record          # record(type, f, value) appends to the history
        self.active = [False] * len(kinds)
        self.op_count = 0

    def next_op(self) -> tuple[FaultKind, str, Any]:
        """The next op to run: a random kind, its start if inactive, else its stop."""
        i = self.rng.randrange(len(self.kinds))
        kind = self.kinds[i]
        if self.active[i]:
            self.active[i] = False
            return kind, kind.stop_f, None
        self.active[i] = True
        return kind, kind.start_f, kind.start_value(self.rng)

    def gap_s(self) -> float:
        return self.rng.uniform(0, 2 * self.interval_s)

    def step(self) -> None:
        """Run one op now, recording invoke and completion."""
        kind, f, value = self.next_op()
        self.record("info", f, value)
        completion = kind.apply(f, value)
        self.record("info", f, completion)
        self.op_count += 1
        log.info("nemesis %s %s -> %s", f, value, completion)

    def describe(self) -> str:
        return ", ".join(k.describe() for k in self.kinds) if self.kinds else "none"

    def teardown(self) -> None:
        for kind in self.kinds:
            kind.teardown()
