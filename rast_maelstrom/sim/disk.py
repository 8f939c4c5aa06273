"""Simulated disk: one node's data directory across crashes, and the WalWriter stand-in over it.

Owns: `SimDisk`, the durable state of one node's WAL (hard state and log, as `WriteAheadLog.recover`
would return it), and `SimWriter`, the object `Node` talks to in place of a `WalWriter`
(`submit`, `drain_wake`, `error`, `wake_fd`, `close`).

Semantics mirrored from runtime/wal.py:
- `submit` validates a batch with the real WAL's `LogicalLog` (terms never go backwards,
  one vote per term, entry terms non-decreasing and <= current_term, start index within the log)
  and returns ids 1, 2, 3, ...; a broken invariant raises AssertionError in the caller, as the real
  one does.
- group commit: one fsync takes every batch queued when it starts; batches become durable strictly
  in submit order; when an fsync completes the simulator calls the node's durable callback and
  `drain_wake()` returns the new durable id.
- with `send` (the production node's mode): a batch may carry `after` bytes (acknowledgements,
  votes), passed to `send` when the fsync covering the batch completes, in batch order, never after
  a failed fsync or a crash; `wake=False` is accepted (the simulator wakes the node after every
  fsync anyway, which the node must tolerate).
- a batch's records are a hard state record (if any) then its entries; an entry at an index inside
  the log replaces the suffix from there (replay rule of the real WAL).
- crash (`SimWriter.crash`): batches not yet durable are lost. Optionally (`keep_unsynced`) a random
  prefix of the records of the fsync in progress survives (they were written but not yet fsynced),
  and optionally (`tear`) the record after that prefix is torn, which recovery reports as
  `truncated_bytes > 0`. Durable records are never lost: that is the contract Raft relies on.
- disk failure (`SimWriter.fail_fsync`): the write or fsync in progress fails with an OSError
  (EIO, ENOSPC). Nothing more becomes durable, `error` is set (the node stops with exit 70 when it
  sees it: at its wake, or at its next submit, which raises `WalWriterError` as the real one does)
  and the simulator then ends the incarnation as a crash that keeps a prefix of what was in flight.

Snapshots (`SimSnapshots`, the node's SnapshotStore stand-in): the node hands a snapshot's parts
over slice by slice (`begin`, `SimSnapshotWriter`), over as many events as its state needs, while
it keeps applying writes; after the last part the file becomes durable when the simulator
completes it (a crash before then, mid-slices or mid-write, loses it, as a killed writer's temp
file is swept). With `--snapshot-fork`, `take` serializes the state at once (the fork's
copy-on-write image) and completes the same way. Received chunks go to a
partial buffer the incarnation loses on a crash; a complete, checked one is durable at once (the
node fsyncs it in its loop). The bytes are the real file format (runtime/snapshot.py), so damage is
judged by the real reader. `compact(index)` deletes durable entries through `index` and asserts a
durable snapshot covers them (a WAL must never forget what no file holds); `reset` is the reset
record (an installed snapshot replaced the log). Recovery skips what the snapshot covers and drops
what follows an entry at its index with another term, as the real WAL does.

Invariant: `durable_id` only grows and never passes the last submitted id.
May not touch: the node, the clock, the network. The simulator decides when an fsync completes.
"""

from __future__ import annotations

import errno
import os
import random
from typing import Any, Callable, Sequence

from ..runtime.records import DamagedFile
from ..runtime.snapshot import (SNAPSHOTS_KEPT_MAX, SnapshotEncoder, SnapshotFile, decode_snapshot,
                                encode_snapshot)
from ..runtime.wal import LogicalLog, Recovered, WalWriterError

PENDING_BATCHES_MAX = 4096  # same bound as WalWriter: more would block the real node's loop
TORN_BYTES_MAX = 64  # size of the half-written record a tear leaves (recovery cuts it)

# A record: ("h", term, vote) or ("e", index, term, data).
Record = tuple


class SimDisk:
    """The durable contents of one node's data directory (survives crashes)."""

    __slots__ = ("current_term", "voted_for", "entries", "first_index", "opens", "snapshots", "damaged")

    def __init__(self) -> None:
        self.current_term = 0
        self.voted_for: str | None = None
        self.first_index = 1  # index of entries[0] (after compaction or a reset)
        self.entries: list[tuple[int, bytes]] = []
        self.opens = 0
        self.snapshots: dict[int, bytes] = {}  # durable snapshot files: last index -> file bytes
        self.damaged: dict[int, bytes] = {}  # the sim damaged these files: index -> original bytes

    def snapshot_index(self) -> int:
        return max(self.snapshots, default=0)

    def apply(self, rec: Record) -> None:
        kind = rec[0]
        if kind == "h":
            _, term, vote = rec
            assert term >= self.current_term, "durable term going backwards"
            self.current_term, self.voted_for = term, vote
        elif kind == "e":
            _, index, term, data = rec
            if index < self.first_index:
                return  # compacted already: a durable snapshot holds it
            k = index - self.first_index
            if k > len(self.entries):  # after a restart on a snapshot the log never reached
                assert index - 1 <= self.snapshot_index(), f"gap in the durable log at {index}"
                self.entries, self.first_index, k = [], index, 0
            del self.entries[k:]
            self.entries.append((term, data))
        elif kind == "r":  # reset: the log restarts at `first` (an installed snapshot before it)
            _, first, _term = rec
            assert first - 1 <= self.snapshot_index(), "a reset past every durable snapshot"
            self.entries, self.first_index = [], first
        else:  # "p": compaction through `index`
            _, index = rec
            assert index <= self.snapshot_index(), (
                f"the WAL drops entries through {index}, but the newest durable snapshot ends at "
                f"{self.snapshot_index()}: acknowledged writes would be in no file")
            k = index + 1 - self.first_index
            if k > 0:
                del self.entries[:k]
                self.first_index = index + 1

    def recover(self, truncated_bytes: int, snap_index: int = 0, snap_term: int = 0) -> Recovered:
        """What the real WAL's recover(snap_index, snap_term) returns; DamagedFile for a gap."""
        if self.first_index > snap_index + 1:
            raise DamagedFile("sim-wal", 0, f"the WAL starts at {self.first_index}, no snapshot covers "
                              f"before it (newest usable: through {snap_index})")
        k = snap_index + 1 - self.first_index
        ents = self.entries[k:]
        if k > 0 and len(self.entries) >= k and self.entries[k - 1][0] != snap_term:
            ents = []  # after an entry the installed snapshot replaced
        return Recovered(self.current_term, self.voted_for, snap_index + 1, list(ents), truncated_bytes)


class SimWriter:
    """WalWriter stand-in. `start_fsync(writer)` is the simulator's hook: it schedules
    `complete_fsync()` (and the node's wake) at a time of its choosing."""

    def __init__(self, disk: SimDisk, wake_fd: int, start_fsync: Callable[["SimWriter"], None],
                 send: Callable[[bytes], None] | None = None) -> None:
        self.disk = disk
        self.wake_fd = wake_fd
        self.error: BaseException | None = None
        self._start_fsync = start_fsync
        self._send = send
        self.sends_after = send is not None
        self._after: dict[int, bytes] = {}  # batch id -> bytes sent once it is durable
        self._next_id = 1
        self.durable_id = 0
        self._queued: list[tuple[int, list[Record]]] = []
        self._syncing: list[tuple[int, list[Record]]] | None = None
        # Logical mirror of what has been submitted (validation, as WriteAheadLog._encode).
        self._state = LogicalLog(disk.current_term, disk.voted_for)
        self.snapshots: SimSnapshots | None = None  # set by open_storage_factory
        self.fsync_count = 0
        self.closed = False

    # -------------------------------------------------------------- the WalWriter interface

    def submit(
        self,
        hard_state: tuple[int, str | None] | None,
        start_index: int | None,
        entries: Sequence[tuple[int, bytes]],
        after: bytes = b"",
        wake: bool = True,
    ) -> int:
        assert not self.closed, "submit after close"
        assert not after or self._send is not None, "after bytes need a send callable"
        if self.error is not None:
            raise WalWriterError("WAL writer failed; the node must stop") from self.error
        self._state.apply(hard_state, start_index, entries)  # the real WAL's append rules
        recs: list[Record] = []
        if hard_state is not None:
            recs.append(("h", hard_state[0], hard_state[1]))
        for k, (term, data) in enumerate(entries):
            recs.append(("e", start_index + k, term, data))
        bid = self._next_id
        self._next_id += 1
        assert bid - 1 - self.durable_id <= PENDING_BATCHES_MAX, "WAL back-pressure would block the node"
        self._queued.append((bid, recs))
        if after:
            self._after[bid] = after
        if self._syncing is None:
            self._begin()
        return bid

    def reset(self, first_index: int, base_term: int) -> int:
        self._state.reset(first_index, base_term)
        return self._submit_records([("r", first_index, base_term)])

    def compact(self, index: int) -> int:
        return self._submit_records([("p", index)])

    def _submit_records(self, recs: list[Record]) -> int:
        assert not self.closed
        if self.error is not None:
            raise WalWriterError("WAL writer failed; the node must stop") from self.error
        bid = self._next_id
        self._next_id += 1
        self._queued.append((bid, recs))
        if self._syncing is None:
            self._begin()
        return bid

    def drain_wake(self) -> int:
        return self.durable_id

    def close(self) -> None:
        self.closed = True

    # -------------------------------------------------------------- the simulator's side

    def _begin(self) -> None:
        self._syncing, self._queued = self._queued, []
        self._start_fsync(self)

    def complete_fsync(self) -> None:
        """The fsync in progress finished: its batches are durable."""
        group = self._syncing
        assert group, "fsync completion with nothing in progress"
        apply = self.disk.apply
        for _, recs in group:
            for rec in recs:
                apply(rec)
        last = group[-1][0]
        assert last == self.durable_id + len(group), "batches out of order"
        self.durable_id = last
        self.fsync_count += 1
        self._syncing = None
        if self._after:
            sent = b"".join([self._after.pop(bid, b"") for bid, _ in group])
            if sent:
                self._send(sent)  # type: ignore[misc]
        if self._queued:
            self._begin()

    def fail_fsync(self, rng: random.Random) -> OSError:
        """The write or fsync in progress fails: nothing more becomes durable. Returns the error."""
        assert self._syncing, "fsync failure with nothing in progress"
        code = rng.choice((errno.EIO, errno.ENOSPC))
        self.error = OSError(code, os.strerror(code) + " (simulated)")
        return self.error

    def unsynced_records(self) -> int:
        return sum(len(r) for _, r in self._syncing or ()) + sum(len(r) for _, r in self._queued)

    def crash(self, rng: random.Random, keep_unsynced: bool, tear: bool) -> int:
        """The process dies. Returns the torn bytes recovery will cut (0 if none)."""
        self.closed = True
        truncated = 0
        if self._syncing and keep_unsynced:
            recs = [r for _, rs in self._syncing for r in rs]
            k = rng.randint(0, len(recs))
            for rec in recs[:k]:
                self.disk.apply(rec)
            if tear and k < len(recs):
                truncated = rng.randint(1, TORN_BYTES_MAX)
        self._syncing = None
        self._queued = []
        self._after.clear()
        return truncated


class SimSnapshots:
    """SnapshotStore stand-in over a SimDisk (see the module docstring)."""

    def __init__(self, disk: SimDisk, start_take: Callable[["SimSnapshots", int], None]) -> None:
        self.disk = disk
        self._start_take = start_take  # the simulator completes the take later (complete_take)
        self.child: tuple[int, int, tuple[str, ...], bytes] | None = None
        self._done: SnapshotFile | None = None
        self.partial = bytearray()
        self.fd = 0
        self.writing: SimSnapshotWriter | None = None  # a snapshot still being handed its parts

    def path(self, index: int) -> str:
        return f"sim-snap-{index}"

    def indexes(self) -> list[int]:
        return sorted(self.disk.snapshots, reverse=True)

    def load(self, index: int) -> tuple[SnapshotFile, dict[str, bytes]]:
        blob = self.disk.snapshots[index]
        i, term, voters, sections, learners = decode_snapshot(blob, self.path(index))
        return SnapshotFile(index, term, voters, len(blob), self.path(index), learners), sections

    def reader(self, snap: SnapshotFile) -> Callable[[int, int], bytes]:
        blob = self.disk.snapshots.get(snap.index) or self.disk.damaged[snap.index]
        return lambda offset, n: blob[offset:offset + n]

    def take(self, index: int, term: int, voters: tuple[str, ...], produce: Callable[[], Any],
             learners: tuple[str, ...] = ()) -> int:
        assert self.child is None
        out: list[bytes] = []
        encode_snapshot(index, term, voters, produce(), out.extend, learners)  # the state as of now
        self.child = (index, term, voters, b"".join(out), learners)
        self._start_take(self, self.fd)
        return self.fd

    def begin(self, index: int, term: int, voters: tuple[str, ...], learners: tuple[str, ...] = ()
              ) -> "SimSnapshotWriter":
        assert self.child is None
        self.writing = SimSnapshotWriter(self, index, term, voters, learners)
        return self.writing

    def complete_take(self) -> None:
        """The simulated child finished: its file is durable."""
        index, term, voters, blob, learners = self.child  # type: ignore[misc]
        self.disk.snapshots[index] = blob
        self._done = SnapshotFile(index, term, voters, len(blob), self.path(index), learners)

    def taken(self) -> SnapshotFile:
        done, self._done, self.child = self._done, None, None
        assert done is not None
        return done

    def receive(self, offset: int, data: bytes) -> None:
        if offset == 0:
            self.partial = bytearray()
        assert len(self.partial) == offset, "a chunk written out of order"
        self.partial += data

    def finish_receive(self, index: int, term: int) -> tuple[SnapshotFile, dict[str, bytes]] | None:
        blob, self.partial = bytes(self.partial), bytearray()
        try:
            i, t, voters, sections, learners = decode_snapshot(blob, self.path(index))
        except DamagedFile:
            return None
        if (i, t) != (index, term):
            return None
        self.disk.snapshots[index] = blob
        return SnapshotFile(index, term, voters, len(blob), self.path(index), learners), sections

    def prune(self, newest: int) -> None:
        older = sorted((i for i in self.disk.snapshots if i < newest), reverse=True)
        for i in older[SNAPSHOTS_KEPT_MAX - 1:]:
            del self.disk.snapshots[i]

    def close(self) -> None:
        self.child = self.writing = None


class SimSnapshotWriter:
    """SnapshotWriter stand-in: frames the parts with the real encoder as they come (its temp file
    dies with the incarnation); once finished, it is the simulated child whose file becomes durable
    at a later event (complete_take)."""

    def __init__(self, snaps: SimSnapshots, index: int, term: int, voters: tuple[str, ...],
                 learners: tuple[str, ...]) -> None:
        self.snaps = snaps
        self.meta = (index, term, voters, learners)
        self.enc = SnapshotEncoder(index, term, voters, learners)
        self.fd = snaps.fd

    def put(self, name: str, part: bytes) -> None:
        self.enc.add(name, part)

    def finish(self) -> None:
        snaps = self.snaps
        assert snaps.writing is self and snaps.child is None
        self.enc.finish()
        index, term, voters, learners = self.meta
        snaps.writing = None
        snaps.child = (index, term, voters, b"".join(self.enc.take()), learners)
        snaps._start_take(snaps, snaps.fd)


def open_storage_factory(
    disk: SimDisk, wake_fd: int, start_fsync: Callable[[SimWriter], None], truncated_bytes: int,
    start_take: Callable[[SimSnapshots, int], None] = lambda s, fd: None,
    send: Callable[[bytes], None] | None = None,
) -> Callable[[str, bool], tuple[Recovered, Any]]:
    """The `open_storage(dir, fsync)` a Node incarnation gets: recovers from `disk` (the newest
    snapshot that loads, then the log after it, by the node's own rules)."""
    from ..node import recover_with_snapshots

    def open_storage(_dir: str, _fsync: bool) -> tuple[Recovered, SimWriter]:
        disk.opens += 1
        snapshots = SimSnapshots(disk, start_take)
        snapshots.fd = wake_fd + 100
        rec = recover_with_snapshots(snapshots, lambda i, t: disk.recover(truncated_bytes, i, t))
        writer = SimWriter(disk, wake_fd, start_fsync, send)
        writer._state = LogicalLog(rec.current_term, rec.voted_for, rec.first_index,
                                   [t for t, _ in rec.entries],
                                   rec.snapshot.term if rec.snapshot is not None else 0)
        writer.snapshots = snapshots
        return rec, writer

    return open_storage
