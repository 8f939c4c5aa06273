"""A small deterministic in-memory driver for the sans-IO Raft core (tests only).

Owns: a set of `Raft` objects, each with its own `random.Random(seed)`; one shared in-flight message
list (`inbox`, in send order) that tests deliver, drop, duplicate or reorder explicitly; a simulated
disk per node (`Disk`: the durable hard state and log) plus the queue of batches handed to storage but
not yet durable (`pending`). It honours the core's Ready contract exactly as the node glue does:
`messages` leave at once; `messages_after_persist` leave only when their batch (and every earlier one)
is durable, i.e. in `persist()`, which also calls `Raft.persisted()`.

Invariants: nothing happens unless a test asks for it (no hidden time or randomness); every loop is
bounded (`rounds_max`, `ticks_max`); applied entries are recorded per node and checked to be
consecutive; `restart()` rebuilds a node from its disk only, losing whatever was not persisted.

May not touch: the core's internals, beyond reading public state for assertions. A randomized
whole-cluster simulator lives elsewhere; this driver stays small.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from rast_maelstrom.core import (
    AppendEntries,
    AppendResponse,
    Config,
    Heartbeat,
    HeartbeatResponse,
    Message,
    Raft,
    Ready,
    RequestVote,
    Role,
    VoteResponse,
)

# The paper's algorithm without the thesis extensions: elections are fully under the test's control.
PAPER = Config(election_ticks=10, heartbeat_ticks=2, pre_vote=False, check_quorum=False)
rounds_max = 200  # stabilize(): ready/persist/deliver passes before giving up
ticks_max = 1000  # campaign(): ticks before giving up
entries_shown_max = 4  # fmt(): longer entry lists are abbreviated


@dataclass
class Disk:
    """What survived on one node's storage: the hard state and the log."""

    current_term: int = 0
    voted_for: str | None = None
    log: list[tuple[int, Any]] = field(default_factory=list)


@dataclass
class Batch:
    """One Ready's storage write, handed out and not yet durable, with the messages waiting on it."""

    hard_state: tuple[int, str | None] | None
    entries_start: int
    entries: list[tuple[int, Any]]
    after: list[Message]


def fmt(m: Message) -> str:
    """One message, short and readable, for golden transcripts."""
    head = f"{m.src}->{m.dest} t{m.term}"
    if isinstance(m, AppendEntries):
        ents = " ".join(f"{t}:{d}" for t, d in m.entries)
        if len(m.entries) > entries_shown_max:
            (t0, d0), (t1, d1) = m.entries[0], m.entries[-1]
            ents = f"{t0}:{d0} .. {t1}:{d1} ({len(m.entries)})"
        return f"{head} App prev={m.prev_index}/{m.prev_term} [{ents}] commit={m.commit_index}"
    if isinstance(m, AppendResponse):
        if m.success:
            return f"{head} AppResp ok match={m.match_index}"
        hint = f"conflict={m.conflict_index}/{m.conflict_term}"
        return f"{head} AppResp reject prev={m.reject_index} {hint}"
    if isinstance(m, Heartbeat):
        return f"{head} Beat commit={m.commit_index} seq={m.read_seq}"
    if isinstance(m, HeartbeatResponse):
        return f"{head} BeatResp seq={m.read_seq}"
    if isinstance(m, RequestVote):
        kind = "PreVote" if m.pre_vote else "Vote"
        return f"{head} {kind} last={m.last_log_index}/{m.last_log_term}"
    if isinstance(m, VoteResponse):
        kind = "PreVoteResp" if m.pre_vote else "VoteResp"
        return f"{head} {kind} {'granted' if m.granted else 'rejected'}"
    raise AssertionError(m)


class RaftNet:
    def __init__(
        self,
        ids: Iterable[str] = ("n1", "n2", "n3"),
        seed: int = 0,
        config: Config = PAPER,
        *,
        auto_persist: bool = True,
        members: list[str] | None = None,
    ) -> None:
        self.ids = list(ids)
        self.members = members  # the initial voters (None: every node)
        self.seed = seed
        self.config = config
        self.auto_persist = auto_persist  # stabilize() persists every node each pass
        self.disks = {i: Disk() for i in self.ids}
        self.nodes: dict[str, Raft] = {}
        self.pending: dict[str, deque[Batch]] = {i: deque() for i in self.ids}
        self.inbox: list[Message] = []
        self.cut: set[frozenset[str]] = set()  # pairs that cannot talk (messages dropped on delivery)
        self.applied: dict[str, list[tuple[int, int, Any]]] = {i: [] for i in self.ids}
        self.reads: dict[str, list[tuple[Any, int]]] = {i: [] for i in self.ids}
        self.dropped_reads: dict[str, list[Any]] = {i: [] for i in self.ids}
        self.trace: list[str] | None = None  # set to [] to record delivered messages
        self.sent: list[Message] | None = None  # set to [] to record every message that left a node
        self.leaders_by_term: dict[int, set[str]] = {}
        for i in self.ids:
            self.nodes[i] = Raft(i, self.ids, random.Random(f"{seed}/{i}"), config, members=members)

    def __getitem__(self, node_id: str) -> Raft:
        return self.nodes[node_id]

    # ------------------------------------------------------------------ the Ready contract

    def ready(self, node_id: str) -> Ready:
        """Take one Ready from a node: queue its storage write, send what may leave now, record output."""
        rd = self.nodes[node_id].ready()
        pending = self.pending[node_id]
        if rd.needs_persist():
            after = list(rd.messages_after_persist)
            pending.append(Batch(rd.hard_state, rd.entries_start, list(rd.entries), after))
        elif rd.messages_after_persist:
            if pending:  # must not overtake a write still in progress
                pending[-1].after.extend(rd.messages_after_persist)
            else:
                self._emit(rd.messages_after_persist)
        self._emit(rd.messages)
        applied = self.applied[node_id]
        for index, term, data in rd.committed:
            assert index == (applied[-1][0] + 1 if applied else 1), (node_id, index, applied[-1:])
            applied.append((index, term, data))
        self.reads[node_id].extend(rd.read_states)
        self.dropped_reads[node_id].extend(rd.dropped_reads)
        self._note_leader(node_id)
        return rd

    def ready_all(self) -> None:
        for i in self.ids:
            self.ready(i)

    def persist(self, node_id: str, batches: int | None = None) -> int:
        """Make the oldest `batches` (default: all) pending writes durable, in order. Returns how many."""
        pending = self.pending[node_id]
        disk = self.disks[node_id]
        n = 0
        while pending and (batches is None or n < batches):
            b = pending.popleft()
            if b.hard_state is not None:
                disk.current_term, disk.voted_for = b.hard_state
            if b.entries:
                del disk.log[b.entries_start - 1 :]
                assert len(disk.log) == b.entries_start - 1, "a gap in the stored log"
                disk.log.extend(b.entries)
                last = b.entries_start + len(b.entries) - 1
                self.nodes[node_id].persisted(last, b.entries[-1][0])
            self._emit(b.after)
            n += 1
        return n

    def persist_all(self) -> None:
        for i in self.ids:
            self.persist(i)

    # ------------------------------------------------------------------ the network

    def _emit(self, msgs: list[Message]) -> None:
        self.inbox.extend(msgs)
        if self.sent is not None:
            self.sent.extend(msgs)

    def take(self, pred: Callable[[Message], bool] = lambda m: True) -> list[Message]:
        """Remove and return the in-flight messages matching `pred` (to drop, reorder or replay them)."""
        taken = [m for m in self.inbox if pred(m)]
        self.inbox = [m for m in self.inbox if not pred(m)]
        return taken

    def step(self, m: Message) -> bool:
        """Deliver one message now (dropped if its endpoints are cut). True if delivered."""
        if frozenset((m.src, m.dest)) in self.cut:
            return False
        if self.trace is not None:
            self.trace.append(fmt(m))
        self.nodes[m.dest].step(m)
        self._note_leader(m.dest)
        return True

    def deliver(self, pred: Callable[[Message], bool] = lambda m: True) -> list[Message]:
        """Deliver every in-flight message matching `pred`, in send order. Returns those delivered."""
        return [m for m in self.take(pred) if self.step(m)]

    def isolate(self, node_id: str) -> None:
        for j in self.ids:
            if j != node_id:
                self.cut.add(frozenset((node_id, j)))

    def partition(self, *groups: Iterable[str]) -> None:
        """Only nodes in the same group can talk."""
        group_of = {i: k for k, g in enumerate(groups) for i in g}
        self.cut = {
            frozenset((a, b))
            for a in self.ids
            for b in self.ids
            if a != b and group_of.get(a) != group_of.get(b)
        }

    def heal(self) -> None:
        self.cut = set()

    # ------------------------------------------------------------------ time and whole-cluster helpers

    def tick(self, node_id: str, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[node_id].tick()
            self._note_leader(node_id)

    def tick_all(self, n: int = 1) -> None:
        for _ in range(n):
            for i in self.ids:
                self.tick(i)

    def stabilize(self, ids: Iterable[str] | None = None) -> None:
        """Ready (and, with auto_persist, persist) every node and deliver everything, until quiet."""
        ids = list(ids) if ids is not None else self.ids
        for _ in range(rounds_max):
            for i in ids:
                self.ready(i)
                if self.auto_persist:
                    self.persist(i)
            delivered = self.deliver(lambda m: m.dest in ids)
            self.take(lambda m: frozenset((m.src, m.dest)) in self.cut)  # lost in the partition
            if not delivered and not any(self.pending[i] for i in ids if self.auto_persist):
                for i in ids:  # one more ready: anything produced by the last deliveries
                    self.ready(i)
                if not any(m.dest in ids for m in self.inbox):
                    return
        raise AssertionError(f"no quiet after {rounds_max} rounds")

    def campaign(self, node_id: str) -> None:
        """Tick only `node_id` until it starts an election (the others' clocks stand still)."""
        node = self.nodes[node_id]
        for _ in range(ticks_max):
            if node.role is not Role.FOLLOWER:
                return
            self.tick(node_id)
        raise AssertionError(f"{node_id} never campaigned")

    def elect(self, node_id: str) -> None:
        """Make `node_id` campaign and run the cluster until quiet; it must then lead."""
        self.campaign(node_id)
        self.stabilize()
        assert self.nodes[node_id].role is Role.LEADER, (node_id, self.nodes[node_id].role)

    def propose(self, node_id: str, data: Any) -> tuple[int, int]:
        r = self.nodes[node_id].propose(data)
        assert r is not None, f"{node_id} is not leader"
        return r

    def load(self, node_id: str, current_term: int, voted_for: str | None, log: list[tuple[int, Any]]
             ) -> Raft:
        """Give `node_id` this durable state (as if it had it on disk) and restart it from there."""
        self.disks[node_id] = Disk(current_term, voted_for, list(log))
        return self.restart(node_id)

    def restart(self, node_id: str) -> Raft:
        """Crash `node_id` (unpersisted writes and unsent messages are lost) and recover from its disk."""
        disk = self.disks[node_id]
        self.pending[node_id].clear()  # messages already sent stay on the wire
        self.applied[node_id] = []  # the state machine is rebuilt by re-applying committed entries
        node = Raft(
            node_id, self.ids, random.Random(f"{self.seed}/{node_id}/restart"), self.config,
            current_term=disk.current_term, voted_for=disk.voted_for, entries=list(disk.log),
            members=self.members,
        )
        self.nodes[node_id] = node
        return node

    # ------------------------------------------------------------------ observations

    def leaders(self) -> list[str]:
        return [i for i in self.ids if self.nodes[i].role is Role.LEADER]

    def _note_leader(self, node_id: str) -> None:
        node = self.nodes[node_id]
        if node.role is Role.LEADER:
            self.leaders_by_term.setdefault(node.current_term, set()).add(node_id)

    def log_of(self, node_id: str) -> list[tuple[int, Any]]:
        log = self.nodes[node_id].log
        return log.entries(log.first_index, log.last_index())

    def datas(self, node_id: str) -> list[Any]:
        """The proposed data in a node's log, without the leaders' no-op entries."""
        return [d for _, d in self.log_of(node_id) if d is not None]
