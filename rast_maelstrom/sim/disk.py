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

Invariant: `durable_id` only grows and never passes the last submitted id.
May not touch: the node, the clock, the network. The simulator decides when an fsync completes.
"""

from __future__ import annotations

import errno
import os
import random
from typing import Any, Callable, Sequence

from ..runtime.wal import LogicalLog, Recovered, WalWriterError

PENDING_BATCHES_MAX = 4096  # same bound as WalWriter: more would block the real node's loop
TORN_BYTES_MAX = 64  # size of the half-written record a tear leaves (recovery cuts it)

# A record: ("h", term, vote) or ("e", index, term, data).
Record = tuple


class SimDisk:
    """The durable contents of one node's data directory (survives crashes)."""

    __slots__ = ("current_term", "voted_for", "entries", "opens")

    def __init__(self) -> None:
        self.current_term = 0
        self.voted_for: str | None = None
        self.entries: list[tuple[int, bytes]] = []  # index i is entries[i - 1]
        self.opens = 0

    def apply(self, rec: Record) -> None:
        if rec[0] == "h":
            _, term, vote = rec
            assert term >= self.current_term, "durable term going backwards"
            self.current_term, self.voted_for = term, vote
        else:
            _, index, term, data = rec
            assert 1 <= index <= len(self.entries) + 1, f"gap in the durable log at {index}"
            del self.entries[index - 1:]
            self.entries.append((term, data))

    def recover(self, truncated_bytes: int) -> Recovered:
        return Recovered(self.current_term, self.voted_for, 1, list(self.entries), truncated_bytes)


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
        self._state = LogicalLog(disk.current_term, disk.voted_for, 1, [t for t, _ in disk.entries])
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


def open_storage_factory(
    disk: SimDisk, wake_fd: int, start_fsync: Callable[[SimWriter], None], truncated_bytes: int,
    send: Callable[[bytes], None] | None = None,
) -> Callable[[str, bool], tuple[Recovered, Any]]:
    """The `open_storage(dir, fsync)` a Node incarnation gets: recovers from `disk`."""

    def open_storage(_dir: str, _fsync: bool) -> tuple[Recovered, SimWriter]:
        disk.opens += 1
        rec = disk.recover(truncated_bytes)
        return rec, SimWriter(disk, wake_fd, start_fsync, send)

    return open_storage
