"""The deterministic whole-cluster simulator: N real `Node`s in one process, one seed.

Owns: simulated time (one event heap), each node's loop (`NodeLoop`), disk (`disk.SimDisk`), the
network between them, the nemesis (partitions of every shape, crashes with restarts, pauses, slow
disks, message drop / duplication / long delay, stale-read episodes: a cut-off leader whose clock
runs slow), the clients (`clients.Workload`) and the run's phases. Everything random comes from `random.Random(seed)`; nothing reads the wall clock, the OS
or a string hash, so a seed replays exactly (`trace_hash` covers every executed event).

One *step* is one executed event: a node timer, an fsync completion, a message delivered to a node
(each followed by `node.flush()`, as the real loop ends a pass), or a simulator action (client op,
client reply, nemesis). Events for a crashed incarnation are discarded; events for a paused node
wait until it resumes (its timers fire late, its input queues, its disk thread stops).

Network (after spec §3): a node's output lines are routed by `dest`. Server-to-server messages get
a random delay (reordering follows), may be dropped, duplicated or held back a long time, and are
dropped at delivery when the receiver has a grudge against the sender (partitions are checked when
the message is polled, as in Maelstrom). Anything whose src or dest is a client (`c...`), including
a request a follower forwards with the client as src, is never partitioned, dropped or duplicated;
but with `cdup` a client sends a request again (same msg_id) to a random node up to
`CLIENT_DUP_DELAY_MAX_S` later, whatever became of the first copy (a retrying client).

Disk failures (`diskfail`): a node's next fsync fails (EIO or ENOSPC); the node must then stop with
exit 70 (any other SystemExit is a violation), its incarnation ends like a crash that may keep a
prefix of what it was writing, and it restarts from its disk.

Membership changes (`member`): the cluster starts with a subset of the nodes as voters (init's
`members`, extension) and the nemesis sends `reconfigure` requests (a membership client, `cm`):
add a spare or two, remove a voter or two (never below a majority of the initial members),
sometimes the leader, sometimes wiping a spare's data before adding it back. Each reply is checked
(`reconfigure_ok` names the target). Swarm seeds enable it in about half the runs.

Lease reads (`lease`; on in every run with pauses and in a share of the swarm's others): the nodes
run with --lease-reads and each node's clock runs at its own rate within `drift` of simulated
time (the README's clock assumption); a paused node's clock keeps running. `checks.py` checks each
read served without a round against what was committed at that moment (lease read freshness).

Phases: (1) `steps` steps with faults; (2) healed: faults off, crashed nodes restarted, and a probe
client must get a write acknowledged within `heal_bound_s` of simulated time (liveness); (3) drain:
no new ops, in-flight ops finish; then the end-of-run checks and the linearizability check of the
client history. The invariants of `checks.py` run after every step that touched a node.

Invariants of this module: the clock never goes backwards; every loop is bounded (`*_MAX`);
one incarnation per node at a time; a crash discards the node object and keeps only its disk.
May not touch: the node's, the core's or the WAL's code (it drives them through their interfaces).
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import math
import random
import shlex
import struct
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from .. import kv as kv_mod
from .. import node as node_mod
from .. import sessions
from ..core import BUGS as CORE_BUGS, Membership, Role
from ..runtime.snapshot import decode_snapshot
from ..harness.linearizability import check_independent
from .checks import Invariants, Violation
from .clients import Workload
from .disk import SimDisk, SimWriter, open_storage_factory

BUGS = CORE_BUGS | sessions.BUGS  # what --bug may plant: the core's and the state machine's
TRACE_TAIL_MAX = 40  # events kept for a failure report
FAULT_LOG_MAX = 20  # nemesis actions quoted in a failure report
CLIENT_DUP_DELAY_MAX_S = 0.2  # a client request's copy (mix.cdup) goes up to this much later
HEAL_STEPS_MAX = 500_000  # bound on steps of the healed phase (the sim-time bound comes first)
IN_FLIGHT_MAX = 20_000  # node messages in the network at once; more is a message storm
STORM_WINDOW_STEPS = 65_536  # a window of this many steps must span at least STORM_WINDOW_MIN_S
STORM_WINDOW_MIN_S = 2.0  # (normal runs: 1-5 thousand steps per simulated second; bursts pass)
DRAIN_EXTRA_S = 0.5  # after the client timeout, time allowed for the last ops to finish
BOOT_SPREAD_S = 0.01  # nodes start within this window (tick phases differ)
RESTART_DELAY_MIN_S = 0.02
LEADER_HIT_DELAY_MAX_S = 0.05  # a targeted hit lands this soon after the election, at most
CLOCK_ROUNDING_STEPS_MAX = 8  # ulps a slowed clock's timer deadline may be nudged by

K_TIMER, K_DURABLE, K_MSG, K_CALL, K_SNAP = 0, 1, 2, 3, 4
_KIND_NAMES = ("timer", "durable", "msg", "call", "snapshot")
_PACK = struct.Struct("<BbId")

FAULT_KINDS = ("partition", "crash", "pause", "slowdisk", "diskfail", "stale", "member")
# Every fault the simulator counts (RunResult.faults keys; "partition-drop" is a consequence, not
# a class): the CI sweep requires each of them to happen ("snapmid": a crash while a snapshot was
# being sliced or written; "overlay": a snapshot whose serialization saw writes go to the overlay). "stale" is not among them: it is a
# scenario asked for with --faults stale (tests/test_sim.py runs it), not part of random mixes.
FAULT_COUNTERS = ("partition", "crash", "pause", "slowdisk", "diskfail", "torn", "drop", "dup", "delay",
                  "leader-hit", "snapshot", "install", "snapcorrupt", "client-dup",
                  "member", "member-ok", "member-leader", "wipe", "lease-read", "snapmid", "overlay")
MEMBER_P = 0.5  # share of swarm seeds that change membership
# Lease reads (--lease-reads) are on in every run with pauses and in this share of the other swarm
# seeds; a run in lease mode draws a clock drift: each node's clock runs at its own rate within
# [1 - d, 1 + d] of simulated time, d from DRIFT_CHOICES. The lease's clock assumption (README): any
# two rates within a factor (E - 1) / (E - margin), E the election timeout in ticks; the largest
# d here keeps (1 + d) / (1 - d) = 1.062 below the strictest profile's 29/27 = 1.074.
LEASE_P = 0.5
DRIFT_CHOICES = (0.0, 0.01, 0.03)
RECONF_TIMEOUT_S = 5.0  # the membership client gives up on a reconfigure after this (indefinite)
MEMBER_LEADER_P = 0.3  # a removal takes the leader
MEMBER_WIPE_P = 0.5  # a spare that was a member before is wiped before it is added back
MEMBER_TWO_P = 0.3  # a change adds or removes two nodes at once (carried out in single steps)
# Snapshots are on in every run, with thresholds this small (entries), so compaction and
# InstallSnapshot happen in most seeds.
SNAPSHOT_ENTRIES_CHOICES = (8, 16, 32, 64)
SNAPSHOT_WRITE_S = (0.001, 0.05)  # how long a simulated snapshot child takes to write its file
SNAPSHOT_FORK_P = 0.1  # seeds whose nodes take snapshots with --snapshot-fork (at once, no slices)
SNAPSHOT_DAMAGE_P = 0.2  # with torn tails on: chance a crash also damages the newest snapshot file
# Node configurations a swarm seed may pick (legal flags; small batches and fast elections reach
# code paths and interleavings the defaults rarely do).
NODE_PROFILES: tuple[tuple[str, ...], ...] = (
    (),
    (),
    ("--append-entries-max", "1"),
    ("--election-ms", "100", "--heartbeat-ms", "20"),
    ("--append-entries-max", "1", "--election-ms", "100", "--heartbeat-ms", "20"),
    ("--inflight-max", "2", "--append-entries-max", "4"),
)
PARTITION_SHAPES = ("one", "majority", "minority-third", "ring", "bridge", "oneway")


class SimFailure(Exception):
    """A run broke an invariant. `str()` is the whole report, ending with the replay command."""

    def __init__(self, invariant: str, report: str, replay: str) -> None:
        super().__init__(report)
        self.invariant = invariant
        self.replay = replay

    def __reduce__(self) -> tuple:  # crosses process boundaries (the sweep's --jobs)
        return (SimFailure, (self.invariant, str(self), self.replay))


@dataclass
class FaultMix:
    """Which faults a run injects and how often. `None` in SimConfig: drawn from the seed."""

    partition: bool = False
    crash: bool = False
    pause: bool = False
    slowdisk: bool = False
    diskfail: bool = False  # a node's next fsync fails (EIO, ENOSPC): it must exit 70; it restarts
    torn: bool = False  # a crash may keep a prefix of the unsynced records, the next one torn
    drop: float = 0.0  # per server message
    dup: float = 0.0
    reorder: float = 0.0  # chance a server message is held back 20-500 ms
    leader: float = 0.0  # chance a newly elected leader is hit (crash, pause or isolation) at once
    # The stale-read scenario: the leader is cut off from a majority (with one follower in a
    # cluster of 5 or more) while its own clients still reach it, and its clock runs at `clock`
    # times the real rate, so it steps down late while a new leader commits writes.
    stale: bool = False
    clock: float = 0.25
    cdup: float = 0.0  # chance a client request is sent again (same msg_id) to a random node, later
    member: bool = False  # membership changes (reconfigure requests, wiped re-adds)
    lease: bool = False  # the nodes serve reads from leader leases (always on with `pause`)
    drift: float = 0.0  # each node's clock rate is drawn from [1 - drift, 1 + drift]
    interval: float = 0.5  # mean seconds between nemesis actions
    down: float = 1.5  # longest crash, pause or slow-disk period, seconds

    @classmethod
    def swarm(cls, rng: random.Random) -> "FaultMix":
        """Swarm testing: each seed enables its own subset of faults at its own rates."""
        m = cls(
            partition=rng.random() < 0.6,
            crash=rng.random() < 0.6,
            pause=rng.random() < 0.4,
            slowdisk=rng.random() < 0.4,
            drop=rng.choice((0.0, 0.0, 0.01, 0.05, 0.2)),
            dup=rng.choice((0.0, 0.0, 0.01, 0.05)),
            reorder=rng.choice((0.0, 0.0, 0.01, 0.05)),
            leader=rng.choice((0.0, 0.0, 0.0, 0.3, 0.7)),
            interval=round(rng.uniform(0.1, 1.0), 3),
            down=round(rng.uniform(0.2, 2.0), 3),
        )
        m.torn = m.crash and rng.random() < 0.5
        m.diskfail = rng.random() < 0.3
        m.cdup = rng.choice((0.0, 0.0, 0.05, 0.2))
        return m

    @classmethod
    def parse(cls, text: str) -> "FaultMix":
        """"crash,partition,torn,drop=0.05,interval=0.3" (see `describe`); "none" for no faults."""
        m = cls()
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, val = part.partition("=")
            if name == "none":
                continue
            if name not in cls.__dataclass_fields__:
                raise ValueError(f"unknown fault {name!r}")
            kind = type(getattr(m, name))
            setattr(m, name, (val.lower() not in ("0", "false", "no")) if kind is bool and val
                    else True if kind is bool else float(val))
        return m

    def describe(self) -> str:
        kinds = ("partition", "crash", "pause", "slowdisk", "diskfail", "torn", "stale", "member", "lease")
        parts = [k for k in kinds if getattr(self, k)]
        parts += [f"{k}={getattr(self, k):g}" for k in ("drop", "dup", "reorder", "leader", "cdup", "drift")
                  if getattr(self, k)]
        if self.stale:
            parts.append(f"clock={self.clock:g}")
        parts += [f"interval={self.interval:g}", f"down={self.down:g}"]
        return ",".join(parts)


@dataclass
class SimConfig:
    seed: int
    steps: int = 20_000
    nodes: int = 3
    bugs: tuple[str, ...] = ()
    faults: FaultMix | None = None  # None: swarm (drawn from the seed)
    node_argv: tuple[str, ...] = ()  # extra node flags, e.g. ("--append-entries-max", "1")
    clients_n: int = 0  # 0: 2 x nodes, as Maelstrom's lin-kv default concurrency
    keys_n: int = 3
    client_timeout_s: float = 1.0
    think_s: float = 0.05  # mean pause between a client's ops
    heal_bound_s: float = 20.0  # liveness: a write must succeed within this after healing
    lin_time_limit_s: float = 20.0
    check_lin: bool = True

    def replay_command(self) -> str:
        cmd = ["python", "-m", "rast_maelstrom.sim", "--seed", str(self.seed), "--steps", str(self.steps)]
        if self.nodes != 3:
            cmd += ["--nodes", str(self.nodes)]
        for b in self.bugs:
            cmd += ["--bug", b]
        if self.faults is not None:
            cmd += ["--faults", self.faults.describe()]
        if self.node_argv:
            cmd += ["--node-args", " ".join(self.node_argv)]
        if self.client_timeout_s != SimConfig.client_timeout_s:
            cmd += ["--client-timeout-s", f"{self.client_timeout_s:g}"]
        return shlex.join(cmd)


@dataclass
class RunResult:
    seed: int
    steps: int
    sim_s: float
    faults: dict[str, int]
    ops: dict[str, int]
    lin: Any  # "valid?" of the linearizability check (True / "unknown"; False raises)
    trace_hash: str
    max_term: int
    committed: int
    wall_s: float
    mix: str
    heal_s: float = 0.0  # simulated seconds from healing to the first acknowledged probe write
    extra: dict = field(default_factory=dict)


class SimTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class NodeLoop:
    """The loop one node incarnation sees: the simulator's clock and heap."""

    __slots__ = ("sim", "slot", "inc", "readers")

    def __init__(self, sim: "Simulation", slot: int, inc: int) -> None:
        self.sim = sim
        self.slot = slot
        self.inc = inc
        self.readers: dict[int, Callable[[], None]] = {}

    def clock(self) -> float:
        return self.sim.slots[self.slot].node_time(self.sim.now)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> SimTimer:
        t = SimTimer()
        sim = self.sim
        at = sim.slots[self.slot].sim_time(deadline)
        sim._push(max(at, sim.now), K_TIMER, self.slot, self.inc, (t, callback))
        return t

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> SimTimer:
        return self.call_at(self.clock() + delay_s, callback)  # (in the node's clock, like call_at)

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self.readers[fd] = callback

    def remove_reader(self, fd: int) -> None:
        self.readers.pop(fd, None)


class _TappedKV(kv_mod.KVStore):
    """The real state machine, reporting each client request it executes (not answered from the
    session table) with the log index it executes at: the exactly-once invariant."""

    __slots__ = ("on_effect", "index", "indexes", "violation")

    def apply(self, command: bytes) -> Any:
        # The node applies each committed entry once, in order (SimNode._apply hands us their
        # indexes), also after a snapshot moved the applied index forward.
        self.index = next(self.indexes)
        result = super().apply(command)
        if self.violation is not None:  # (apply catches what it raises: carried out here)
            raise self.violation
        return result

    def _effect(self, cmd: Any) -> None:
        if cmd.src is None:
            return
        try:
            self.on_effect(self.index, cmd.src, cmd.msg_id)
        except Violation as v:
            self.violation = v

    def _write(self, cmd: Any) -> Any:
        self._effect(cmd)
        return super()._write(cmd)

    def _cas(self, cmd: Any) -> Any:
        self._effect(cmd)
        return super()._cas(cmd)


class SimNode(node_mod.Node):
    """The real Node, with read-only taps for the invariants: entries handed to storage (log
    matching), entries applied (state machine safety, acknowledgements), snapshots taken,
    installed or loaded (snapshot safety) and client requests executed by the state machine
    (exactly once)."""

    def __init__(self, *a: Any, invariants: Invariants, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._inv = invariants
        self._applied_seen = 0
        tapped = _TappedKV(dedup=self.kv.dedup)
        tapped.index = 0
        tapped.indexes = iter(())
        tapped.violation = None
        tapped.on_effect = lambda index, src, msg_id: invariants.on_effect(self.node_id, index, src, msg_id)
        self.kv = self.state.kv = tapped  # snapshots restore into it too

    def _open_storage(self) -> None:
        super()._open_storage()
        raft = self.raft
        self._inv.conf_reset(self.node_id, raft)
        self._applied_seen = raft.applied_index
        if raft.snapshot is not None:
            self._inv.check_snapshot(f"{self.node_id} (loaded at restart)", raft.snapshot.index,
                                     dict(self.kv.items()))
        ready = raft.ready
        inv = self._inv
        nid = self.node_id

        def tapped_ready() -> Any:
            waiting = raft.pending_reads  # (ready() replaces the list when it serves or queues them)
            rd = ready()
            if rd.entries:
                inv.on_entries(nid, raft, rd.entries_start, rd.entries)
            if rd.read_states and waiting:
                # Reads served in this very ready() without a round: from the lease (or alone).
                now = {id(c) for c in waiting}
                served = [index for ctx, index in rd.read_states if id(ctx) in now]
                if served:
                    inv.on_read_without_round(nid, raft, min(served), len(served))
            return rd

        raft.ready = tapped_ready  # instance attribute: the Raft class is untouched

    def _apply(self, committed: list) -> None:
        self._applied_seen = self._inv.on_apply(self, committed, self._applied_seen)
        self.kv.indexes = iter([index for index, _, _ in committed])  # for the exactly-once tap
        super()._apply(committed)

    def _maybe_snapshot(self, force: bool = False) -> None:
        before = self.snapshots.child, self._snapshot_job
        super()._maybe_snapshot(force)
        child, job = self.snapshots.child, self._snapshot_job
        if job is not None and job is not before[1]:  # frozen now, serialized in slices later
            self._inv.check_snapshot(f"{self.node_id} (frozen)", job.writer.meta[0], dict(job.base))
        elif child is not None and child is not before[0]:
            self._inv.check_snapshot(f"{self.node_id} (taken)", child[0], dict(self.kv.data))

    def _snapshot_slice(self) -> None:
        job = self._snapshot_job
        was = job.serializing
        super()._snapshot_slice()
        top = self.kv.data
        if was and not job.serializing and type(top) is kv_mod.Overlay and (top or type(top.base) is kv_mod.Overlay):
            self._inv.overlay_snapshots += 1  # writes were applied while it was being serialized

    def _on_snapshot_taken(self) -> None:
        child = self.snapshots.child
        super()._on_snapshot_taken()
        if child is not None:  # what the file holds, as written slice by slice while writes went on
            sections = decode_snapshot(child[3], "sim")[3]
            got = kv_mod.KVStore()
            got.restore(sections["kv"])
            self._inv.check_snapshot(f"{self.node_id} (file)", child[0], got.data)

    def _on_snapshot_chunks(self, chunks: list) -> None:
        installed = self.snapshots_installed
        super()._on_snapshot_chunks(chunks)
        if self.snapshots_installed != installed:
            self._inv.installs += 1
            raft = self.raft
            self._inv.conf_reset(self.node_id, raft)
            self._applied_seen = raft.applied_index
            self._inv.check_snapshot(f"{self.node_id} (installed)", raft.snapshot.index, dict(self.kv.items()))


class _Slot:
    """One node position: its disk persists, its incarnations come and go."""

    __slots__ = ("index", "id", "node", "inc", "loop", "writer", "disk", "commit_seen",
                 "paused_until", "slow_until", "down_gen", "led_term", "disk_fail", "clock_rate",
                 "clock_base", "snap_term", "init_members", "conf_seen", "base_rate")

    def __init__(self, index: int, node_id: str) -> None:
        self.index = index
        self.id = node_id
        self.node: SimNode | None = None
        self.inc = 0
        self.loop: NodeLoop | None = None
        self.writer: SimWriter | None = None
        self.disk = SimDisk()
        self.commit_seen = 0
        self.paused_until = 0.0
        self.slow_until = 0.0
        self.down_gen = 0
        self.led_term = 0  # last term this node was seen leading (targeted nemesis)
        self.disk_fail = False  # the next fsync of this incarnation fails
        self.clock_rate = 1.0  # the node's clock runs at this rate of simulated time
        self.clock_base = (0.0, 0.0)  # (simulated s, node clock s) when the rate last changed
        self.base_rate = 1.0  # the rate outside stale episodes (FaultMix.drift)
        self.snap_term = (0, 0)  # (index, term) of the disk's newest snapshot, once read
        self.init_members: list[str] | None = None  # init's members after a wipe (the current ones)
        self.conf_seen: Any = None  # the configuration in force at its last step (while it is down)

    def node_time(self, sim_s: float) -> float:
        base_sim, base_node = self.clock_base
        return base_node + (sim_s - base_sim) * self.clock_rate

    def sim_time(self, node_s: float) -> float:
        """The first simulated time at which the node's clock reads `node_s` or later."""
        base_sim, base_node = self.clock_base
        t = base_sim + (node_s - base_node) / self.clock_rate
        for _ in range(CLOCK_ROUNDING_STEPS_MAX):  # rounding must not wake a timer before its time
            if self.node_time(t) >= node_s:
                return t
            t = math.nextafter(t, math.inf)
        step = math.ulp(t)
        while self.node_time(t) < node_s:  # (a rate below 1 can swallow single ulps: double the step)
            t += step
            step *= 2
        return t

    def set_clock_rate(self, sim_s: float, rate: float) -> None:
        assert rate > 0
        self.clock_base = (sim_s, self.node_time(sim_s))
        self.clock_rate = rate


def _peek(line: bytes) -> tuple[str, str]:
    """src and dest of a line the node's codec wrote ({"src":..,"dest":..,"body":..})."""
    if line.startswith(b'{"src":"'):
        p = line.find(b'","dest":"', 8)
        if p > 0:
            q = line.find(b'"', p + 10)
            if q > 0:
                return line[8:p].decode(), line[p + 10:q].decode()
    msg = orjson.loads(line)
    return msg["src"], msg["dest"]


class Simulation:
    def __init__(self, cfg: SimConfig) -> None:
        for b in cfg.bugs:
            assert b in BUGS, f"unknown bug {b!r} (known: {sorted(BUGS)})"
        assert 1 <= cfg.nodes <= 9 and cfg.steps >= 0
        self.cfg = cfg
        self.rng = rng = random.Random(cfg.seed)
        self.mix = cfg.faults if cfg.faults is not None else FaultMix.swarm(rng)
        node_argv = cfg.node_argv
        if cfg.faults is None and not node_argv:
            node_argv = rng.choice(NODE_PROFILES)
        if cfg.faults is None:  # (drawn apart, like the snapshot thresholds: the main stream stays)
            self.mix.member = random.Random(f"member/{cfg.seed}").random() < MEMBER_P
        n = cfg.nodes
        k = random.Random(f"members/{cfg.seed}").choice(range(n // 2 + 1, n + 1)) if n >= 3 else n
        self.initial_members = [f"n{i}" for i in range(k)] if self.mix.member else None
        self._reconf_sent: tuple[int, float, tuple[str, ...]] | None = None  # (msg_id, at, target)
        self._reconf_msg_id = 0
        self._decided_checked = 0
        if cfg.faults is None:  # (drawn apart too)
            lease_rng = random.Random(f"lease/{cfg.seed}")
            self.mix.lease = lease_rng.random() < LEASE_P
            self.mix.drift = lease_rng.choice(DRIFT_CHOICES)
        # Lease mode in every run with pauses, whatever the mix says, unless the node flags opt out.
        self.lease = "--no-lease-reads" not in node_argv and (
            self.mix.lease or self.mix.pause or "--lease-reads" in node_argv)
        if "--lease-reads" not in node_argv and "--no-lease-reads" not in node_argv:
            node_argv = (*node_argv, "--lease-reads" if self.lease else "--no-lease-reads")
        if not self.lease:
            self.mix.drift = 0.0  # (the clocks only matter to leases: ReadIndex runs keep rate 1)
        if "--snapshot-entries" not in node_argv and "--no-snapshots" not in node_argv:
            # (drawn apart, so the seed's main random stream, and its faults, stay as they were)
            pick = random.Random(f"snapshot-entries/{cfg.seed}").choice(SNAPSHOT_ENTRIES_CHOICES)
            node_argv = (*node_argv, "--snapshot-entries", str(pick))
        # How a snapshot is sliced (small: each spans many events, with writes applied between
        # slices into the overlay) and how soon an idle node's next slice comes; a tenth of the
        # seeds take them the other way (--snapshot-fork). Drawn apart, as the thresholds are.
        srng = random.Random(f"snapshot-slices/{cfg.seed}")
        self.snapshot_slices = {"slice_items": srng.choice((2, 8, 64)), "slice_bytes": srng.choice((64, 1024, 1 << 20)),
                                "slice_results": srng.choice((4, 32, 256)), "fold_items": srng.choice((2, 16, 256))}
        self.snapshot_pass_s = srng.uniform(0.0001, 0.002)
        if srng.random() < SNAPSHOT_FORK_P and "--snapshot-fork" not in node_argv:
            node_argv = (*node_argv, "--snapshot-fork")
        # overlay layers of a few writes each in most seeds (drawn last: the draws above stay as they were)
        self.snapshot_slices["layer_items"] = srng.choice((1, 4, kv_mod.LAYER_ITEMS_MAX))
        self.node_argv = node_argv
        self.now = 0.0
        self.heap: list[tuple] = []
        self.in_flight = 0  # K_MSG events in the heap
        self._seq = 0
        self.step = 0
        self.node_ids = [f"n{i}" for i in range(cfg.nodes)]
        self.slots = [_Slot(i, nid) for i, nid in enumerate(self.node_ids)]
        self.slot_of = {s.id: s.index for s in self.slots}
        if self.mix.drift:
            drift_rng = random.Random(f"drift/{cfg.seed}")
            for s in self.slots:
                s.base_rate = 1.0 + drift_rng.uniform(-self.mix.drift, self.mix.drift)
                s.set_clock_rate(0.0, s.base_rate)
        self.inv = Invariants()
        self.blocked: set[tuple[str, str]] = set()  # (src, dest): dest drops what src sends
        self.partition_shape: str | None = None
        self.stale_slot: int | None = None  # the cut-off leader of a stale-read episode
        self.faults_on = True
        self.faults: Counter[str] = Counter()
        self.fault_log: deque[str] = deque(maxlen=FAULT_LOG_MAX)
        self.trace: deque[tuple] = deque(maxlen=TRACE_TAIL_MAX)
        self._hash = hashlib.blake2b(digest_size=16)
        # Per-seed environment.
        self.net_delay_s = (rng.uniform(0.0001, 0.001), rng.uniform(0.002, 0.01))  # (min, max)
        self.fsync_s = (rng.uniform(0.0002, 0.001), rng.uniform(0.002, 0.008))
        base = node_mod.parse_args(["--data-dir", "/rast-sim-nonexistent", *node_argv])
        base.bugs = frozenset(cfg.bugs)
        self.base_args = base
        kinds = [k for k in FAULT_KINDS if getattr(self.mix, k)]
        self.fault_kinds = kinds
        self.workload = Workload(
            rng, self.node_ids, cfg.clients_n or 2 * cfg.nodes, cfg.keys_n, cfg.client_timeout_s,
            cfg.think_s, self._client_send, self._after, lambda: self.now,
        )

    # ------------------------------------------------------------------ event heap

    def _push(self, t: float, kind: int, slot: int, inc: int, arg: Any) -> None:
        if kind == K_MSG:
            self.in_flight += 1
            if self.in_flight > IN_FLIGHT_MAX:
                raise Violation("bounded traffic", f"over {IN_FLIGHT_MAX} messages in flight at once: "
                                "the nodes amplify traffic (a message storm)")
        self._seq += 1
        heapq.heappush(self.heap, (t, self._seq, kind, slot, inc, arg))

    def _after(self, delay_s: float, fn: Callable[[Any], None], arg: Any) -> None:
        self._push(self.now + delay_s, K_CALL, -1, 0, (fn, arg))

    def _exec(self, ev: tuple) -> bool:
        """Run one event; False if it was discarded (dead incarnation, cancelled, deferred)."""
        t, _, kind, slot, inc, arg = ev
        if slot < 0:
            fn, a = arg
            self._hash.update(_PACK.pack(kind, -1, 0, t))
            self.trace.append((self.step, t, kind, "sim", fn, a))
            fn(a)
            return True
        s = self.slots[slot]
        node = s.node
        if node is None or (inc and inc != s.inc):
            return False
        if s.paused_until > t:
            self._push(s.paused_until, kind, slot, inc, arg)
            return False
        if kind == K_MSG:
            src, line = arg
            if src[0] != "c" and (src, s.id) in self.blocked:
                self.faults["partition-drop"] += 1
                return False
            self._hash.update(_PACK.pack(kind, slot, s.inc, t))
            self._hash.update(line)
            self.trace.append((self.step, t, kind, s.id, src, line))
            node.on_line(line)
        elif kind == K_TIMER:
            timer, cb = arg
            if timer.cancelled:
                return False
            self._hash.update(_PACK.pack(kind, slot, s.inc, t))
            cb()  # ticks stay out of the trace tail: too many, too little to say
        elif kind == K_SNAP:
            snaps = arg
            self._hash.update(_PACK.pack(kind, slot, s.inc, t))
            if snaps.child is None:
                return False
            snaps.complete_take()
            self.faults["snapshot"] += 1
            self.trace.append((self.step, t, kind, s.id, None, snaps.child[0]))
            s.loop.readers[snaps.fd]()
        else:
            writer = arg
            self._hash.update(_PACK.pack(kind, slot, s.inc, t))
            if s.disk_fail and self.faults_on:  # the node sees the error and exits: _node_exited
                s.disk_fail = False
                err = writer.fail_fsync(self.rng)
                self.faults["diskfail"] += 1
                self.fault_log.append(f"{self.now:.4f} disk of {s.id} fails: {err}")
            else:
                writer.complete_fsync()
            self.trace.append((self.step, t, kind, s.id, None, writer.error or writer.durable_id))
            s.loop.readers[writer.wake_fd]()
        node.flush()
        raft = node.raft
        s.commit_seen = self.inv.after_step(s.id, raft, s.commit_seen)
        s.conf_seen = raft.conf
        if self.inv.decided_max != self._decided_checked:
            self._decided_checked = self.inv.decided_max
            self._check_electable()
        if raft.role is Role.LEADER and raft.current_term != s.led_term:
            s.led_term = raft.current_term
            if self.mix.leader and self.faults_on and self.rng.random() < self.mix.leader:
                self._after(self.rng.uniform(0, LEADER_HIT_DELAY_MAX_S), self._hit_leader,
                            (slot, s.inc, raft.current_term))
        return True

    def _run(self, steps_max: int, t_end: float, done: Callable[[], bool] | None = None) -> int:
        heap = self.heap
        pop = heapq.heappop
        n = 0
        window_t = self.now
        window_end = self.step + STORM_WINDOW_STEPS
        while n < steps_max and heap:
            if self.step >= window_end:
                if self.now - window_t < STORM_WINDOW_MIN_S:
                    raise Violation("bounded traffic", f"{STORM_WINDOW_STEPS} events in "
                                    f"{(self.now - window_t) * 1000:.1f} ms of simulated time: a message "
                                    f"storm ({self.in_flight} messages in flight)")
                window_t = self.now
                window_end = self.step + STORM_WINDOW_STEPS
            if heap[0][0] > t_end or (done is not None and done()):
                break
            ev = pop(heap)
            assert ev[0] >= self.now, "the clock went backwards"
            self.now = ev[0]
            if ev[2] == K_MSG:
                self.in_flight -= 1
            try:
                executed = self._exec(ev)
            except SystemExit as e:  # a node stopped itself
                executed = self._node_exited(ev[3], e)
            if executed:
                n += 1
                self.step += 1
        return n

    # ------------------------------------------------------------------ nodes

    def _boot(self, slot: int, truncated_bytes: int = 0) -> None:
        s = self.slots[slot]
        assert s.node is None
        s.inc += 1
        inc = s.inc
        args = copy.copy(self.base_args)
        args.seed = self.rng.randrange(1 << 62)
        loop = NodeLoop(self, slot, inc)

        def start_fsync(w: SimWriter) -> None:
            self._push(self.now + self._fsync_delay(s), K_DURABLE, slot, inc, w)

        def start_take(snaps: Any, _fd: int) -> None:
            self._push(self.now + self.rng.uniform(*SNAPSHOT_WRITE_S), K_SNAP, slot, inc, snaps)

        def write_out(data: bytes) -> None:
            self._route(data)

        # As in production, the writer itself sends what waited on a batch once it is durable.
        storage = open_storage_factory(s.disk, 1000 + slot, start_fsync, truncated_bytes, start_take,
                                       write_out)

        node = SimNode(args, write_out, loop, storage, invariants=self.inv)
        node.snapshot_slices, node.snapshot_pass_s = self.snapshot_slices, self.snapshot_pass_s
        s.node, s.loop, s.commit_seen = node, loop, 0
        init = {"src": "cinit", "dest": s.id,
                "body": {"type": "init", "msg_id": 1, "node_id": s.id, "node_ids": self.node_ids}}
        if self.initial_members is not None:
            init["body"]["members"] = s.init_members or self.initial_members
        try:
            node.on_line(orjson.dumps(init))
        except SystemExit as e:  # it refused to start
            self._refused(s, e)
            return
        s.writer = node.writer
        node.flush()
        s.commit_seen = self.inv.after_step(s.id, node.raft, 0)

    def _boot_call(self, arg: tuple[int, int, int]) -> None:
        slot, gen, truncated = arg
        s = self.slots[slot]
        if s.node is None and s.down_gen == gen:
            self.fault_log.append(f"{self.now:.4f} restart {s.id}")
            self._boot(slot, truncated)

    def _crash(self, s: _Slot, kept_in_flight: bool = False) -> None:
        """End an incarnation (a kill, or the node's own exit after a disk failure)."""
        mix = self.mix
        if s.node.snapshots is not None and (s.node._snapshot_job is not None or s.node.snapshots.child):
            self.faults["snapmid"] += 1
        keep = kept_in_flight or (mix.torn and self.rng.random() < 0.5)
        tear = keep and self.rng.random() < 0.5
        truncated = s.writer.crash(self.rng, keep, tear)
        if truncated:
            self.faults["torn"] += 1
        if mix.torn and s.disk.snapshots and self.rng.random() < SNAPSHOT_DAMAGE_P:
            self._damage_snapshot(s)
        s.node = None
        s.loop = None
        s.writer = None
        s.paused_until = 0.0
        s.disk_fail = False
        s.down_gen += 1
        what = "exit 70 after a disk failure" if kept_in_flight else "crash"
        if not kept_in_flight:
            self.faults["crash"] += 1
        self.fault_log.append(f"{self.now:.4f} {what} {s.id}" + (" (torn tail)" if truncated else ""))
        if self.faults_on:
            down = self.rng.uniform(RESTART_DELAY_MIN_S, max(RESTART_DELAY_MIN_S, mix.down))
        else:
            down = 0.0
        self._after(down, self._boot_call, (s.index, s.down_gen, truncated))

    def _refused(self, s: _Slot, e: SystemExit) -> None:
        """A node refused to start: legal only with exit 65 over a snapshot file the simulator
        damaged whose loss the WAL cannot make up. The operator restores the file; it restarts."""
        if e.code != node_mod.EXIT_DAMAGED or not s.disk.damaged:
            raise Violation("clean exit", f"{s.id} refused to start with status {e.code!r} "
                            "without a damaged file")
        self.faults["refused"] += 1
        s.disk.snapshots.update(s.disk.damaged)
        s.disk.damaged.clear()
        s.node = s.loop = s.writer = None
        s.down_gen += 1
        self.fault_log.append(f"{self.now:.4f} {s.id} refused to start (exit 65); its snapshot restored")
        self._after(RESTART_DELAY_MIN_S, self._boot_call, (s.index, s.down_gen, 0))

    def _damage_snapshot(self, s: _Slot) -> None:
        """Flip one byte of the newest snapshot file (kept whole in `damaged` for the repair)."""
        disk = s.disk
        index = disk.snapshot_index()
        blob = disk.snapshots[index]
        disk.damaged.setdefault(index, blob)
        pos = self.rng.randrange(len(blob))
        disk.snapshots[index] = blob[:pos] + bytes([blob[pos] ^ 0x10]) + blob[pos + 1:]
        self.faults["snapcorrupt"] += 1
        self.fault_log.append(f"{self.now:.4f} snapshot {index} of {s.id} damaged at byte {pos}")

    def _node_exited(self, slot: int, e: SystemExit) -> bool:
        """A node raised SystemExit: legal only as exit 70 after its disk failed."""
        s = self.slots[slot]
        if e.code != node_mod.EXIT_DISK_FAILED or s.writer is None or s.writer.error is None:
            raise Violation("clean exit", f"{s.id} exited with status {e.code!r} without a disk failure")
        self._crash(s, kept_in_flight=True)  # the process is gone; what it wrote may have landed
        return True

    def _fsync_delay(self, s: _Slot) -> float:
        lo, hi = self.fsync_s
        d = self.rng.uniform(lo, hi)
        if s.slow_until > self.now:
            d *= self.rng.uniform(20, 100)
        return d

    # ------------------------------------------------------------------ network

    def _net_delay(self) -> float:
        lo, hi = self.net_delay_s
        return self.rng.uniform(lo, hi)

    def _client_delay(self) -> float:
        return self.rng.uniform(0.0, self.net_delay_s[0])

    def _route(self, data: bytes) -> None:
        rng = self.rng
        mix = self.mix
        now = self.now
        for line in data.split(b"\n"):
            if not line:
                continue
            src, dest = _peek(line)
            if dest[0] == "c":
                self._after(self._client_delay(), self._deliver_reply, (dest, line))
                continue
            ds = self.slot_of.get(dest)
            if ds is None:
                continue
            if src[0] == "c":  # a forwarded client request: never lost or duplicated
                self._push(now + self._client_delay(), K_MSG, ds, 0, (src, line))
                continue
            if mix.drop and self.faults_on and rng.random() < mix.drop:
                self.faults["drop"] += 1
                continue
            copies = 1
            if mix.dup and self.faults_on and rng.random() < mix.dup:
                self.faults["dup"] += 1
                copies = 2
            for _ in range(copies):
                d = self._net_delay()
                if mix.reorder and self.faults_on and rng.random() < mix.reorder:
                    self.faults["delay"] += 1
                    d += rng.uniform(0.02, 0.5)
                self._push(now + d, K_MSG, ds, 0, (src, line))

    def _client_send(self, cid: str, node_id: str, line: bytes) -> None:
        self._push(self.now + self._client_delay(), K_MSG, self.slot_of[node_id], 0, (cid, line))
        if self.mix.cdup and self.faults_on and self.rng.random() < self.mix.cdup:
            # A retrying client (or a duplicating proxy): the same request, same msg_id, to any node
            # up to CLIENT_DUP_DELAY_MAX_S later, whatever happened to the first copy.
            self.faults["client-dup"] += 1
            self.workload.note_copy(cid, line)
            target = self.rng.choice(self.node_ids)
            if target != node_id:
                msg = orjson.loads(line)
                msg["dest"] = target
                line = orjson.dumps(msg) + b"\n"
            self._push(self.now + self.rng.uniform(0, CLIENT_DUP_DELAY_MAX_S), K_MSG, self.slot_of[target],
                       0, (cid, line))

    def _deliver_reply(self, arg: tuple[str, bytes]) -> None:
        cid, line = arg
        self._hash.update(line)
        if cid == "cm":
            self._on_reconf_reply(orjson.loads(line)["body"])
            return
        self.workload.on_reply(cid, line)

    # ------------------------------------------------------------------ membership

    def _fault_member(self) -> None:
        """Ask a random node to change the voters: add or remove one or two nodes."""
        sent = self._reconf_sent
        if sent is not None and self.now - sent[1] < RECONF_TIMEOUT_S:
            return  # one change at a time (another one would get 11)
        rng = self.rng
        leaders = [s for s in self.slots if s.node is not None and s.node.raft.role is Role.LEADER]
        live = [s for s in self.slots if s.node is not None]
        if not leaders or not live:
            return
        lead = max(leaders, key=lambda x: x.node.raft.current_term)
        raft = lead.node.raft
        conf = raft.committed_conf()
        voters = set(conf.voters)
        spares = [n for n in self.node_ids if n not in voters]
        least = len(self.initial_members) // 2 + 1
        k = 2 if rng.random() < MEMBER_TWO_P else 1
        if spares and (len(voters) - k < least or rng.random() < 0.5):
            added = rng.sample(spares, min(k, len(spares)))
            target = voters | set(added)
            in_force = set(raft.conf.members())
            for x in added:
                if x not in in_force and rng.random() < MEMBER_WIPE_P:
                    self._wipe(self.slots[self.slot_of[x]], sorted(voters))
        elif len(voters) - k >= least:
            if lead.id in voters and rng.random() < MEMBER_LEADER_P:
                gone = [lead.id, *rng.sample(sorted(voters - {lead.id}), k - 1)]
                self.faults["member-leader"] += 1
            else:
                others = sorted(voters - {lead.id})
                gone = rng.sample(others, min(k, len(others)))
            target = voters - set(gone)
        else:
            return
        dest = rng.choice(live).id
        self._reconf_msg_id += 1
        tgt = tuple(sorted(target))
        self._reconf_sent = (self._reconf_msg_id, self.now, tgt)
        self.faults["member"] += 1
        self.fault_log.append(f"{self.now:.4f} reconfigure via {dest}: {' '.join(sorted(voters))} -> {' '.join(tgt)}")
        body = {"type": "reconfigure", "msg_id": self._reconf_msg_id, "members": list(tgt)}
        line = orjson.dumps({"src": "cm", "dest": dest, "body": body}) + b"\n"
        self._push(self.now + self._client_delay(), K_MSG, self.slot_of[dest], 0, ("cm", line))

    def _on_reconf_reply(self, body: dict) -> None:
        sent = self._reconf_sent
        if sent is None or body.get("in_reply_to") != sent[0]:
            return  # (late)
        self._reconf_sent = None
        if body.get("type") == "reconfigure_ok":
            if tuple(body.get("members", ())) != sent[2]:
                raise Violation("membership", f"reconfigure_ok names {body.get('members')}, "
                                f"the request asked for {list(sent[2])}")
            self.faults["member-ok"] += 1
            self.fault_log.append(f"{self.now:.4f} reconfigured: {' '.join(sent[2])}")
        elif body.get("type") != "error" or body.get("code") not in (11, 13):
            raise Violation("membership", f"unexpected answer to reconfigure: {body}")

    def _wipe(self, s: _Slot, members: list[str]) -> None:
        """A replaced machine: the node stops, its data directory is emptied, it starts again with
        init's `members` naming the configuration it rejoins (so it starts as a spare)."""
        s.init_members = members
        s.conf_seen = Membership.of(members)  # (what it starts with: the model's view until it runs)
        s.node = s.loop = s.writer = None
        s.paused_until = 0.0
        s.disk_fail = False
        s.down_gen += 1
        s.disk = SimDisk()
        s.snap_term = (0, 0)
        self.faults["wipe"] += 1
        self.fault_log.append(f"{self.now:.4f} wipe {s.id}")
        self._after(RESTART_DELAY_MIN_S, self._boot_call, (s.index, s.down_gen, 0))

    def _check_electable(self) -> None:
        """Every committed entry is on enough voters of every configuration that could still elect
        a leader: no node lacking the newest decided entry D, in the configuration in force at it,
        could collect the votes it needs from voters that lack D too and whose logs are no more up
        to date than its own (voters holding D always refuse it, Raft §5.4.1). That is "every
        quorum of such a configuration holds D", tightened where logs already rule a candidate
        out (a stale configuration one step back may have a quorum without D whose members all
        hold newer logs than any candidate among them). Down nodes vote with their durable log."""
        d = self.inv.decided_max
        term = self.inv.decided[d][0]
        views: dict[str, tuple[bool, int, int, Any]] = {}
        for s in self.slots:
            if s.node is not None and s.node.raft is not None:
                r = s.node.raft
                lg = r.log
                views[s.id] = (lg.first_index - 1 >= d or lg.term_at(d) == term, lg.last_index(),
                               lg.last_term(), r.conf)
                continue
            disk = s.disk
            snap = disk.snapshot_index()
            n = len(disk.entries)
            end = disk.first_index - 1 + n
            if n and end >= snap:
                last, last_term = end, disk.entries[-1][0]
            else:
                last, last_term = snap, self._snapshot_term(s, snap)
                if last_term is None:
                    continue  # (a damaged file: no view; it refuses or falls back when it starts)
            k = d - disk.first_index
            holds = snap >= d or (0 <= k < n and disk.entries[k][0] == term)
            views[s.id] = (holds, last, last_term, None)
        confs = {s.id: (s.node.raft.conf if s.node is not None and s.node.raft is not None else s.conf_seen)
                 for s in self.slots}
        for nid, (holds, li, lt, conf) in views.items():
            if holds or conf is None or nid not in conf.voters:
                continue
            # (a voter votes only while it is a voter in the configuration in force at it)
            grants = [v for v in conf.voters if v in views and not views[v][0]
                      and (lt > views[v][2] or (lt == views[v][2] and li >= views[v][1]))
                      and (confs[v] is None or v in confs[v].voters)]
            need = len(conf.voters) if li == 0 and self.initial_members is not None else conf.quorum
            if len(grants) >= need:
                raise Violation("committed entries survive elections",
                                f"entry {d} (term {term}) is committed, but {nid} lacks it and could be "
                                f"elected in its configuration {list(conf.voters)}: {grants} would vote for "
                                f"it (they lack it too, and its log ends at {li}/{lt})")

    def _snapshot_term(self, s: _Slot, index: int) -> int | None:
        if index == 0:
            return 0
        if s.snap_term[0] != index:
            try:
                s.snap_term = (index, decode_snapshot(s.disk.snapshots[index], "sim")[1])
            except Exception:
                return None
        return s.snap_term[1]

    # ------------------------------------------------------------------ nemesis

    def _nemesis(self, _: Any) -> None:
        if not self.faults_on:
            return
        if self.fault_kinds:
            getattr(self, "_fault_" + self.rng.choice(self.fault_kinds))()
        self._after(self.rng.expovariate(1.0 / self.mix.interval), self._nemesis, None)

    def _fault_partition(self) -> None:
        if self.blocked or self.partition_shape:
            self.blocked = set()
            self.partition_shape = None
            self.fault_log.append(f"{self.now:.4f} heal")
            return
        rng = self.rng
        ids = list(self.node_ids)
        rng.shuffle(ids)
        n = len(ids)
        shapes = [s for s in PARTITION_SHAPES if n >= 3 and (s != "minority-third" or n >= 4)]
        if not shapes:
            return
        shape = rng.choice(shapes)
        blocked: set[tuple[str, str]] = set()

        def cut(a: list[str], b: list[str]) -> None:
            for x in a:
                for y in b:
                    blocked.add((x, y))
                    blocked.add((y, x))

        if shape == "one":
            cut(ids[:1], ids[1:])
        elif shape == "majority":
            cut(ids[: n // 2], ids[n // 2:])
        elif shape == "minority-third":
            k = (n - 1) // 3
            cut(ids[:k], ids[k:])
        elif shape == "ring":  # each node hears only from a majority-sized window around it
            q = n // 2 + 1
            for i, dest in enumerate(ids):
                window = {ids[(i - (q - 1) // 2 + j) % n] for j in range(q)}
                for src in ids:
                    if src not in window:
                        blocked.add((src, dest))
        elif shape == "bridge":  # two sides that only a bridge node hears both of
            rest = ids[1:]
            cut(rest[: len(rest) // 2], rest[len(rest) // 2:])
        else:  # oneway: every directed link cut with probability 0.3 (asymmetric cuts)
            for src in ids:
                for dest in ids:
                    if src != dest and rng.random() < 0.3:
                        blocked.add((src, dest))
        self.blocked = blocked
        self.partition_shape = shape
        self.faults["partition"] += 1
        self.fault_log.append(f"{self.now:.4f} partition {shape}: " + " ".join(
            f"{d}x{s}" for s, d in sorted(blocked)))

    def _fault_stale(self) -> None:
        """The stale-read scenario: cut the leader (and, in a cluster of 5 or more, enough followers
        to keep it in a minority that still answers it) off from the majority; its clients still
        reach it, and its clock slows to `mix.clock`, so it keeps believing it leads while the
        majority elects a new leader and commits writes. The next call ends the episode."""
        if self.stale_slot is not None:
            s = self.slots[self.stale_slot]
            term = s.node.raft.current_term if s.node is not None else 0
            if s.node is not None and s.node.raft.role is Role.LEADER and any(
                    x.node is not None and x.node.raft.role is Role.LEADER and x.node.raft.current_term > term
                    for x in self.slots):
                self.faults["stale-overlap"] += 1  # two leaders at once: the window stale reads need
            s.set_clock_rate(self.now, s.base_rate)
            self.stale_slot = None
            self.blocked = set()
            self.partition_shape = None
            self.fault_log.append(f"{self.now:.4f} heal (end of {s.id}'s stale episode)")
            return
        leaders = [s for s in self.slots if s.node is not None and s.paused_until <= self.now
                   and s.node.raft.role is Role.LEADER]
        if not leaders or len(self.slots) < 3:
            return
        s = max(leaders, key=lambda x: x.node.raft.current_term)
        others = [x for x in self.node_ids if x != s.id]
        self.rng.shuffle(others)
        k = (len(self.node_ids) - 1) // 2 - 1  # followers kept with the old leader
        minority, majority = [s.id, *others[:k]], others[k:]
        self.blocked = {(a, b) for a in minority for b in majority} | {(b, a) for a in minority for b in majority}
        self.partition_shape = "stale"
        self.stale_slot = s.index
        s.set_clock_rate(self.now, self.mix.clock)
        self.faults["stale"] += 1
        self.fault_log.append(f"{self.now:.4f} stale episode: leader {s.id} of term "
                              f"{s.node.raft.current_term} cut off with {' '.join(minority[1:]) or 'nobody'}, "
                              f"its clock at {self.mix.clock:g}x")

    def _hit_leader(self, arg: tuple[int, int, int]) -> None:
        """Targeted nemesis: the leader elected a moment ago is crashed, paused or cut off."""
        slot, inc, term = arg
        s = self.slots[slot]
        if not self.faults_on or s.node is None or s.inc != inc or s.paused_until > self.now:
            return
        self.faults["leader-hit"] += 1
        self.fault_log.append(f"{self.now:.4f} hit {s.id}, leader of term {term}")
        kinds = [k for k in ("crash", "pause", "partition") if getattr(self.mix, k)] or ["partition"]
        kind = self.rng.choice(kinds)
        if kind == "crash":
            self._crash(s)
        elif kind == "pause":
            self._pause(s)
        else:
            others = [x for x in self.node_ids if x != s.id]
            self.blocked = {(s.id, x) for x in others} | {(x, s.id) for x in others}
            self.partition_shape = "one"
            self.faults["partition"] += 1
            self.fault_log.append(f"{self.now:.4f} partition one: {s.id} isolated")

    def _fault_crash(self) -> None:
        live = [s for s in self.slots if s.node is not None]
        if self.mix.torn:  # aim at a node whose fsync is in progress: that is where tails tear
            syncing = [s for s in live if s.writer is not None and s.writer.unsynced_records()]
            live = syncing or live
        if live:
            self._crash(self.rng.choice(live))

    def _fault_pause(self) -> None:
        live = [s for s in self.slots if s.node is not None and s.paused_until <= self.now]
        if live:
            self._pause(self.rng.choice(live))

    def _pause(self, s: _Slot) -> None:
        s.paused_until = self.now + self.rng.uniform(0.02, max(0.02, self.mix.down))
        self.faults["pause"] += 1
        self.fault_log.append(f"{self.now:.4f} pause {s.id} until {s.paused_until:.4f}")

    def _fault_diskfail(self) -> None:
        live = [s for s in self.slots if s.node is not None and not s.disk_fail]
        syncing = [s for s in live if s.writer is not None and s.writer.unsynced_records()]
        live = syncing or live
        if live:
            s = self.rng.choice(live)
            s.disk_fail = True  # its next fsync completion fails instead
            self.fault_log.append(f"{self.now:.4f} disk of {s.id} will fail")

    def _fault_slowdisk(self) -> None:
        s = self.rng.choice(self.slots)
        s.slow_until = self.now + self.rng.uniform(0.1, max(0.1, self.mix.down))
        self.faults["slowdisk"] += 1
        self.fault_log.append(f"{self.now:.4f} slow disk {s.id} until {s.slow_until:.4f}")

    def _heal(self) -> None:
        self.faults_on = False
        self.blocked = set()
        self.partition_shape = None
        self.fault_log.append(f"{self.now:.4f} heal all (healed phase)")
        self.stale_slot = None
        for s in self.slots:
            s.slow_until = 0.0
            s.disk_fail = False
            if s.clock_rate != s.base_rate:
                s.set_clock_rate(self.now, s.base_rate)
            if s.node is None:
                self._boot_call((s.index, s.down_gen, 0))

    # ------------------------------------------------------------------ run

    def run(self) -> RunResult:
        cfg = self.cfg
        wall0 = time.monotonic()
        heal_s = 0.0
        try:
            for s in self.slots:
                self._after(self.rng.uniform(0, BOOT_SPREAD_S), self._boot, s.index)
            self.workload.start(BOOT_SPREAD_S)
            if self.fault_kinds:
                self._after(self.rng.expovariate(1.0 / self.mix.interval), self._nemesis, None)
            self._run(cfg.steps, float("inf"))
            self._heal()
            t_heal = self.now
            self.workload.start_probe()
            self._run(HEAL_STEPS_MAX, t_heal + cfg.heal_bound_s, lambda: self.workload.probe_ok)
            if not self.workload.probe_ok:
                raise Violation("liveness", f"no write acknowledged in {self.now - t_heal:.2f} s of "
                                f"simulated time after healing (bound {cfg.heal_bound_s:g} s, "
                                f"{self.workload.probe_attempts} attempts); {self._roles()}")
            heal_s = self.now - t_heal
            self.workload.issuing = False
            self._run(HEAL_STEPS_MAX, self.now + cfg.client_timeout_s + DRAIN_EXTRA_S,
                      self.workload.idle)
            assert self.workload.idle(), "a client op outlived its timeout"
            self.inv.final({s.id: s.node.raft for s in self.slots if s.node is not None})
            lin: Any = None
            if cfg.check_lin:
                res = check_independent(self.workload.history, time_limit_s=cfg.lin_time_limit_s)
                lin = res["valid?"]
                if lin is False:
                    raise Violation("linearizability", self._lin_text(res))
        except Violation as v:
            raise SimFailure(v.invariant, self._report(v.invariant, v.text), cfg.replay_command()) from None
        except (AssertionError, Exception) as e:  # the core's own asserts, or a node crash
            name = "core assertion" if isinstance(e, AssertionError) else "exception"
            import traceback
            tb = "".join(traceback.format_exception(e)[-6:])
            raise SimFailure(name, self._report(name, f"{e!r}\n{tb}"), cfg.replay_command()) from None
        if self.inv.installs:
            self.faults["install"] = self.inv.installs
        if self.inv.lease_reads:
            self.faults["lease-read"] = self.inv.lease_reads
        if self.inv.overlay_snapshots:
            self.faults["overlay"] = self.inv.overlay_snapshots
        return RunResult(
            seed=cfg.seed, steps=self.step, sim_s=self.now, faults=dict(self.faults),
            ops=dict(self.workload.counts), lin=lin, trace_hash=self._hash.hexdigest(),
            max_term=max(self.inv.leaders, default=0), committed=self.inv.decided_max,
            wall_s=time.monotonic() - wall0, heal_s=heal_s,
            mix=self.mix.describe() + (f" [{' '.join(self.node_argv)}]" if self.node_argv else ""),
            extra={"acked": len(self.inv.acked), "leader_terms": len(self.inv.leaders),
                   "snapshots_checked": self.inv.snapshots_checked,
                   "installed": sum(s.node.snapshots_installed for s in self.slots if s.node is not None)},
        )

    # ------------------------------------------------------------------ reporting

    def _roles(self) -> str:
        out = []
        for s in self.slots:
            if s.node is None:
                out.append(f"{s.id}: down")
                continue
            r = s.node.raft
            out.append(f"{s.id}: {r.role.value} term {r.current_term} leader {r.leader_id} "
                       f"last {r.log.last_index()} commit {r.commit_index}"
                       + (" (paused)" if s.paused_until > self.now else ""))
        return "; ".join(out)

    def _lin_text(self, res: dict) -> str:
        lines = []
        for k in res["failures"]:
            r = res["results"][k]
            if r.get("valid?") is False:
                lines.append(f"key {k}: {r.get('explanation', '')}")
                lines.append(f"  op: {r.get('op')}")
                lines.append(f"  previous ok: {r.get('previous-ok')}")
        return "\n".join(lines)

    def _report(self, invariant: str, text: str) -> str:
        lines = [
            f"SIMULATION FAILED: {invariant} at step {self.step}, simulated time {self.now:.4f} s",
            text,
            f"seed {self.cfg.seed}, nodes {self.cfg.nodes}, bugs {list(self.cfg.bugs) or 'none'}, "
            f"faults {self.mix.describe()}, node args {' '.join(self.node_argv) or 'default'}",
            f"nodes now: {self._roles()}",
            "recent faults:",
            *(f"  {f}" for f in self.fault_log),
            f"last {len(self.trace)} events:",
        ]
        for step, t, kind, who, a, b in self.trace:
            if kind == K_MSG:
                lines.append(f"  #{step} {t:.4f} {who} <- {bytes(b[:200]).decode(errors='replace').rstrip()}")
            elif kind == K_TIMER:
                lines.append(f"  #{step} {t:.4f} {who} tick")
            elif kind == K_SNAP:
                lines.append(f"  #{step} {t:.4f} {who} snapshot through {b} durable")
            elif kind == K_DURABLE:
                lines.append(f"  #{step} {t:.4f} {who} fsync failed: {b}" if isinstance(b, OSError) else
                             f"  #{step} {t:.4f} {who} fsync done (durable through batch {b})")
            else:
                desc = getattr(a, "__name__", str(a)).lstrip("_")
                b = getattr(b, "cid", b)
                arg = b if not isinstance(b, tuple) else tuple(
                    x.decode(errors="replace")[:200].rstrip() if isinstance(x, bytes) else getattr(x, "cid", x) for x in b)
                lines.append(f"  #{step} {t:.4f} {desc} {arg}")
        lines.append(f"replay: {self.cfg.replay_command()}")
        return "\n".join(lines)


def run_seed(cfg: SimConfig) -> RunResult:
    """Run one seed; raises SimFailure (whose message ends with the replay command)."""
    return Simulation(cfg).run()
