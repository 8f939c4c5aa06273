"""Snapshot files: the replicated state at one applied index, in a file of its own.

What it owns
    In the node's data directory: ``snap-<last index, 20 digits>.snap`` (complete snapshots),
    ``snap-<index>.snap.tmp`` (one being written) and ``incoming.snap.tmp`` (one being received
    from a leader, chunk by chunk). `SnapshotStore` lists, loads, writes, receives and prunes
    them; `begin` returns a `SnapshotWriter` the loop hands the sections to in parts (the
    default), `take` runs the serialization in a forked child process (``--snapshot-fork``).

What it may not touch
    Raft (it knows an index, a term and a voter list, never roles or messages), the WAL, the
    meaning of the sections (the state machine produces and consumes them as bytes).

File format: records framed and checked by runtime/records.py (the node's one damage rule); the
file is written whole and renamed into place, so it is read with ``torn_tail_ok=False``: an
incomplete record anywhere is damage::

    header   b"H" | magic b"RASTSNP\\0" | u32 version | u64 index | u64 term | configuration (JSON)
    section  b"S" | u8 name length | name (utf-8) | body bytes         (a section may span records
                                                                         of any sizes up to 1 MiB)
    footer   b"F" | u64 number of section records

The configuration in force at the index is, in format 2, the JSON object
``{"voters": [...], "learners": [...]}``; format 1 (before membership changes) held the voter list
alone and is still read (no learners). Any other version is refused as damage.

The footer makes a file cut at a record boundary detectably incomplete. The bytes of the file are
the bytes InstallSnapshot carries: a follower writes each chunk at its offset in
``incoming.snap.tmp`` as it arrives and checks the whole file when the last one is in.

Durability: temp name, write, fsync, rename, directory fsync (`FileIO`, so tests inject faults).

Taking a snapshot without stalling the loop, the default way: the state machine freezes its state
at the index and serializes it in bounded slices, one per loop pass (state.SnapshotJob); the
`SnapshotWriter` frames and writes (pwrite, page cache) each part as it comes; a thread flushes
the file every few MiB as it grows and, after the last part, fsyncs, renames and fsyncs the
directory, then signals a pipe the loop watches. The loop's cost per pass is one slice, whatever
the state's size.

With ``--snapshot-fork``: `take` forks. The child owns a copy-on-write image of
the parent's memory at the fork, so it serializes the state exactly as it was at that applied
index while the parent's loop carries on. The child touches only the state (through the
`produce` callable), its own file descriptors and `os._exit`: no logging, no locks (the WAL writer
thread does not exist in the child; a lock it held at the fork stays held there forever, so the
child must not take any). It reports through a pipe whose read end the loop watches.
"""

from __future__ import annotations

import os
import re
import _thread
import struct
import threading
import warnings
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, Callable, Iterable, Iterator

import orjson

from .fileio import REAL, FileIO
from .records import RECORD_BYTES_MAX, DamagedFile, RecordReader, frame

MAGIC = b"RASTSNP\0"
FORMAT_VERSION = 2  # 2: the header holds voters and learners; 1: a voter list (still read)
FORMAT_VERSIONS_READ = (1, 2)
SECTION_RECORD_BYTES_MAX = 1 << 20  # a section's body is cut into records of at most this much
SNAPSHOTS_KEPT_MAX = 1  # complete snapshots kept after a newer one is durable
INCOMING_NAME = "incoming.snap.tmp"
_HEADER = struct.Struct("<c8sIQQ")
_FOOTER = struct.Struct("<cQ")
_NAME_RE = re.compile(r"^snap-(\d{20})\.snap$")
_FDS_MAX = 1 << 16  # the forked child closes every fd below this but its pipe

Sections = dict[str, bytes]  # section name -> body


@dataclass(frozen=True)
class SnapshotFile:
    index: int
    term: int
    voters: tuple[str, ...]
    size: int
    path: str
    learners: tuple[str, ...] = ()


def snapshot_name(index: int) -> str:
    return f"snap-{index:020d}.snap"


class SnapshotEncoder:
    """Frames a snapshot as records from its sections handed over in parts, in order (a section's
    parts one after another), each part as it comes (its records, ready in `out`)."""

    def __init__(self, index: int, term: int, voters: Iterable[str], learners: Iterable[str] = ()) -> None:
        self.out: list[bytes] = []  # framed bytes not yet taken (`take`)
        conf = orjson.dumps({"voters": list(voters), "learners": list(learners)})
        frame([_HEADER.pack(b"H", MAGIC, FORMAT_VERSION, index, term), conf], self.out)
        self.count = 0  # section records framed
        self._name: str | None = None
        self._tag = b""
        self._records = 0  # records of the current section

    def add(self, name: str, part: bytes) -> None:
        """One part of section `name`: framed at once, as records of at most
        SECTION_RECORD_BYTES_MAX (the reader joins a section's records whatever their sizes)."""
        if name != self._name:
            self._end_section()
            self._name = name
            self._tag = b"S" + bytes([len(name.encode())]) + name.encode()
        if len(part) <= SECTION_RECORD_BYTES_MAX:
            if part:
                self._record(part)
            return
        view = memoryview(part)
        for lo in range(0, len(part), SECTION_RECORD_BYTES_MAX):
            self._record(view[lo:lo + SECTION_RECORD_BYTES_MAX])

    def _record(self, body: bytes | memoryview) -> None:
        frame([self._tag, body], self.out)
        self.count += 1
        self._records += 1

    def _end_section(self) -> None:
        if self._name is not None and not self._records:
            self._record(b"")  # (an empty section is one empty record)
        self._records = 0

    def finish(self) -> None:
        self._end_section()
        self._name = None
        frame([_FOOTER.pack(b"F", self.count)], self.out)

    def take(self) -> list[bytes]:
        out, self.out = self.out, []
        return out


def encode_snapshot(index: int, term: int, voters: Iterable[str], sections: Iterable[tuple[str, bytes]],
                    write: Callable[[list[bytes]], None], learners: Iterable[str] = ()) -> None:
    """Frame a snapshot as records, handing them to `write` a few at a time."""
    enc = SnapshotEncoder(index, term, voters, learners)
    for name, body in sections:
        if enc.out and len(enc.out) >= 64:
            write(enc.take())
        enc.add(name, body)
    enc.finish()
    write(enc.take())


def decode_snapshot(buf: memoryview | bytes, path: str
                    ) -> tuple[int, int, tuple[str, ...], Sections, tuple[str, ...]]:
    """Check and parse a whole snapshot file: (index, term, voters, sections, learners). Raises
    DamagedFile for anything wrong."""
    reader = RecordReader(memoryview(buf), path, payload_bytes_max=RECORD_BYTES_MAX, torn_tail_ok=False)
    header = None
    parts: dict[str, list[bytes]] = {}
    count = 0
    footer = False
    for off, payload in reader:
        kind = bytes(payload[:1])
        if footer:
            raise reader.damaged(off, "a record after the footer")
        if header is None:
            if kind != b"H" or len(payload) < _HEADER.size:
                raise reader.damaged(off, "no snapshot header")
            _, magic, version, index, term = _HEADER.unpack_from(payload)
            if magic != MAGIC or version not in FORMAT_VERSIONS_READ:
                raise reader.damaged(off, f"not a Rast snapshot of format {FORMAT_VERSIONS_READ}")
            try:
                conf = orjson.loads(bytes(payload[_HEADER.size:]))
            except orjson.JSONDecodeError:
                raise reader.damaged(off, "the configuration is not JSON") from None
            if version == 1:
                conf = {"voters": conf, "learners": []}
            if (type(conf) is not dict or type(conf.get("voters")) is not list
                    or type(conf.get("learners")) is not list
                    or not all(type(n) is str for n in conf["voters"] + conf["learners"])):
                raise reader.damaged(off, "the configuration is not voters and learners")
            header = (index, term, tuple(conf["voters"]))
            learners = tuple(conf["learners"])
        elif kind == b"S" and len(payload) >= 2:
            n = payload[1]
            name = bytes(payload[2:2 + n]).decode(errors="replace")
            parts.setdefault(name, []).append(bytes(payload[2 + n:]))
            count += 1
        elif kind == b"F" and len(payload) == _FOOTER.size:
            if _FOOTER.unpack_from(payload)[1] != count:
                raise reader.damaged(off, f"footer counts {_FOOTER.unpack_from(payload)[1]} sections, "
                                          f"the file has {count}")
            footer = True
        else:
            raise reader.damaged(off, f"unknown snapshot record {kind!r}")
    if header is None or not footer:
        raise DamagedFile(path, reader.good_bytes, "snapshot without its footer (incomplete)")
    return (*header, {k: b"".join(v) for k, v in parts.items()}, learners)


class SnapshotStore:
    """The snapshot files of one data directory (see the module docstring)."""

    def __init__(self, dir_path: str, *, fsync: bool = True, io: FileIO = REAL) -> None:
        self.dir = dir_path
        self.fsync = fsync
        self.io = io
        # the snapshot being taken: a SnapshotWriter, or a forked child's (pid, fd, index, term, ...)
        self.child: Any = None
        self._incoming_fd = -1
        self._read_fd = -1
        self._read_path = ""

    # -- listing and loading --------------------------------------------------------------------

    def indexes(self) -> list[int]:
        """Indexes of the complete snapshot files, newest first; removes leftover temp files."""
        found = []
        for name in os.listdir(self.dir):
            m = _NAME_RE.match(name)
            if m:
                found.append(int(m.group(1)))
            elif name.startswith("snap-") and name.endswith(".snap.tmp") or name == INCOMING_NAME:
                self.io.unlink(os.path.join(self.dir, name))  # an interrupted write or transfer
        return sorted(found, reverse=True)

    def path(self, index: int) -> str:
        return os.path.join(self.dir, snapshot_name(index))

    def load(self, index: int) -> tuple[SnapshotFile, Sections]:
        path = self.path(index)
        with open(path, "rb") as f:
            buf = f.read()
        i, term, voters, sections, learners = decode_snapshot(buf, path)
        if i != index:
            raise DamagedFile(path, 0, f"header says index {i}, the name {index}")
        return SnapshotFile(index, term, voters, len(buf), path, learners), sections

    def reader(self, snap: SnapshotFile) -> Callable[[int, int], bytes]:
        """Reads the bytes of `snap` (the leader's InstallSnapshot chunks); one file open at a time."""
        if self._read_path != snap.path:
            if self._read_fd >= 0:
                os.close(self._read_fd)
            self._read_fd = os.open(snap.path, os.O_RDONLY | os.O_CLOEXEC)  # kept open: pruning is safe
            self._read_path = snap.path
        fd = self._read_fd
        return lambda offset, n: os.pread(fd, min(n, snap.size - offset), offset)

    # -- taking (forked child) ------------------------------------------------------------------

    def take(self, index: int, term: int, voters: tuple[str, ...],
             produce: Callable[[], Iterator[tuple[str, bytes]]], learners: tuple[str, ...] = ()) -> int:
        """Fork a child that writes the snapshot; returns the fd the loop watches (readable when the
        child is done; then call `taken()`)."""
        assert self.child is None, "one snapshot at a time"
        r, w = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # (fork with a thread running)
            pid = os.fork()
        if pid == 0:  # the child: state, its own fds, _exit; nothing else
            status = 1
            try:
                # Only the pipe stays open: the data directory's lock must die with the parent (a
                # restarted node must not find it held by this child), stdout must reach EOF when
                # the parent dies, and the WAL's files are not ours to touch.
                os.closerange(0, w)
                os.closerange(w + 1, _FDS_MAX)
                self._write_file(index, term, voters, produce(), learners)
                status = 0
            finally:
                try:
                    os.write(w, bytes([status]))
                finally:
                    os._exit(status)
        os.close(w)
        self.child = (pid, r, index, term, voters, learners)
        return r

    def _write_file(self, index: int, term: int, voters: tuple[str, ...],
                    sections: Iterable[tuple[str, bytes]], learners: tuple[str, ...] = ()) -> None:
        final = self.path(index)
        tmp = final + ".tmp"
        io = self.io
        fd = io.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            pos = [0]

            def write(parts: list[bytes]) -> None:
                pos[0] = _pwrite_all(io, fd, b"".join(parts), pos[0])

            encode_snapshot(index, term, voters, sections, write, learners)
            if self.fsync:
                io.fsync(fd)
        finally:
            os.close(fd)
        io.rename(tmp, final)
        if self.fsync:
            io.fsync_dir(self.dir)

    # -- taking (the loop hands over parts; a writer thread writes them) ------------------------

    def begin(self, index: int, term: int, voters: tuple[str, ...], learners: tuple[str, ...] = ()
              ) -> "SnapshotWriter":
        """Start writing a snapshot whose sections the caller hands over in parts (`put`); its
        `fd` becomes readable when the file is durable (or failed): then call `taken()`."""
        assert self.child is None, "one snapshot at a time"
        self.child = writer = SnapshotWriter(self, index, term, voters, learners)
        return writer

    def taken(self) -> SnapshotFile:
        """The child (or writer) finished: its snapshot file, durable. Raises OSError if it failed."""
        assert self.child is not None
        if type(self.child) is SnapshotWriter:
            writer, self.child = self.child, None
            return writer.result()
        pid, r, index, term, voters, learners = self.child
        self.child = None
        try:
            status = os.read(r, 1)
        finally:
            os.close(r)
        _, wstatus = os.waitpid(pid, 0)
        if status != b"\x00" or os.waitstatus_to_exitcode(wstatus) != 0:
            raise OSError(f"the snapshot child for index {index} failed (status {status!r}, "
                          f"exit {os.waitstatus_to_exitcode(wstatus)})")
        return SnapshotFile(index, term, voters, os.stat(self.path(index)).st_size, self.path(index), learners)

    def abandon(self) -> None:
        """Stop waiting for a child (node shutdown): kill it and reap it."""
        if type(self.child) is SnapshotWriter:
            self.child.cancel()
            self.child = None
        if self.child is not None:
            pid, r, *_ = self.child
            self.child = None
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            os.close(r)

    # -- receiving (InstallSnapshot) ------------------------------------------------------------

    def receive(self, offset: int, data: bytes) -> None:
        """Write one received chunk where it belongs; offset 0 starts a new file."""
        io = self.io
        path = os.path.join(self.dir, INCOMING_NAME)
        if offset == 0 or self._incoming_fd < 0:
            assert offset == 0, "a transfer resumes only within one process"
            if self._incoming_fd >= 0:
                os.close(self._incoming_fd)
            self._incoming_fd = io.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        _pwrite_all(io, self._incoming_fd, data, offset)

    def finish_receive(self, index: int, term: int) -> tuple[SnapshotFile, Sections] | None:
        """The last chunk is in: check the whole file; if it is a good snapshot of (index, term),
        make it durable under its name and return it with its sections; else None (discarded)."""
        fd, self._incoming_fd = self._incoming_fd, -1
        path = os.path.join(self.dir, INCOMING_NAME)
        try:
            size = os.fstat(fd).st_size
            buf = os.pread(fd, size, 0)
            try:
                i, t, voters, sections, learners = decode_snapshot(buf, path)
            except DamagedFile:
                return None
            if (i, t) != (index, term):
                return None
            if self.fsync:
                self.io.fsync(fd)
        finally:
            os.close(fd)
        final = self.path(index)
        self.io.rename(path, final)
        if self.fsync:
            self.io.fsync_dir(self.dir)
        return SnapshotFile(index, term, voters, size, final, learners), sections

    # -- pruning --------------------------------------------------------------------------------

    def prune(self, newest: int) -> None:
        """Delete complete snapshots older than `newest` beyond SNAPSHOTS_KEPT_MAX - 1 of them."""
        older = [i for i in self.indexes() if i < newest]
        for i in older[SNAPSHOTS_KEPT_MAX - 1:]:
            self.io.unlink(self.path(i))

    def close(self) -> None:
        self.abandon()
        for fd in (self._incoming_fd, self._read_fd):
            if fd >= 0:
                os.close(fd)
        self._incoming_fd = self._read_fd = -1


def _pwrite_all(io: FileIO, fd: int, data: bytes, offset: int) -> int:
    """Write all of `data` at `offset`; returns the offset after it."""
    view = memoryview(data)
    done = 0
    while done < len(data):
        n = io.pwrite(fd, view[done:], offset + done)
        assert n > 0
        done += n
    return offset + done


SYNC_STEP_BYTES = 4 << 20  # a snapshot file being written is flushed to disk in steps of this size
_STEP, _FINISH, _STOP = 1, 2, 3  # what the loop asks of a SnapshotWriter's thread


class SnapshotWriter:
    """Writes one snapshot file from parts the loop hands over, in the loop: each part is framed
    and written (pwrite into the page cache) as it comes, so a part costs the loop its bytes' CRC
    and copy, never a wait on the disk. A thread of its own (started without waiting for it to
    run) flushes the file to disk every SYNC_STEP_BYTES written, and after the last part does the
    final fsync, the rename and the directory fsync; `fd` becomes readable when it is done (or a
    write failed); `result()` then says how it went.

    Why flush in steps: the disk's completions run as interrupts on a CPU the loop may be on,
    and are charged to no thread; one fsync of a whole 40 MB file at the end took 18-28 ms from
    the loop in one pass (measured with 1,000,000 keys; bench/snapshots.md); flushed in 4 MiB
    steps, the worst pass of the same probe runs was 1.3-3.0 ms. (A thread that took every part
    would share the GIL with the loop hundreds of times per snapshot: on a loaded machine the
    loop then waits for it whenever it is descheduled holding the GIL; this one takes the GIL
    once per step.)"""

    def __init__(self, store: SnapshotStore, index: int, term: int, voters: tuple[str, ...],
                 learners: tuple[str, ...]) -> None:
        self.store = store
        self.index, self.term, self.voters, self.learners = index, term, voters, learners
        self._enc = SnapshotEncoder(index, term, voters, learners)
        self._tmp = store.path(index) + ".tmp"
        self._pos = 0
        self._flushed = 0  # bytes handed to the thread to flush so far
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._steps: Any = None  # the thread's queue once it runs: _STEP, _FINISH or _STOP
        self.fd, self._done_w = os.pipe()
        os.set_inheritable(self.fd, False)
        self._file = store.io.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)

    def put(self, name: str, part: bytes) -> None:
        enc = self._enc
        enc.add(name, part)
        self._write()

    def _write(self) -> None:
        if self._error is not None:
            return
        try:
            self._pos = _pwrite_all(self.store.io, self._file, b"".join(self._enc.take()), self._pos)
        except OSError as exc:  # reported by result(); the rest is not written
            self._error = exc
            return
        if self._pos - self._flushed >= SYNC_STEP_BYTES and self.store.fsync:
            self._flushed = self._pos
            self._to_thread(_STEP)

    def _to_thread(self, item: int) -> None:
        if self._steps is None:
            self._steps = SimpleQueue()
            _thread.start_new_thread(self._run, (self._steps,))
        self._steps.put(item)

    def finish(self) -> None:
        """Every part is in: the footer, then fsync, rename and directory fsync in the thread."""
        self._enc.finish()
        self._write()
        self._to_thread(_FINISH)

    def _run(self, steps: SimpleQueue) -> None:
        io = self.store.io
        while True:
            item = steps.get()
            if item == _STOP:
                return
            if item == _FINISH:
                break
            if self._error is None:  # a step: flush what is written so far (the loop writes on)
                try:
                    io.fdatasync(self._file)
                except BaseException as exc:  # the file may have lost data: the snapshot fails
                    self._error = exc
        try:
            if self._error is None:
                if self.store.fsync:
                    io.fsync(self._file)
                io.rename(self._tmp, self.store.path(self.index))
                if self.store.fsync:
                    io.fsync_dir(self.store.dir)
        except BaseException as exc:  # reported by result(), in the loop
            self._error = exc
        finally:
            self._done.set()
            os.write(self._done_w, b"\x00")

    def result(self) -> SnapshotFile:
        """Done (`fd` was readable): the durable file, or OSError."""
        self._done.wait()
        self._close()
        if self._error is not None:
            raise OSError(f"writing the snapshot for index {self.index} failed: {self._error!r}")
        return SnapshotFile(self.index, self.term, self.voters, self._pos, self.store.path(self.index),
                            self.learners)

    def cancel(self) -> None:
        """Stop (node shutdown): the temp file is swept at the next start. (A thread already
        finishing ends by itself; its file is then complete and valid.)"""
        if self._steps is not None:
            self._steps.put(_STOP)  # (ignored once it is finishing)
        self._close()

    def _close(self) -> None:
        if self._steps is not None and not self._done.is_set():
            fds = (self.fd,)  # (the thread may still use the others: they go with the process)
        else:
            fds = (self.fd, self._done_w, self._file)
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fd = self._done_w = self._file = -1
