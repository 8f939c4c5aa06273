"""The nemesis: fault kinds, partition shapes and the staggered start/stop schedule.

Owns: deciding when faults start and stop and what they look like (maelstrom-spec §4), recording
each nemesis op as an "info" invoke/completion pair on process "nemesis", and healing at teardown
(not recorded, as the jar's partitioner teardown).

Structure: a `FaultKind` knows its start/stop op names, how to draw a start value, how to apply an
op (returning the completion value) and how to undo everything at teardown. `Nemesis` alternates
start and stop: at t≈0 the first start fires, then every gap is U[0, 2·interval) s; each start
picks a kind uniformly among the enabled ones and the next op stops that kind, so at most one
fault is active at a time. Every op draws one `randrange(len(kinds))`, so with `partition` alone
the draws (and a seeded run) are exactly the jar-compatible schedule of before.

Fault kinds (ops are named start-X/stop-X, the convention checkers.nemesis_periods shades):
- partition (the jar's only one): start-partition value = spec; completion ["isolated", grudge];
  stop-partition completes with "network-healed".
- [extension] kill: start-kill value "minority" (a random non-empty minority, floor((N-1)/2) at
  most) or, with probability `all_probability`, "all"; completion ["killed", [nodes]] after SIGKILL.
  stop-kill restarts each with the same command line (the runner then sends `init` again);
  completion ["restarted", [nodes]].
- [extension] pause: the same targets; SIGSTOP ("paused") / SIGCONT ("resumed").
- [extension] loss: start-loss value p; every server-to-server message is dropped with probability
  p until stop-loss. Completions ["dropping", p] / "loss-stopped".
- [extension] dup: start-dup value p; every server-to-server message is delivered twice with
  probability p until stop-dup. Completions ["duplicating", p] / "dup-stopped".
- [extension] member (membership.py, not a FaultKind): grows and shrinks the configuration on a
  schedule of its own; the runner runs one nemesis op at a time, so a fault op falls due while a
  change is in flight waits for it.
`final_heal()` (only when an extension is enabled: the runner's recovery phase) stops the active
fault with its ordinary recorded stop op (invoke value "final-heal").

Partition shapes (Jepsen's grudges; a grudge maps a node to the nodes it must not hear from):
one (1 node cut off both ways), majority (shuffled halves, smaller half first), minority-third
(floor((N-1)/3) nodes cut off; none for N=3), majorities-ring (N<=5: each node hears only the
majority window it sits in the middle of — a one-way ring for N=3; N>5: a random symmetric graph
where every node sees a majority).

Invariants: all randomness comes from the rngs passed in; nemesis ops stop at the time limit; at
most one fault is active.
May not touch: processes or messages directly: it goes through the network (drop_grudge, heal,
set_loss, set_dup) and a `NodeControl` the runner provides (kill/restart/pause/resume a node).
"""
from __future__ import annotations

import logging
import random
from typing import Any, Callable

log = logging.getLogger("maelstrom.nemesis")

PARTITION_SPECS = ("one", "majority", "minority-third", "majorities-ring")
NEMESIS_KINDS = ("partition", "kill", "pause", "loss", "dup", "member")
EXTENSION_KINDS = ("kill", "pause", "loss", "dup", "member")   # member: membership.py
MEMBER_KIND = "member"
MEMBER_FS = ("grow", "shrink")   # the member nemesis's ops (one op pair per change)
PROCESS_TARGETS = ("minority", "all")
all_probability = 0.25      # a kill or pause hits every node this often, otherwise a minority
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


class NodeControl:
    """What the process faults need from the runner (which implements it)."""

    def kill_node(self, node: str) -> None:
        raise NotImplementedError

    def restart_node(self, node: str) -> None:
        raise NotImplementedError

    def pause_node(self, node: str) -> None:
        raise NotImplementedError

    def resume_node(self, node: str) -> None:
        raise NotImplementedError

    # [extension] the member nemesis's wipes
    def wipe_node(self, node: str, members: list[str]) -> None:
        """Kill `node`, delete its data, restart it and send it `init` naming `members`."""
        raise NotImplementedError

    def init_pending(self, node: str) -> bool:
        """A restarted node has not answered its init yet."""
        raise NotImplementedError

    def node_available(self, node: str) -> bool:
        """Neither killed nor paused by a fault: the member nemesis may wipe it."""
        raise NotImplementedError


def process_targets(spec: str, nodes: list[str], rng: random.Random) -> list[str]:
    """The nodes a kill or pause hits: "all", or a random non-empty minority."""
    if spec == "all":
        return list(nodes)
    assert spec == "minority", spec
    count = rng.randint(1, max(1, (len(nodes) - 1) // 2))
    return sorted(rng.sample(list(nodes), count))


class _ProcessFault(FaultKind):
    """A fault that hits whole node processes and undoes itself on the same nodes."""
    start_word = stop_word = "?"

    def __init__(self, control: NodeControl, nodes: list[str], rng: random.Random):
        self.control = control
        self.nodes = list(nodes)
        self.rng = rng
        self.hit: list[str] = []

    def start_value(self, rng: random.Random) -> str:
        return "all" if rng.random() < all_probability else "minority"

    def apply(self, f: str, value: Any) -> Any:
        if f == self.start_f:
            assert not self.hit, self.hit
            self.hit = process_targets(value, self.nodes, self.rng)
            for node in self.hit:
                self._start(node)
            return [self.start_word, list(self.hit)]
        assert f == self.stop_f, f
        hit, self.hit = self.hit, []
        for node in hit:
            self._stop(node)
        return [self.stop_word, hit]

    def teardown(self) -> None:
        hit, self.hit = self.hit, []
        for node in hit:
            self._stop(node)

    def describe(self) -> str:
        return f"{self.start_word} {','.join(self.hit)}" if self.hit else f"no {self.name}"

    def _start(self, node: str) -> None:
        raise NotImplementedError

    def _stop(self, node: str) -> None:
        raise NotImplementedError


class KillFault(_ProcessFault):
    name = "kill"
    start_f = "start-kill"
    stop_f = "stop-kill"
    start_word = "killed"
    stop_word = "restarted"

    def _start(self, node: str) -> None:
        self.control.kill_node(node)

    def _stop(self, node: str) -> None:
        self.control.restart_node(node)


class PauseFault(_ProcessFault):
    name = "pause"
    start_f = "start-pause"
    stop_f = "stop-pause"
    start_word = "paused"
    stop_word = "resumed"

    def _start(self, node: str) -> None:
        self.control.pause_node(node)

    def _stop(self, node: str) -> None:
        self.control.resume_node(node)


class _RandomNetFault(FaultKind):
    """A network fault with one probability, on from start to stop."""
    start_word = stop_value = "?"

    def __init__(self, network, p: float):
        assert 0.0 < p <= 1.0, p
        self.network = network
        self.p = p
        self.on = False

    def start_value(self, rng: random.Random) -> float:
        return self.p

    def apply(self, f: str, value: Any) -> Any:
        if f == self.start_f:
            self._set(value)
            self.on = True
            return [self.start_word, value]
        assert f == self.stop_f, f
        self._set(0.0)
        self.on = False
        return self.stop_value

    def teardown(self) -> None:
        self._set(0.0)
        self.on = False

    def describe(self) -> str:
        return f"{self.name} {self.p:g}" if self.on else f"no {self.name}"

    def _set(self, p: float) -> None:
        raise NotImplementedError


class LossFault(_RandomNetFault):
    name = "loss"
    start_f = "start-loss"
    stop_f = "stop-loss"
    start_word = "dropping"
    stop_value = "loss-stopped"

    def _set(self, p: float) -> None:
        self.network.set_loss(p)


class DupFault(_RandomNetFault):
    name = "dup"
    start_f = "start-dup"
    stop_f = "stop-dup"
    start_word = "duplicating"
    stop_value = "dup-stopped"

    def _set(self, p: float) -> None:
        self.network.set_dup(p)


def make_fault_kinds(names: list[str], network, nodes: list[str], rng: random.Random, *,
                     control: NodeControl | None = None, p_loss: float = 0.0,
                     p_dup: float = 0.0) -> list[FaultKind]:
    """Fault kinds in the order of `names`; kill/pause need `control`, loss/dup their p."""
    kinds: list[FaultKind] = []
    for name in names:
        if name == "partition":
            kinds.append(PartitionFault(network, nodes, rng))
        elif name in ("kill", "pause"):
            assert control is not None, f"the {name} nemesis needs a NodeControl"
            kinds.append((KillFault if name == "kill" else PauseFault)(control, nodes, rng))
        elif name == "loss":
            kinds.append(LossFault(network, p_loss))
        elif name == "dup":
            kinds.append(DupFault(network, p_dup))
        else:
            raise ValueError(f"unknown nemesis {name!r}")
    return kinds


# -- schedule -------------------------------------------------------------------------------------
class Nemesis:
    """Alternates start/stop on a staggered schedule (first op at t≈0, gaps U[0, 2·interval));
    each start picks a kind at random, the following op stops it."""

    def __init__(self, kinds: list[FaultKind], rng: random.Random, interval_s: float,
                 record: Callable[..., None]):
        assert interval_s > 0
        assert kinds
        self.kinds = kinds
        self.rng = rng
        self.interval_s = interval_s
        self.record = record          # record(type, f, value) appends to the history
        self.current: int | None = None   # index of the active fault kind
        self.op_count = 0
        self.counts: dict[str, int] = {}  # f -> ops run

    def next_op(self) -> tuple[FaultKind, str, Any]:
        """The next op to run: stop the active kind, else start a random one."""
        i = self.rng.randrange(len(self.kinds))   # drawn for every op: see the module docstring
        if self.current is not None:
            kind = self.kinds[self.current]
            self.current = None
            return kind, kind.stop_f, None
        self.current = i
        kind = self.kinds[i]
        return kind, kind.start_f, kind.start_value(self.rng)

    def gap_s(self) -> float:
        return self.rng.uniform(0, 2 * self.interval_s)

    def step(self) -> None:
        """Run one op now, recording invoke and completion."""
        kind, f, value = self.next_op()
        self._run(kind, f, value)

    def _run(self, kind: FaultKind, f: str, value: Any) -> None:
        self.record("info", f, value)
        completion = kind.apply(f, value)
        self.record("info", f, completion)
        self.op_count += 1
        self.counts[f] = self.counts.get(f, 0) + 1
        log.info("nemesis %s %s -> %s", f, value, completion)

    def final_heal(self) -> str | None:
        """Stop the active fault, recorded as its ordinary stop op; returns its f (or None)."""
        if self.current is None:
            return None
        kind = self.kinds[self.current]
        self.current = None
        self._run(kind, kind.stop_f, "final-heal")
        return kind.stop_f

    def describe(self) -> str:
        return "healed" if self.current is None else self.kinds[self.current].describe()

    def teardown(self) -> None:
        self.current = None
        for kind in self.kinds:
            kind.teardown()
