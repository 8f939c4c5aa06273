"""Write-ahead log for the Rast node: Raft hard state and log entries in a data directory.

What it owns
    The files in one data directory: ``LOCK`` (an exclusive ``flock``, held while open) and the
    segment files ``wal-<first_index, 20 digits>.log``. Appends go to the newest segment; when it
    passes ``segment_bytes_max`` the next batch starts a new one (header, then a copy of the hard
    state), whose name is the index of the first entry it can hold. `compact(index)` deletes the
    segments a durable snapshot through ``index`` wholly covers; `reset(index, term)` records that
    an installed snapshot replaced the whole log (a reset record: the log restarts after it).
    `WalWriter` owns one background thread that does the writes and fsyncs off the event loop
    (group commit) and wakes the loop through a non-blocking pipe.

What it may not touch
    Raft itself (it knows terms and indices, never roles or messages), the event loop, stdio.
    Entry data are opaque: the bytes handed to `append` are the bytes on disk and the bytes
    `recover` returns; they are never decoded or re-encoded.

On-disk format (little-endian)
    A segment is a sequence of records::

        u32 payload_length | u32 crc32(payload) | payload

    ``payload_length`` counts the payload only and must lie in ``[9, record_bytes_max]``
    (the smallest payload is a hard state with no vote). The payload opens with a type byte:

    ====  ============  =========================================================
    type  name          body
    ====  ============  =========================================================
    0     header        8 bytes magic ``b"RASTWAL\\0"``, u32 format version (1),
                        u64 first_index. Always the first record of a segment.
    1     hard state    u64 current_term, then voted_for as utf-8 (empty = None)
    2     entry         u64 index, u64 term, then the entry's data bytes
    3     reset         u64 first_index, u64 term of the entry before it: an
                        installed snapshot replaced every entry; the log restarts
                        at first_index
    ====  ============  =========================================================

    One `append` call writes its hard state record (if any) before its entry records, so a
    torn tail can never leave an entry whose term is above the recovered current_term.
    Replay: the last hard state record wins; an entry at ``index <= last_index`` replaces the
    suffix from ``index`` on (a follower cutting a conflicting suffix); ``index > last + 1``
    is a gap, i.e. corruption.

Recovery
    ``recover(snapshot_index, snapshot_term)`` replays every segment in order, on top of the snapshot
    the caller loaded: entries it covers are skipped, and if the WAL's entry at the snapshot's index
    has another term, the entries after it are not the snapshot's future and are dropped (Raft §7;
    a crash between installing a snapshot and writing the reset record leaves that). A log that does
    not reach back to the snapshot (its first segment starts later, or a reset to a later index)
    is a gap that no file covers: `DamagedFile`. Only the newest segment may have a torn tail.
    Records are read in order by `records.RecordReader`, which applies the node's one damage rule
    (see runtime/records.py): only an incomplete final record, as a crash in the middle of a write
    leaves it, is a torn tail; the file is truncated to the end of the last good record, the
    truncation is fsynced, a WARNING names the offset and byte count, and what was good is
    returned. Anything else that is wrong (a checksum mismatch in a complete record, a length out
    of bounds, a record with an intact one after it, a record that makes no sense here: unknown
    type, index gap, terms going backwards) raises `DamagedFile` and leaves the file untouched:
    acknowledged records may lie behind the damage, and a node that forgot them could vote twice
    in one term or lose a committed write. A segment whose header is valid but foreign (wrong
    magic or version) raises `WalError`: that is not ours to read. When more than half of the
    segment is superseded (replaced suffixes, old hard states) and it is at least
    ``compact_bytes_min`` long, it is rewritten compactly and atomically (temp file, fsync,
    rename, fsync of the directory); if that rewrite fails before the rename (no space for the
    copy, say) the node carries on with the segment as it is.

Invariants (asserted on both sides of every disk write)
    * Before a write: the write offset equals the bytes known to be in the file; after it, the
      whole buffer was written and ``fstat`` agrees on the size.
    * `append` input: ``first_index <= start_index <= last_index + 1``; entry terms never
      decrease along the log and never exceed current_term (after this call's hard state);
      current_term never decreases; within one term voted_for only goes from None to a node.
    * `recover` output: entries contiguous from first_index, terms non-decreasing and
      ``<= current_term``.
    * After a failed write or fsync the log is poisoned: nothing is retried (after a failed
      fsync the kernel may have dropped the dirty pages; only a restart + recovery can tell
      what is durable).

Durability
    Every call that changes a file goes through the injectable `fileio.FileIO` layer (`io=`), so
    tests can make any write or fsync fail. ``sync()`` uses ``fdatasync``. ``fsync=False`` skips
    every fsync (file and directory): for tests and benchmarks only.

Threads
    `WriteAheadLog` is not thread-safe. Once a `WalWriter` wraps it, only `WalWriter.submit`
    (caller's thread: validation and encoding) and the writer thread (write and fsync) touch it,
    on disjoint state.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import queue
import re
import struct
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .fileio import REAL, FileIO
from .records import RECORD_BYTES_MAX, REC, DamagedFile, RecordReader, frame

__all__ = [
    "DamagedFile",
    "Recovered",
    "WalError",
    "WalLockedError",
    "WalWriterError",
    "WriteAheadLog",
    "WalWriter",
    "record_bytes_max",
    "segment_name",
]

log = logging.getLogger(__name__)

record_bytes_max = RECORD_BYTES_MAX  # largest payload accepted; anything larger is damage
write_buffer_bytes_max = 4 * 1024 * 1024  # append() writes out (no fsync) beyond this
compact_bytes_min = 1024 * 1024  # segments smaller than this are never rewritten on recovery
# A segment past this size is closed and the next batch starts one: recovery replays at most this
# much beyond what the newest snapshot covers, plus the snapshot threshold.
segment_bytes_max = 256 * 1024  # (restart replays what the snapshot covers of a segment too: keep it short)
writer_close_timeout_s = 60.0  # bound on WalWriter.close() waiting for the last fsync
backpressure_poll_s = 0.05  # a submit blocked on back-pressure re-checks at least this often

MAGIC = b"RASTWAL\0"
FORMAT_VERSION = 1
LOCK_NAME = "LOCK"

TYPE_HEADER = 0
TYPE_HARD_STATE = 1
TYPE_ENTRY = 2
TYPE_RESET = 3

_REC = REC  # payload_length, crc32(payload)
_HEADER = struct.Struct("<B8sIQ")  # type, magic, version, first_index
_HARD_STATE = struct.Struct("<BQ")  # type, current_term (+ vote utf-8)
_ENTRY = struct.Struct("<BQQ")  # type, index, term (+ data)
_RESET = struct.Struct("<BQQ")  # type, first_index, term before it
_PAYLOAD_BYTES_MIN = _HARD_STATE.size
_SEGMENT_RE = re.compile(r"^wal-(\d{20})\.log$")


def segment_name(first_index: int) -> str:
    """File name of the segment whose first entry has index `first_index`."""
    assert first_index >= 1
    return f"wal-{first_index:020d}.log"


class WalError(Exception):
    """The data directory cannot be used as a WAL (foreign file, lock held, poisoned log)."""


class WalLockedError(WalError):
    """Another WriteAheadLog (in this or another process) holds the directory's lock."""


class WalWriterError(WalError):
    """The writer thread failed; the node must stop (what is durable is unknown)."""


@dataclass
class Recovered:
    current_term: int  # 0 on a fresh directory
    voted_for: str | None
    first_index: int  # index of entries[0]; 1 on a fresh directory
    entries: list[tuple[int, bytes]]  # (term, data) in index order, data exactly as appended
    truncated_bytes: int  # bytes of torn/corrupt tail cut off during recovery (0 normally)
    snapshot: Any = None  # the snapshot the entries follow (set by the node's storage opener)
    sections: dict[str, bytes] | None = None  # ... and its state sections


class _ReplayContext:
    """What recovery knows across segments: the snapshot underneath, and whether the WAL's entry
    at its index agrees with it (None: not seen)."""

    __slots__ = ("snap_index", "snap_term", "matches")

    def __init__(self, snap_index: int, snap_term: int) -> None:
        self.snap_index = snap_index
        self.snap_term = snap_term
        self.matches: bool | None = None


class _Roll:
    """In a batch's records: close the newest segment and start `first_index`'s with `blob`."""

    __slots__ = ("first_index", "blob")

    def __init__(self, first_index: int, blob: bytes) -> None:
        self.first_index, self.blob = first_index, blob

    def run(self, wal: "WriteAheadLog") -> None:
        wal._roll(self.first_index, self.blob)


class _Prune:
    """In a batch's records: delete the segments a durable snapshot through `index` covers."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def run(self, wal: "WriteAheadLog") -> None:
        wal._prune(self.index)


def _record(payload_parts: Sequence[bytes], out: list[bytes]) -> int:
    """Append one framed record made of `payload_parts` to `out`; return its size in bytes."""
    return frame(payload_parts, out, _PAYLOAD_BYTES_MIN)


def _encode_header(first_index: int) -> bytes:
    out: list[bytes] = []
    _record([_HEADER.pack(TYPE_HEADER, MAGIC, FORMAT_VERSION, first_index)], out)
    return b"".join(out)


class LogicalLog:
    """What the log holds, logically: current_term, voted_for and the term of every entry, with the
    rules every append must keep, asserted on the way in (shared by WriteAheadLog and the
    simulator's disk, so both refuse the same broken appends):
    current_term never decreases; within one term voted_for only goes from None to a node; an
    append starts within [first_index, last + 1]; entry terms never decrease and never exceed
    current_term (after this append's hard state)."""

    __slots__ = ("current_term", "voted_for", "first_index", "terms", "base_term")

    def __init__(self, current_term: int = 0, voted_for: str | None = None, first_index: int = 1,
                 terms: list[int] | None = None, base_term: int = 0) -> None:
        self.current_term = current_term
        self.voted_for = voted_for
        self.first_index = first_index
        self.terms: list[int] = terms if terms is not None else []  # term of index first_index + i
        self.base_term = base_term  # term of entry first_index - 1 (a snapshot's last), 0 if none

    def reset(self, first_index: int, base_term: int) -> None:
        """An installed snapshot through first_index - 1 replaced every entry."""
        assert first_index >= 1 and base_term <= self.current_term
        self.first_index, self.base_term, self.terms = first_index, base_term, []

    def apply_hard_state(self, term: int, vote: str | None) -> None:
        assert isinstance(term, int) and term >= self.current_term, (
            f"current_term going backwards: {self.current_term} -> {term}"
        )
        assert vote is None or (isinstance(vote, str) and vote), f"bad voted_for {vote!r}"
        assert term > self.current_term or self.voted_for is None or vote == self.voted_for, (
            f"vote changed within term {term}: {self.voted_for!r} -> {vote!r}"
        )
        self.current_term, self.voted_for = term, vote

    def apply_entries(self, start_index: int, entries: Sequence[tuple[int, bytes]]) -> None:
        terms = self.terms
        last = self.first_index + len(terms) - 1
        assert self.first_index <= start_index <= last + 1, (
            f"start_index {start_index} outside [{self.first_index}, {last + 1}]"
        )
        k = start_index - self.first_index
        prev_term = terms[k - 1] if k > 0 else self.base_term
        del terms[k:]
        current_term = self.current_term
        index = start_index
        for term, data in entries:
            assert prev_term <= term <= current_term, (
                f"entry {index} term {term} (previous {prev_term}, current_term {current_term})"
            )
            assert type(data) is bytes, f"entry {index} data must be bytes, not {type(data)}"
            terms.append(term)
            prev_term = term
            index += 1

    def apply(self, hard_state: tuple[int, str | None] | None, start_index: int | None,
              entries: Sequence[tuple[int, bytes]]) -> None:
        if hard_state is not None:
            self.apply_hard_state(*hard_state)
        if entries:
            assert start_index is not None
            self.apply_entries(start_index, entries)


class WriteAheadLog:
    """Durable Raft hard state and log in one directory; see the module docstring for the format."""

    def __init__(self, dir_path: str, *, fsync: bool = True, io: FileIO = REAL) -> None:
        self.dir_path = os.path.abspath(dir_path)
        self.fsync = fsync
        self.io = io
        created_dirs = self._make_dirs(self.dir_path)
        self._lock_fd = self._take_lock()
        if created_dirs and fsync:
            for d in created_dirs:
                io.fsync_dir(os.path.dirname(d))
        self._fd: int | None = None  # newest segment file, opened by recover()
        self._segment_path: str | None = None
        self._segments: list[tuple[int, str]] = []  # (first index, path), oldest first; writer's
        self._segment_bytes_est = 0  # caller's estimate of the newest segment's size (when to roll)
        self._segment_firsts: set[int] = set()  # caller's: names of segments started (never reused)
        self._recovered = False
        self._writer: WalWriter | None = None  # set while a WalWriter owns the writes
        self._failed = False
        self._closed = False
        # Byte-level state: touched by the thread that writes (the WalWriter thread once wrapped).
        self._file_bytes = 0  # bytes known to be in the segment file
        self._pending: list[bytes] = []  # encoded, not yet written
        self._pending_bytes = 0
        # Logical state: touched by the thread that appends (validation and encoding).
        self._state = LogicalLog()  # what the file holds, logically (and the append rules)
        self._recovered_entries: list[tuple[int, bytes]] = []  # filled by _replay

    # -- opening -------------------------------------------------------------------------------

    @staticmethod
    def _make_dirs(path: str) -> list[str]:
        """Create `path` and missing parents; return the created ones, outermost first."""
        missing = []
        p = path
        while not os.path.isdir(p):
            missing.append(p)
            parent = os.path.dirname(p)
            if parent == p:
                break
            p = parent
        missing.reverse()
        for d in missing:
            try:
                os.mkdir(d)
            except FileExistsError:
                pass
        return missing

    def _take_lock(self) -> int:
        path = os.path.join(self.dir_path, LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = b""
            try:
                holder = os.pread(fd, 32, 0).strip()
            except OSError:
                pass
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise WalLockedError(
                    f"WAL directory {self.dir_path} is in use (lock {path} held by pid "
                    f"{holder.decode(errors='replace') or '?'}); one node per data directory"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    # -- recovery ------------------------------------------------------------------------------

    def recover(self, snapshot_index: int = 0, snapshot_term: int = 0) -> Recovered:
        """Read the segments after the snapshot through (snapshot_index, snapshot_term) that the
        caller loaded (0, 0: none), cut a torn tail, and return the durable state. Call once.

        Raises `DamagedFile` (file untouched) if the segment is damaged rather than torn; after any
        exception the log is poisoned (close() then only releases the lock)."""
        assert not self._recovered, "recover() is called once"
        assert not self._closed
        self._recovered = True
        try:
            return self._recover(snapshot_index, snapshot_term)
        except BaseException:
            self._failed = True
            raise

    def _recover(self, snap_index: int, snap_term: int) -> Recovered:
        segments = []
        for name in sorted(os.listdir(self.dir_path)):
            m = _SEGMENT_RE.match(name)
            if m:
                segments.append((int(m.group(1)), os.path.join(self.dir_path, name)))
            elif name.endswith(".log.tmp"):
                log.info("removing leftover %s from an interrupted rewrite", name)
                self.io.unlink(os.path.join(self.dir_path, name))
        state = self._state
        state.first_index, state.base_term = snap_index + 1, snap_term
        self._recovered_entries = []
        if not segments:
            self._segment_path = os.path.join(self.dir_path, segment_name(snap_index + 1))
            self._create_segment(snap_index + 1)
            self._segments = [(snap_index + 1, self._segment_path)]
            self._segment_firsts = {snap_index + 1}
            return self._recovered_state(0)
        if segments[0][0] > snap_index + 1:
            raise DamagedFile(segments[0][1], 0, f"the WAL starts at entry {segments[0][0]}, but no snapshot "
                              f"covers the entries before it (newest usable snapshot: through {snap_index}); "
                              "acknowledged writes may be missing")
        self._segments = segments
        ctx = _ReplayContext(snap_index, snap_term)
        for k, (first, path) in enumerate(segments[:-1]):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                self._replay(fd, path, os.fstat(fd).st_size, first, ctx, torn_ok=False)
            finally:
                os.close(fd)
        name_first_index, self._segment_path = segments[-1]
        self._fd = self.io.open(self._segment_path, os.O_RDWR | os.O_CLOEXEC)
        size = os.fstat(self._fd).st_size
        good_bytes, reason = self._replay(self._fd, self._segment_path, size, name_first_index, ctx,
                                          torn_ok=True)
        state.terms = [t for t, _ in self._recovered_entries]
        truncated = size - good_bytes
        if truncated:
            log.warning(
                "WAL %s: %s at offset %d; truncating %d bytes (file was %d bytes)",
                self._segment_path, reason, good_bytes, truncated, size,
            )
            self.io.ftruncate(self._fd, good_bytes)
            if self.fsync:
                self._datasync()
            assert os.fstat(self._fd).st_size == good_bytes
        self._file_bytes = good_bytes
        if good_bytes == 0:
            # Nothing usable, not even the header (crash right after creation): start afresh.
            os.close(self._fd)
            self._fd = None
            self._create_segment(name_first_index)
        elif len(segments) == 1:
            self._maybe_compact(name_first_index)
        self._segment_bytes_est = self._file_bytes
        self._segment_firsts = {f for f, _ in segments}
        return self._recovered_state(truncated)

    def _recovered_state(self, truncated: int) -> Recovered:
        r = Recovered(
            current_term=self._state.current_term,
            voted_for=self._state.voted_for,
            first_index=self._state.first_index,
            entries=self._recovered_entries,
            truncated_bytes=truncated,
        )
        self._recovered_entries = []  # the caller owns the list now
        # Output side: what recovery hands to Raft must be a well-formed log.
        assert r.current_term >= 0 and r.first_index >= 1 and r.truncated_bytes >= 0
        assert len(r.entries) == len(self._state.terms)
        prev = 0
        for i, (term, data) in enumerate(r.entries):
            assert isinstance(data, bytes)
            assert term == self._state.terms[i]
            assert prev <= term <= r.current_term, f"entry {r.first_index + i} term {term}"
            prev = term
        assert self._fd is not None and os.fstat(self._fd).st_size == self._file_bytes
        return r

    def _create_segment(self, first_index: int) -> None:
        assert self._segment_path is not None
        self._fd = self.io.open(self._segment_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        self._state.first_index = first_index
        self._file_bytes = 0
        self._write_all([_encode_header(first_index)])
        if self.fsync:
            self._datasync()
            self.io.fsync_dir(self.dir_path)

    def _replay(self, fd: int, path: str, size: int, name_first_index: int, ctx: "_ReplayContext",
                *, torn_ok: bool) -> tuple[int, str]:
        """Apply one segment's records to the logical state and self._recovered_entries.

        Returns (bytes of good records, what was torn after them or ""). Raises DamagedFile if the
        segment is damaged (not torn)."""
        if size == 0:
            if not torn_ok:
                raise DamagedFile(path, 0, "an empty segment before the newest one")
            return 0, ""
        entries = self._recovered_entries
        state = self._state
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mm:
            buf = memoryview(mm)
            reader = RecordReader(buf, path, payload_bytes_min=_PAYLOAD_BYTES_MIN,
                                  payload_bytes_max=record_bytes_max, torn_tail_ok=torn_ok)
            records = iter(reader)
            payload = None
            damage: DamagedFile | None = None
            try:
                first_index = None
                for off, payload in records:
                    rtype = payload[0]
                    length = len(payload)
                    if first_index is None:
                        if rtype != TYPE_HEADER or length != _HEADER.size:
                            raise reader.damaged(off, "segment does not start with a header record")
                        _, magic, version, first_index = _HEADER.unpack_from(payload)
                        if magic != MAGIC or version != FORMAT_VERSION:
                            raise WalError(
                                f"{path}: not a Rast WAL segment of format "
                                f"{FORMAT_VERSION} (magic {magic!r}, version {version})"
                            )
                        if first_index != name_first_index:
                            raise WalError(f"{path}: header first_index {first_index} "
                                           "does not match the file name")
                        last = state.first_index + len(entries) - 1
                        if first_index > last + 1 and first_index - 1 > ctx.snap_index:
                            raise reader.damaged(off, f"segment starts at {first_index}, after the log's "
                                                      f"last entry {last}: a gap")
                    elif rtype == TYPE_HARD_STATE:
                        (_, term) = _HARD_STATE.unpack_from(payload)
                        try:
                            vote = bytes(payload[_HARD_STATE.size:]).decode() or None
                        except UnicodeDecodeError:
                            raise reader.damaged(off, "hard state with a vote that is not utf-8") from None
                        if term < state.current_term or (
                            term == state.current_term
                            and state.voted_for is not None
                            and vote != state.voted_for
                        ):
                            raise reader.damaged(off, f"hard state going backwards (term {term}, vote {vote!r} "
                                                      f"after term {state.current_term}, vote {state.voted_for!r})")
                        state.current_term, state.voted_for = term, vote
                    elif rtype == TYPE_ENTRY and length >= _ENTRY.size:
                        _, index, term = _ENTRY.unpack_from(payload)
                        if index <= ctx.snap_index:
                            if index == ctx.snap_index:
                                ctx.matches = term == ctx.snap_term
                            continue  # covered by the snapshot
                        if ctx.matches is False:
                            continue  # follows an entry the installed snapshot replaced
                        first = state.first_index
                        last = first + len(entries) - 1
                        if not first <= index <= last + 1:
                            raise reader.damaged(off, f"entry index {index} outside [{first}, {last + 1}]")
                        k = index - first
                        prev_term = entries[k - 1][0] if k > 0 else state.base_term
                        if term < prev_term or term > state.current_term:
                            raise reader.damaged(off, f"entry {index} with term {term} out of order (previous "
                                                      f"{prev_term}, current_term {state.current_term})")
                        del entries[k:]
                        entries.append((term, bytes(payload[_ENTRY.size:])))
                    elif rtype == TYPE_RESET and length == _RESET.size:
                        _, first, term = _RESET.unpack_from(payload)
                        if first - 1 > ctx.snap_index:
                            raise reader.damaged(off, f"the log was reset to start at {first} by a snapshot "
                                                      f"through {first - 1}, but the newest usable snapshot "
                                                      f"ends at {ctx.snap_index}")
                        del entries[:]
                        ctx.matches = None  # entries after the reset are the new log's
                        if first - 1 == ctx.snap_index:
                            state.first_index, state.base_term = first, term
                    else:
                        raise reader.damaged(off, f"unknown record type {rtype}")
            except DamagedFile as e:
                damage = e.with_traceback(None)  # its frames hold views of the mapping
            finally:
                payload = None
                records.close()
                reader.buf = None  # type: ignore[assignment]
                buf.release()
        if damage is not None:
            raise damage
        return reader.good_bytes, reader.torn_reason

    def _maybe_compact(self, header_first_index: int) -> None:
        """Rewrite the segment compactly if most of it is superseded (atomic: tmp, rename).

        A failure before the rename (no space for the copy, an I/O error on the copy) leaves the
        segment as it was and the node carries on; a failure after it is a disk failure (raised):
        which of the two files the directory holds after a crash is then unknown."""
        header_bytes = len(_encode_header(header_first_index))
        # Sizes of live records: the header, the last hard state, each live entry.
        live = header_bytes
        if self._state.current_term or self._state.voted_for is not None:
            live += _REC.size + _HARD_STATE.size + len((self._state.voted_for or "").encode())
        entries = self._recovered_entries
        for term, data in entries:
            live += _REC.size + _ENTRY.size + len(data)
        superseded = self._file_bytes - live
        assert superseded >= 0
        if self._file_bytes < compact_bytes_min or superseded * 2 <= self._file_bytes:
            return
        assert self._segment_path is not None and self._fd is not None
        io = self.io
        tmp_path = self._segment_path + ".tmp"
        out: list[bytes] = [_encode_header(header_first_index)]
        if self._state.current_term or self._state.voted_for is not None:
            self._encode_hard_state(self._state.current_term, self._state.voted_for, out)
        for i, (term, data) in enumerate(entries):
            self._encode_entry(self._state.first_index + i, term, data, out)
        blob = b"".join(out)
        assert len(blob) == live
        fd = -1
        try:
            fd = io.open(tmp_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            view = memoryview(blob)
            written = 0
            while written < len(blob):
                n = io.pwrite(fd, view[written:], written)
                assert n > 0
                written += n
            assert os.fstat(fd).st_size == live
            if self.fsync:
                io.fsync(fd)
            io.rename(tmp_path, self._segment_path)
        except OSError as e:
            log.warning("WAL %s: compaction failed (%s); carrying on with the segment as it is (%d bytes)",
                        self._segment_path, e, self._file_bytes)
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(tmp_path)
            except OSError:
                pass
            return
        os.close(self._fd)
        self._fd = fd
        if self.fsync:
            io.fsync_dir(self.dir_path)  # a failure here is a disk failure: raised to the caller
        log.info(
            "WAL %s rewritten compactly: %d -> %d bytes", self._segment_path, self._file_bytes, live
        )
        self._file_bytes = live

    # -- appending -----------------------------------------------------------------------------

    @staticmethod
    def _encode_hard_state(term: int, vote: str | None, out: list[bytes]) -> None:
        _record([_HARD_STATE.pack(TYPE_HARD_STATE, term), (vote or "").encode()], out)

    @staticmethod
    def _encode_entry(index: int, term: int, data: bytes, out: list[bytes]) -> None:
        _record([_ENTRY.pack(TYPE_ENTRY, index, term), data], out)

    def _encode(
        self,
        hard_state: tuple[int, str | None] | None,
        start_index: int | None,
        entries: Sequence[tuple[int, bytes]],
    ) -> list[bytes]:
        """Validate one append against the logical state, apply it, and return its records."""
        assert self._recovered, "recover() must be called before append"
        assert not self._closed
        if self._failed:
            raise WalError(f"WAL {self._segment_path} failed earlier; restart and recover")
        out: list[Any] = []
        if self._segment_bytes_est > segment_bytes_max:
            self._plan_roll(out)
        self._state.apply(hard_state, start_index, entries)  # asserts the append rules first
        if hard_state is not None:
            self._encode_hard_state(hard_state[0], hard_state[1], out)
        if entries:
            pack = _ENTRY.pack
            index = start_index
            for term, data in entries:
                self._segment_bytes_est += _record([pack(TYPE_ENTRY, index, term), data], out)
                index += 1
        return out

    def _plan_roll(self, out: list[Any]) -> None:
        """The newest segment is full: the batch being encoded starts a new one (unless a segment
        of that name exists already: a log cut back below it and grown again; roll later)."""
        state = self._state
        first = state.first_index + len(state.terms)
        if first in self._segment_firsts:
            return
        self._segment_firsts.add(first)
        parts = [_encode_header(first)]
        if state.current_term or state.voted_for is not None:
            self._encode_hard_state(state.current_term, state.voted_for, parts)
        out.append(_Roll(first, b"".join(parts)))
        self._segment_bytes_est = sum(map(len, parts))

    def encode_reset(self, first_index: int, base_term: int) -> list[Any]:
        """An installed snapshot through first_index - 1 replaced the log: the reset record."""
        assert self._recovered and not self._closed
        if self._failed:
            raise WalError(f"WAL {self._segment_path} failed earlier; restart and recover")
        self._state.reset(first_index, base_term)
        out: list[Any] = []
        self._segment_bytes_est += _record([_RESET.pack(TYPE_RESET, first_index, base_term)], out)
        return out

    def reset(self, first_index: int, base_term: int) -> None:
        """Direct mode (no WalWriter): buffer a reset record (durable at the next `sync`)."""
        assert self._writer is None, "a WalWriter owns this log: use WalWriter.reset"
        self._pending.extend(self.encode_reset(first_index, base_term))

    def compact(self, index: int) -> None:
        """Direct mode: delete the segments a durable snapshot through `index` covers (after what is
        buffered is written)."""
        assert self._writer is None, "a WalWriter owns this log: use WalWriter.compact"
        self._flush()
        self._prune(index)

    def _roll(self, first_index: int, blob: bytes) -> None:
        """Writer side: make the newest segment durable, then start the next one with `blob`."""
        if self.fsync:
            self._datasync()  # a segment is complete before a newer one exists
        path = os.path.join(self.dir_path, segment_name(first_index))
        try:
            fd = self.io.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except BaseException:
            self._failed = True
            raise
        assert self._fd is not None
        os.close(self._fd)
        self._fd, self._segment_path, self._file_bytes = fd, path, 0
        self._write_all([blob])
        if self.fsync:
            self._datasync()
            self.io.fsync_dir(self.dir_path)
        self._segments.append((first_index, path))

    def _prune(self, index: int) -> None:
        """Writer side: delete every segment (never the newest) whose entries all lie at or below
        `index`, i.e. whose successor starts at index + 1 or before."""
        segs = self._segments
        while len(segs) > 1 and segs[1][0] - 1 <= index:
            _, path = segs.pop(0)
            self.io.unlink(path)
            log.info("WAL: deleted %s (covered by the snapshot through %d)", path, index)

    def segment_count(self) -> int:
        return len(self._segments)

    def append(
        self,
        hard_state: tuple[int, str | None] | None,
        start_index: int | None,
        entries: Sequence[tuple[int, bytes]],
    ) -> None:
        """Buffer a hard state change and/or entries (replacing entries at >= start_index).

        Nothing is durable until `sync()`. The buffer is written out (without fsync) when it
        exceeds `write_buffer_bytes_max`.
        """
        assert self._writer is None, "a WalWriter owns this log: use WalWriter.submit"
        records = self._encode(hard_state, start_index, entries)
        self._pending.extend(records)
        self._pending_bytes += sum(len(r) for r in records if type(r) is bytes)
        if self._pending_bytes > write_buffer_bytes_max:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            pending, self._pending, self._pending_bytes = self._pending, [], 0
            self._write_records(pending)

    def _write_records(self, parts: list[Any]) -> None:
        """Write encoded records in order; a `_Roll` or `_Prune` among them runs where it stands."""
        start = 0
        for i, p in enumerate(parts):
            if type(p) is not bytes:
                if i > start:
                    self._write_all(parts[start:i])
                p.run(self)
                start = i + 1
        if start < len(parts):
            self._write_all(parts[start:] if start else parts)

    def _write_all(self, parts: list[bytes]) -> None:
        """Write `parts` at the end of the segment with one pwrite (more only on short writes)."""
        assert self._fd is not None
        if self._failed:
            raise WalError(f"WAL {self._segment_path} failed earlier; restart and recover")
        blob = parts[0] if len(parts) == 1 else b"".join(parts)
        if not blob:
            return
        offset = self._file_bytes
        assert os.fstat(self._fd).st_size == offset, "segment size differs from what we wrote"
        try:
            written = 0
            view = memoryview(blob)
            while written < len(blob):
                n = self.io.pwrite(self._fd, view[written:], offset + written)
                assert n > 0
                written += n
        except BaseException:
            self._failed = True
            raise
        # (no fstat after the write: the one before it found the file ending at `offset`, and the
        # pwrites above wrote len(blob) bytes from there; each syscall of this thread is a GIL
        # handoff to a loop that is busy with its pass, between a submit and its fdatasync)
        self._file_bytes = offset + len(blob)

    def _datasync(self) -> None:
        assert self._fd is not None
        if self._failed:
            raise WalError(f"WAL {self._segment_path} failed earlier; restart and recover")
        try:
            self.io.fdatasync(self._fd)
        except BaseException:
            self._failed = True
            raise

    def sync(self) -> None:
        """Write everything appended so far and make it durable (fdatasync unless fsync=False)."""
        assert self._recovered and not self._closed
        assert self._writer is None, "a WalWriter owns this log: it syncs"
        self._flush()
        if self.fsync:
            self._datasync()

    def close(self) -> None:
        """Sync (unless the log failed), close the segment and release the directory lock."""
        if self._closed:
            return
        assert self._writer is None, "close the WalWriter before its WriteAheadLog"
        try:
            if self._fd is not None and not self._failed:
                self.sync()
        finally:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)

    @property
    def last_index(self) -> int:
        return self._state.first_index + len(self._state.terms) - 1

    @property
    def file_bytes(self) -> int:
        return self._file_bytes


class WalWriter:
    """Background writer: group-commits submitted batches with one write and one fsync per pass.

    `submit` validates and encodes a batch in the caller's thread (so a broken invariant raises
    there) and queues the bytes; it never does IO. It BLOCKS only when `pending_batches_max`
    batches are submitted but not yet durable: that is the back-pressure on the loop.
    The thread takes every queued batch, writes them with one pwrite, does ONE fsync, publishes
    `durable_id` (the last batch's id) and writes a byte to the pipe whose read end is `wake_fd`.
    Batches become durable strictly in submit order. After a write/fsync failure `error` is set,
    `wake_fd` becomes readable, the thread stops and `submit` raises `WalWriterError`.
    `close` does not close the WriteAheadLog; the caller closes it afterwards.

    With `send` (a thread-safe callable taking bytes), a batch may carry `after`: bytes that depend
    on it being durable (a follower's acknowledgement, a vote). The thread passes them to `send`
    right after the fsync that covers the batch, in batch order, and never after a failed write or
    fsync; a batch submitted with `wake=False` does not write to the wake pipe (the caller polls
    `durable_id` instead), which saves the loop a wake-up per batch when nothing else waits on it.
    A group of batches with no records (only `after`) needs no fsync: every earlier batch is
    already durable when it is taken.
    """

    def __init__(self, wal: WriteAheadLog, *, pending_batches_max: int = 4096,
                 send: Callable[[bytes], None] | None = None) -> None:
        assert wal._recovered and not wal._closed, "recover() the WAL before wrapping it"
        assert wal._writer is None, "one WalWriter per WriteAheadLog"
        assert pending_batches_max >= 1
        wal._flush()  # anything appended directly goes first
        wal._writer = self
        self._wal = wal
        self.pending_batches_max = pending_batches_max
        self._cond = threading.Condition()
        # (id, records, after, wake) per batch; None once closing. A SimpleQueue wakes the thread
        # with one C call; the Condition is only for submitters waiting on back-pressure.
        self._queue: queue.SimpleQueue[tuple[int, list[bytes], bytes, bool] | None] = (
            queue.SimpleQueue())
        self._send = send
        self._blocked = False  # a submit is waiting on back-pressure
        self._next_id = 1
        self._durable_id = 0
        self._error: BaseException | None = None
        self._closing = False
        self._closed = False
        self.fsync_count = 0  # passes that ended in an fsync (for tests and benchmarks)
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self.wake_fd = r
        self._wake_write_fd = w
        self._thread = threading.Thread(target=self._run, name="wal-writer", daemon=True)
        self._thread.start()

    @property
    def durable_id(self) -> int:
        """Highest batch id whose bytes are written and fsynced."""
        return self._durable_id

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the writer; the node must stop if this is set."""
        return self._error

    def submit(
        self,
        hard_state: tuple[int, str | None] | None,
        start_index: int | None,
        entries: Sequence[tuple[int, bytes]],
        after: bytes = b"",
        wake: bool = True,
    ) -> int:
        """Queue one batch (see WriteAheadLog.append) and return its id: 1, 2, 3, ...
        `after` and `wake`: see the class docstring (`after` needs `send`).

        Blocks while `pending_batches_max` batches are not yet durable (back-pressure).
        Raises WalWriterError once the writer has failed.
        """
        assert not self._closing, "submit after close"
        if self._error is not None:
            raise WalWriterError("WAL writer failed; the node must stop") from self._error
        assert not after or self._send is not None, "after bytes need a send callable"
        return self._enqueue(self._wal._encode(hard_state, start_index, entries), after, wake)

    def reset(self, first_index: int, base_term: int) -> int:
        """Queue a reset record (see WriteAheadLog.encode_reset); returns its batch id."""
        assert not self._closing, "reset after close"
        if self._error is not None:
            raise WalWriterError("WAL writer failed; the node must stop") from self._error
        return self._enqueue(self._wal.encode_reset(first_index, base_term))

    def compact(self, index: int) -> int:
        """Queue the deletion of the segments a durable snapshot through `index` covers."""
        assert not self._closing, "compact after close"
        if self._error is not None:
            raise WalWriterError("WAL writer failed; the node must stop") from self._error
        return self._enqueue([_Prune(index)])

    def _enqueue(self, records: list[Any], after: bytes = b"", wake: bool = True) -> int:
        if self._next_id - 1 - self._durable_id >= self.pending_batches_max:  # back-pressure
            with self._cond:
                self._blocked = True
                while (
                    self._next_id - 1 - self._durable_id >= self.pending_batches_max
                    and self._error is None
                ):
                    self._cond.wait(backpressure_poll_s)
                self._blocked = False
            if self._error is not None:
                raise WalWriterError("WAL writer failed; the node must stop") from self._error
        batch_id = self._next_id
        self._next_id += 1
        self._queue.put((batch_id, records, after, wake))  # wakes the thread (no Condition)
        return batch_id

    def drain_wake(self) -> int:
        """Read every pending wake byte; return the highest durable batch id."""
        reads_max = 1 << 16  # a pipe holds at most 64 KiB; bounded either way
        for _ in range(reads_max):
            try:
                if len(os.read(self.wake_fd, 4096)) < 4096:
                    break  # drained (a byte written since makes the fd readable again)
            except BlockingIOError:
                break
        return self._durable_id

    def _wake(self) -> None:
        try:
            os.write(self._wake_write_fd, b"\x01")
        except BlockingIOError:
            pass  # the pipe is full: the loop is already due to wake

    def _run(self) -> None:
        wal = self._wal
        q = self._queue
        while True:
            batch = [q.get()]
            while not q.empty():  # group commit: everything queued so far
                batch.append(q.get_nowait())
            closing = batch[-1] is None  # close() queues None after the last batch
            if closing:
                batch.pop()
                if not batch:
                    return  # closing, and everything is durable
            last_id = batch[-1][0]
            assert last_id == self._durable_id + len(batch), "batches out of order"
            parts = [p for b in batch for p in b[1]]
            try:
                if parts:
                    wal._write_records(parts)
                    if wal.fsync:
                        wal._datasync()
                        self.fsync_count += 1
            except BaseException as e:  # noqa: BLE001 - any failure stops the node via .error
                log.debug("WAL writer failed: %r; the node must stop", e)  # the node says it once
                with self._cond:
                    self._error = e
                    self._cond.notify_all()
                self._wake()
                return
            self._durable_id = last_id
            if self._blocked:  # a submit waits on back-pressure (it also re-checks on a timer)
                with self._cond:
                    self._cond.notify_all()
            after = b"".join([b[2] for b in batch])
            if after:
                try:
                    self._send(after)  # type: ignore[misc]
                except BrokenPipeError:
                    pass  # the reader is gone; the loop finds out on its own next write
            if any(b[3] for b in batch):
                self._wake()
            if closing:
                return

    def close(self) -> None:
        """Write and fsync what is queued, stop the thread, close the pipe."""
        if self._closed:
            return
        self._closing = True
        self._queue.put(None)
        self._thread.join(writer_close_timeout_s)
        assert not self._thread.is_alive(), "WAL writer thread did not stop"
        self._closed = True
        self._wal._writer = None
        os.close(self._wake_write_fd)
        os.close(self.wake_fd)
