"""Durability ordering at the node glue (rast_maelstrom.node), deterministically.

The real `Node` runs over the simulator's disk (`sim.disk`): the test decides when each fsync
completes, and a crash loses every batch not yet fsynced. Every line the node writes is checked,
at the moment it leaves, against what that disk holds durably: no vote, no append acknowledgement,
no vote request of a candidate and no client reply may leave before the fsync that covers it, and
the leader may not count itself toward a commit ahead of its own fsync (Raft thesis §10.2.1: its
disk write runs in parallel with replication, it is not skipped).
"""

from __future__ import annotations

import heapq
import random
from typing import Any, Callable

import orjson
import pytest

from rast_maelstrom import node as node_mod
from rast_maelstrom.core import Role
from rast_maelstrom.sim.disk import SimDisk, SimWriter, open_storage_factory

IDS = ["n0", "n1", "n2"]
TICK_S = 0.01
ticks_max = 1000  # bound on ticks while waiting for an election


class Loop:
    """The loop a Node needs, on a clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.readers: dict[int, Callable[[], None]] = {}
        self._seq = 0

    def clock(self) -> float:
        return self.now

    def call_at(self, deadline: float, cb: Callable[[], None]) -> Any:
        self._seq += 1
        heapq.heappush(self.timers, (deadline, self._seq, cb))
        return None

    def call_later(self, delay_s: float, cb: Callable[[], None]) -> Any:
        return self.call_at(self.now + delay_s, cb)

    def add_reader(self, fd: int, cb: Callable[[], None]) -> None:
        self.readers[fd] = cb

    def remove_reader(self, fd: int) -> None:
        self.readers.pop(fd, None)


THREAD_SENDS = [False]


@pytest.fixture(autouse=True, params=[False, True], ids=["loop-sends", "writer-sends"])
def thread_sends(request: pytest.FixtureRequest) -> Any:
    THREAD_SENDS[0] = request.param
    yield request.param
    THREAD_SENDS[0] = False


class Rig:
    """One node, its disk, and a check of every output line against that disk."""

    def __init__(self, node_id: str, disk: SimDisk | None = None) -> None:
        self.id = node_id
        self.disk = disk or SimDisk()
        self.loop = Loop()
        self.syncing: list[SimWriter] = []
        self.sent: list[dict] = []
        self.violations: list[str] = []
        self.acked: dict[str, int] = {}  # peer -> highest match index it acknowledged to us
        args = node_mod.parse_args(["--data-dir", "/rast-test-nonexistent", "--seed", "7"])
        # Both ways what waits on a batch leaves: through the loop, or sent by the WAL writer
        # itself right after its fsync (production's path; see the `thread_sends` fixture).
        send = self._out if THREAD_SENDS[0] else None
        storage = open_storage_factory(self.disk, 901, self.syncing.append, 0, send=send)
        self.node = node_mod.Node(args, self._out, self.loop, storage)
        self.line({"src": "c0", "dest": node_id,
                   "body": {"type": "init", "msg_id": 1, "node_id": node_id, "node_ids": IDS}})

    # -------------------------------------------------------------- output, checked as it leaves

    def _out(self, data: bytes) -> None:
        for raw in data.splitlines():
            msg = orjson.loads(raw)
            self.sent.append(msg)
            why = self._uncovered(msg)
            if why:
                self.violations.append(f"{why}: {raw.decode()}")

    def _uncovered(self, msg: dict) -> str | None:
        """Why `msg` leaving now is not covered by the durable disk, or None."""
        body, d = msg["body"], self.disk
        t = body["type"]
        if t == "rvr" and body["g"] and not body["pre"]:
            if (d.current_term, d.voted_for) != (body["term"], msg["dest"]):
                return f"vote granted with durable (term, vote) = {(d.current_term, d.voted_for)}"
        elif t == "rv" and not body["pre"]:
            if (d.current_term, d.voted_for) != (body["term"], self.id):
                return f"vote requested with durable (term, vote) = {(d.current_term, d.voted_for)}"
        elif t == "aer" and body["ok"]:
            if len(d.entries) < body["m"] or d.current_term < body["term"]:
                return f"append acknowledged with {len(d.entries)} entries durable"
        elif t in ("write_ok", "cas_ok"):
            # Durable copies: ours, and what each follower acknowledged (it answers after its fsync).
            copies = sorted([len(d.entries), *self.acked.values()], reverse=True)
            quorum = len(IDS) // 2 + 1
            durable = copies[quorum - 1] if len(copies) >= quorum else 0
            if self.node.raft.commit_index > durable:
                return (f"client answered at commit {self.node.raft.commit_index} with a quorum "
                        f"durable only to {durable} ({len(d.entries)} entries durable here)")
        return None

    def take(self, typ: str | None = None) -> list[dict]:
        out = [m for m in self.sent if typ is None or m["body"]["type"] == typ]
        self.sent = [m for m in self.sent if m not in out]
        return out

    # -------------------------------------------------------------- input, time and the disk

    def line(self, msg: dict) -> None:
        self.node.on_line(orjson.dumps(msg))
        self.node.flush()

    def raft(self, src: str, body: dict) -> None:
        if body["type"] == "aer" and body["ok"]:
            self.acked[src] = max(self.acked.get(src, 0), body["m"])
        self.line({"src": src, "dest": self.id, "body": body})

    def fsync(self) -> int:
        """Complete every fsync in progress (and those that start behind it). Returns how many."""
        n = 0
        while self.syncing:
            w = self.syncing.pop(0)
            w.complete_fsync()
            self.loop.readers[w.wake_fd]()
            self.node.flush()
            n += 1
        return n

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.loop.now += TICK_S
            while self.loop.timers and self.loop.timers[0][0] <= self.loop.now:
                _, _, cb = heapq.heappop(self.loop.timers)
                cb()
            self.node.flush()

    def crash(self) -> "Rig":
        """The process dies: what was not fsynced is gone; a new incarnation recovers the disk."""
        w = self.node.writer
        w.crash(random.Random(0), keep_unsynced=False, tear=False)
        return Rig(self.id, self.disk)


def elect(rig: Rig) -> None:
    """Make rig's node leader of term 1: it campaigns on its own clock, the others vote for it."""
    for _ in range(ticks_max):
        rig.tick()
        if rig.take("rv"):
            break
    else:
        raise AssertionError("never asked for pre-votes")
    for peer in IDS[1:]:
        rig.raft(peer, {"type": "rvr", "term": 1, "g": True, "pre": True})
    rig.fsync()  # term 1 and the vote for itself become durable: only now may it ask for votes
    assert {m["dest"] for m in rig.take("rv")} == set(IDS[1:])
    rig.raft("n1", {"type": "rvr", "term": 1, "g": True, "pre": False})
    assert rig.node.raft.role is Role.LEADER


def test_a_follower_acknowledges_entries_only_once_they_are_fsynced() -> None:
    rig = Rig("n1")
    rig.raft("n0", {"type": "ae", "term": 1, "pi": 0, "pt": 0, "c": 0, "e": [[1, None], [1, ["w", 0, 1]]]})
    assert rig.take("aer") == []  # written, not yet durable: no acknowledgement
    assert rig.fsync() == 1
    assert [m["body"]["m"] for m in rig.take("aer")] == [2]
    # A second batch arrives while nothing more is durable; then the node crashes before its fsync.
    rig.raft("n0", {"type": "ae", "term": 1, "pi": 2, "pt": 1, "c": 2, "e": [[1, ["w", 0, 2]]]})
    assert rig.take("aer") == []
    again = rig.crash()
    assert again.node.raft.log.last_index() == 2  # the unacknowledged entry was lost, nothing else
    assert rig.violations == [] and again.violations == []


def test_a_vote_leaves_only_once_the_term_and_vote_are_fsynced() -> None:
    rig = Rig("n1")
    rig.raft("n2", {"type": "rv", "term": 3, "li": 0, "lt": 0, "pre": False})
    assert rig.take("rvr") == []
    rig.fsync()
    votes = rig.take("rvr")
    assert [(m["dest"], m["body"]["g"]) for m in votes] == [("n2", True)]
    # After a crash the vote is still there: the node refuses another candidate of that term.
    again = rig.crash()
    again.raft("n0", {"type": "rv", "term": 3, "li": 0, "lt": 0, "pre": False})
    again.fsync()
    assert [m["body"]["g"] for m in again.take("rvr")] == [False]
    assert rig.violations == [] and again.violations == []


def test_a_candidate_asks_for_votes_only_once_its_own_vote_is_fsynced() -> None:
    rig = Rig("n0")
    elect(rig)
    assert rig.violations == []


def test_the_leader_does_not_count_itself_before_its_own_fsync() -> None:
    """Quorum 2 of 3: one follower's acknowledgement plus the leader's own entry. A follower that
    has the entry durably is not enough while the leader's write is still in flight."""
    rig = Rig("n0")
    elect(rig)
    rig.fsync()  # the no-op of term 1
    rig.raft("n1", {"type": "aer", "term": 1, "ok": True, "m": 1})
    rig.line({"src": "c1", "dest": "n0", "body": {"type": "write", "msg_id": 5, "key": 0, "value": 3}})
    assert rig.take("ae")  # replicated before its own fsync completes (parallel disk write)
    rig.raft("n1", {"type": "aer", "term": 1, "ok": True, "m": 2})
    rig.tick()
    assert rig.take("write_ok") == [] and rig.node.raft.commit_index == 1
    rig.fsync()
    assert [m["body"]["in_reply_to"] for m in rig.take("write_ok")] == [5]
    assert rig.violations == []


def test_a_follower_whose_fsync_is_stuck_never_acknowledges() -> None:
    rig = Rig("n1")
    for k in range(5):
        rig.raft("n0", {"type": "ae", "term": 1, "pi": k, "pt": 1 if k else 0, "c": 0, "e": [[1, ["w", 0, k]]]})
        rig.tick()
    assert rig.take("aer") == [] and rig.violations == []
    rig.fsync()
    assert max(m["body"]["m"] for m in rig.take("aer")) == 5
