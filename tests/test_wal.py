"""Tests for the write-ahead log and its writer thread (rast_maelstrom.runtime.wal).

What a node operator would notice: state survives restarts, torn tails are cut cleanly and
reported while damage anywhere is refused with the file left untouched, a crash loses nothing
that was reported durable, submits are group committed, failures (injected through the file
layer at any point) stop the writer loudly, and two nodes cannot share a data directory.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rast_maelstrom.runtime import wal as walmod
from rast_maelstrom.runtime.fileio import REAL, DiskFault, FaultyFileIO
from rast_maelstrom.runtime.wal import (
    DamagedFile,
    WalError,
    WalLockedError,
    WalWriter,
    WalWriterError,
    WriteAheadLog,
    segment_name,
)


def open_wal(path, **kw):
    w = WriteAheadLog(str(path), **kw)
    return w, w.recover()


def seg(path):
    return os.path.join(str(path), segment_name(1))


def reopen(path, **kw):
    w, r = open_wal(path, **kw)
    w.close()
    return r


# -- round trip and semantics ------------------------------------------------------------------


def test_round_trip_hard_state_and_entries(tmp_path):
    w, r = open_wal(tmp_path)
    assert (r.current_term, r.voted_for, r.first_index, r.entries, r.truncated_bytes) == (0, None, 1, [], 0)
    data = [(1, b'{"op":"write","k":1}'), (1, b""), (2, bytes(range(256)))]
    w.append((2, "n3"), 1, data)
    w.sync()
    w.close()
    r = reopen(tmp_path)
    assert (r.current_term, r.voted_for, r.first_index, r.entries, r.truncated_bytes) == (2, "n3", 1, data, 0)


def test_hard_state_only_and_vote_cleared_in_new_term(tmp_path):
    w, _ = open_wal(tmp_path)
    w.append((5, "n1"), None, [])
    w.append((6, None), None, [])
    w.close()  # close syncs
    r = reopen(tmp_path)
    assert (r.current_term, r.voted_for) == (6, None)


def test_replace_suffix(tmp_path):
    w, _ = open_wal(tmp_path)
    w.append((1, None), 1, [(1, b"a"), (1, b"b"), (1, b"c"), (1, b"d")])
    w.sync()
    w.append((2, "n2"), 3, [(2, b"X")])  # follower cuts 3..4, appends a new 3
    w.append(None, 4, [(2, b"Y"), (2, b"Z")])
    w.append(None, 2, [(2, b"Q")])  # and cuts again from 2
    w.close()
    r = reopen(tmp_path)
    assert r.entries == [(1, b"a"), (2, b"Q")]
    # Appending right after recovery continues from the recovered last index.
    w, _ = open_wal(tmp_path)
    w.append(None, 3, [(2, b"R")])
    w.close()
    assert reopen(tmp_path).entries == [(1, b"a"), (2, b"Q"), (2, b"R")]


def test_append_rejects_broken_invariants(tmp_path):
    w, _ = open_wal(tmp_path, fsync=False)
    w.append((3, "n1"), 1, [(2, b"a"), (3, b"b")])
    with pytest.raises(AssertionError):
        w.append(None, 4, [(3, b"gap")])  # start_index beyond last + 1
    with pytest.raises(AssertionError):
        w.append(None, 3, [(1, b"old")])  # term below the previous entry's
    with pytest.raises(AssertionError):
        w.append(None, 3, [(4, b"future")])  # term above current_term
    with pytest.raises(AssertionError):
        w.append((2, None), None, [])  # current_term going backwards
    with pytest.raises(AssertionError):
        w.append((3, "n2"), None, [])  # second vote in the same term
    w.close()


def test_empty_segment_file_is_a_fresh_log(tmp_path):
    open(seg(tmp_path), "wb").close()  # crash between create and header write
    r = reopen(tmp_path)
    assert (r.current_term, r.entries, r.truncated_bytes) == (0, [], 0)
    w, _ = open_wal(tmp_path)
    w.append((1, None), 1, [(1, b"x")])
    w.close()
    assert reopen(tmp_path).entries == [(1, b"x")]


def test_missing_directory_is_created(tmp_path):
    d = tmp_path / "a" / "b" / "data"
    w, r = open_wal(d)
    assert r.entries == [] and d.is_dir()
    w.append((1, None), 1, [(1, b"x")])
    w.close()
    assert reopen(d).entries == [(1, b"x")]


def test_foreign_file_is_refused_not_truncated(tmp_path):
    w, _ = open_wal(tmp_path)
    w.close()
    path = seg(tmp_path)
    raw = bytearray(open(path, "rb").read())
    # A well-formed header record with another magic: not ours to cut.
    payload = walmod._HEADER.pack(0, b"OTHERFMT", 1, 1)
    import zlib

    raw[:] = walmod._REC.pack(len(payload), zlib.crc32(payload)) + payload
    open(path, "wb").write(raw)
    with pytest.raises(WalError, match="not a Rast WAL"):
        open_wal(tmp_path)
    assert open(path, "rb").read() == raw


# -- torn and corrupt tails --------------------------------------------------------------------


def build_log(path):
    """A log whose last record is an entry; returns (entries, offset of the last record)."""
    w, _ = open_wal(path, fsync=False)
    w.append((1, "n1"), 1, [(1, b"first"), (1, b"second")])
    w.append((2, None), 3, [(2, b"third")])
    w.sync()
    boundary = w.file_bytes
    w.append(None, 4, [(2, b"the last record")])
    w.close()
    return [(1, b"first"), (1, b"second"), (2, b"third")], boundary


def test_torn_tail_at_every_offset_of_the_last_record(tmp_path, caplog):
    expected, boundary = build_log(tmp_path)
    full = open(seg(tmp_path), "rb").read()
    assert len(full) > boundary + 8
    for cut in range(boundary, len(full)):
        with open(seg(tmp_path), "wb") as f:
            f.write(full[:cut])
        caplog.clear()
        w, r = open_wal(tmp_path, fsync=False)
        assert (r.entries, r.current_term, r.voted_for) == (expected, 2, None), cut
        assert r.truncated_bytes == cut - boundary
        assert os.path.getsize(seg(tmp_path)) == boundary
        if cut > boundary:
            assert f"offset {boundary}" in caplog.text and f"{cut - boundary} bytes" in caplog.text
        w.append(None, 4, [(2, b"after")])
        w.close()
        r2 = reopen(tmp_path, fsync=False)
        assert r2.entries == expected + [(2, b"after")] and r2.truncated_bytes == 0


def record_offsets(path):
    """Start offset of every record in the segment."""
    raw = open(seg(path), "rb").read()
    offs, off = [], 0
    while off < len(raw):
        offs.append(off)
        (length, _) = walmod._REC.unpack_from(raw, off)
        off += walmod._REC.size + length
    assert off == len(raw)
    return offs


def flip(path, offset):
    with open(seg(path), "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def refused(path, offset):
    """Opening `path` raises DamagedFile naming the segment and `offset`, and leaves it untouched."""
    before = open(seg(path), "rb").read()
    with pytest.raises(DamagedFile) as exc:
        open_wal(path, fsync=False)
    assert exc.value.path == seg(path) and exc.value.offset == offset, str(exc.value)
    assert f"{seg(path)} is damaged at offset {offset}" in str(exc.value)
    assert open(seg(path), "rb").read() == before, "a damaged segment must be left untouched"
    return exc.value


def test_flipped_byte_in_last_record_is_damage_not_a_torn_tail(tmp_path):
    """The record is complete (all its bytes are there) but fails its checksum: it may be an
    acknowledged write, so recovery refuses instead of cutting it."""
    _, boundary = build_log(tmp_path)
    size = os.path.getsize(seg(tmp_path))
    flip(tmp_path, size - 2)  # inside the last record's data
    assert "checksum mismatch" in str(refused(tmp_path, boundary))


def test_flipped_byte_in_middle_record_is_refused(tmp_path):
    build_log(tmp_path)
    offs = record_offsets(tmp_path)
    # Records: header, hard state, e1, e2, hard state, e3, e4. Corrupt e2's data.
    assert len(offs) == 7
    flip(tmp_path, offs[4] - 1)
    refused(tmp_path, offs[3])


@pytest.mark.parametrize("where", ["middle", "last"])
def test_flipped_length_field_is_refused(tmp_path, where):
    """A longer length reaches past the end of the file like a torn record, but an intact record
    follows (middle) or a shorter length matches the checksum (last): damage, not a tear."""
    build_log(tmp_path)
    offs = record_offsets(tmp_path)
    at = offs[3] if where == "middle" else offs[-1]
    with open(seg(tmp_path), "r+b") as f:
        f.seek(at + 2)
        b = f.read(1)
        f.seek(at + 2)
        f.write(bytes([b[0] | 0x08]))  # length grows by 512 KiB: past the end of the file
    refused(tmp_path, at)


@pytest.mark.parametrize("length,cut", [(0xFFFFFFFF, False), (walmod.record_bytes_max, True),
                                        (walmod.record_bytes_max + 1, False), (3, False)])
def test_garbage_length_field_does_not_allocate(tmp_path, length, cut):
    """Garbage after the last record: a header claiming more bytes than the file has, with nothing
    intact after it, is a torn tail (cut); a length out of bounds is damage (refused). Neither
    allocates anything near the claimed length."""
    expected, _ = build_log(tmp_path)
    size = os.path.getsize(seg(tmp_path))
    with open(seg(tmp_path), "ab") as f:
        f.write(walmod._REC.pack(length, 0) + b"\0" * 64)
    tracemalloc.start()
    try:
        if cut:
            r = reopen(tmp_path, fsync=False)
            assert r.entries[:3] == expected and r.truncated_bytes == 72
            assert os.path.getsize(seg(tmp_path)) == size
        else:
            assert "out of bounds" in str(refused(tmp_path, size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"recovery allocated {peak} bytes for a {length} byte length field"


def test_index_gap_is_damage(tmp_path):
    w, _ = open_wal(tmp_path, fsync=False)
    w.append((1, None), 1, [(1, b"a")])
    w.close()
    size = os.path.getsize(seg(tmp_path))
    out: list[bytes] = []
    w._encode_entry(5, 1, b"gap", out)  # a well-checksummed record at index 5 after index 1
    with open(seg(tmp_path), "ab") as f:
        f.write(b"".join(out))
    assert "entry index 5 outside [1, 2]" in str(refused(tmp_path, size))


def test_compaction_on_recovery_when_mostly_superseded(tmp_path, monkeypatch):
    monkeypatch.setattr(walmod, "compact_bytes_min", 0)
    w, _ = open_wal(tmp_path)
    w.append((1, None), 1, [(1, b"v" * 100) for _ in range(50)])
    w.append((2, None), 2, [(2, b"w")])  # supersedes 49 records
    w.close()
    before = os.path.getsize(seg(tmp_path))
    r = reopen(tmp_path)
    after = os.path.getsize(seg(tmp_path))
    assert r.entries == [(1, b"v" * 100), (2, b"w")] and r.current_term == 2
    assert after < before / 2
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []
    w, r2 = open_wal(tmp_path)
    assert r2.entries == r.entries and os.path.getsize(seg(tmp_path)) == after
    w.append(None, 3, [(2, b"z")])
    w.close()
    assert reopen(tmp_path).entries == r.entries + [(2, b"z")]


# -- the lock ----------------------------------------------------------------------------------


def test_second_opener_is_rejected(tmp_path):
    w, _ = open_wal(tmp_path)
    with pytest.raises(WalLockedError, match="in use"):
        WriteAheadLog(str(tmp_path))
    code = "import sys; from rast_maelstrom.runtime.wal import WriteAheadLog; WriteAheadLog(sys.argv[1])"
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, timeout=30)
    assert p.returncode != 0 and b"WalLockedError" in p.stderr and str(os.getpid()).encode() in p.stderr
    w.close()
    w2, _ = open_wal(tmp_path)  # released on close
    w2.close()


# -- the writer thread -------------------------------------------------------------------------


class FsyncCounter:
    """Stand-in for os.fdatasync: counts calls, can hold them on a gate, can fail."""

    def __init__(self, real, gate=None, fail=None):
        self.real, self.gate, self.fail, self.calls = real, gate, fail, 0

    def __call__(self, fd):
        self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        if self.fail is not None:
            raise self.fail
        self.real(fd)


def wait_readable(fd, timeout_s=10.0):
    r, _, _ = select.select([fd], [], [], timeout_s)
    return bool(r)


def test_group_commit_uses_fewer_fsyncs_than_batches(tmp_path, monkeypatch):
    w, _ = open_wal(tmp_path)
    gate = threading.Event()
    counter = FsyncCounter(os.fdatasync, gate=gate)
    monkeypatch.setattr(os, "fdatasync", counter)
    writer = WalWriter(w)
    batches_n = 200
    ids = [writer.submit((1, None) if i == 0 else None, i + 1, [(1, b"e%d" % i)]) for i in range(batches_n)]
    assert ids == list(range(1, batches_n + 1))
    gate.set()
    deadline = time.monotonic() + 10
    while writer.durable_id < batches_n and time.monotonic() < deadline:
        wait_readable(writer.wake_fd, 1.0)
        writer.drain_wake()
    assert writer.durable_id == batches_n
    assert 1 <= counter.calls <= 2, f"{counter.calls} fsyncs for {batches_n} batches"
    assert writer.fsync_count == counter.calls
    writer.close()
    monkeypatch.undo()
    w.close()
    assert reopen(tmp_path).entries == [(1, b"e%d" % i) for i in range(batches_n)]


def test_wake_fd_and_durable_ids_in_order(tmp_path):
    w, _ = open_wal(tmp_path, fsync=False)
    writer = WalWriter(w)
    assert not wait_readable(writer.wake_fd, 0)
    seen = [0]
    index = 1
    for round_ in range(20):
        ids = []
        for _ in range(5):
            ids.append(writer.submit((1, None) if index == 1 else None, index, [(1, b"%d" % index)]))
            index += 1
        assert ids == list(range(ids[0], ids[0] + 5))
        while writer.durable_id < ids[-1]:
            assert wait_readable(writer.wake_fd), "wake fd never became readable"
            d = writer.drain_wake()
            assert d >= seen[-1]  # durable ids never go backwards
            seen.append(d)
    assert seen[-1] == 100
    # Once everything is durable and the last wake is drained, the wake fd stays quiet: an idle
    # writer must not keep the node's loop spinning. (The last pass's byte may still be on its way.)
    wait_readable(writer.wake_fd, 0.2)
    assert writer.drain_wake() == 100
    assert not wait_readable(writer.wake_fd, 0.3), "the writer woke the loop with nothing new durable"
    writer.close()
    w.close()
    assert [d for _, d in reopen(tmp_path).entries] == [b"%d" % i for i in range(1, 101)]


def test_close_writes_what_is_queued(tmp_path):
    w, _ = open_wal(tmp_path)
    writer = WalWriter(w)
    for i in range(1, 51):
        writer.submit((1, None) if i == 1 else None, i, [(1, b"x")])
    writer.close()
    assert writer.durable_id == 50
    w.close()
    assert len(reopen(tmp_path).entries) == 50


def test_submit_blocks_when_pending_batches_max_reached(tmp_path, monkeypatch):
    w, _ = open_wal(tmp_path)
    gate = threading.Event()
    monkeypatch.setattr(os, "fdatasync", FsyncCounter(os.fdatasync, gate=gate))
    writer = WalWriter(w, pending_batches_max=4)
    for i in range(1, 5):
        writer.submit((1, None) if i == 1 else None, i, [(1, b"x")])
    returned = threading.Event()
    t = threading.Thread(target=lambda: (writer.submit(None, 5, [(1, b"y")]), returned.set()))
    t.start()
    assert not returned.wait(0.3), "submit did not block with 4 batches not yet durable"
    gate.set()
    assert returned.wait(10), "submit stayed blocked after the batches became durable"
    t.join(10)
    writer.close()
    assert writer.durable_id == 5
    monkeypatch.undo()
    w.close()


def test_fsync_failure_stops_the_writer(tmp_path, monkeypatch):
    w, _ = open_wal(tmp_path)
    counter = FsyncCounter(os.fdatasync, fail=OSError(5, "Input/output error"))
    monkeypatch.setattr(os, "fdatasync", counter)
    writer = WalWriter(w)
    writer.submit((1, None), 1, [(1, b"x")])
    assert wait_readable(writer.wake_fd), "the loop was not woken on failure"
    deadline = time.monotonic() + 10
    while writer.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(writer.error, OSError) and writer.error.errno == 5
    assert writer.drain_wake() == 0  # nothing may be reported durable
    with pytest.raises(WalWriterError):
        writer.submit(None, 2, [(1, b"y")])
    writer.close()
    with pytest.raises(WalError):
        w.sync()  # the log is poisoned: fsync is never retried
    monkeypatch.undo()
    w.close()


def test_a_segment_changed_behind_the_writers_back_stops_it_at_that_batch(tmp_path):
    w, _ = open_wal(tmp_path)
    writer = WalWriter(w)
    first = writer.submit((1, None), 1, [(1, b"x")])
    deadline = time.monotonic() + 10
    while writer.durable_id < first and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(seg(tmp_path), "ab") as f:  # another writer (or a bug of ours) grows the segment
        f.write(b"stray")
    writer.submit(None, 2, [(1, b"y")])
    assert wait_readable(writer.wake_fd), "the loop was not woken on the failed check"
    while writer.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(writer.error, AssertionError)
    with pytest.raises(WalWriterError):
        writer.submit(None, 3, [(1, b"z")])
    writer.close()
    w.close()


class PowerLoss:
    """The disk under a power cut: a file keeps only what the last fdatasync/fsync of it covered.
    (SIGKILL keeps the page cache, so only this shows a missing fsync.) Wraps the real calls."""

    def __init__(self, monkeypatch):
        self.images: dict[str, bytes] = {}
        self.syncs = 0
        for name in ("fdatasync", "fsync"):
            monkeypatch.setattr(os, name, self._wrap(getattr(os, name)))

    def _wrap(self, real):
        def sync(fd):
            real(fd)
            path = os.readlink(f"/proc/self/fd/{fd}")
            if os.path.isfile(path):
                self.syncs += 1
                self.images[path] = os.pread(fd, os.fstat(fd).st_size, 0)
        return sync

    def cut(self, path):
        """Power returns: `path` holds what its last sync covered (nothing if it was never synced)."""
        path = os.path.realpath(path)
        with open(path, "wb") as f:
            f.write(self.images.get(path, b""))


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="uses /proc/self/fd")


@needs_proc
def test_power_loss_keeps_everything_reported_durable(tmp_path, monkeypatch):
    power = PowerLoss(monkeypatch)
    w, _ = open_wal(tmp_path)
    writer = WalWriter(w)
    batches_n = 50
    for i in range(batches_n):
        writer.submit((1, None) if i == 0 else None, i + 1, [(1, b"e%d" % i)])
    deadline = time.monotonic() + 10
    while writer.drain_wake() < batches_n and time.monotonic() < deadline:
        wait_readable(writer.wake_fd, 1.0)
    reported = writer.drain_wake()
    assert reported == batches_n
    power.cut(seg(tmp_path))  # the machine dies with the node still running
    writer.close()
    monkeypatch.undo()
    w.close()
    power.cut(seg(tmp_path))  # (closing synced again; the cut happened before that)
    r = reopen(tmp_path)
    assert r.entries[:reported] == [(1, b"e%d" % i) for i in range(reported)]
    assert r.current_term == 1


@needs_proc
def test_power_loss_after_close_keeps_everything(tmp_path, monkeypatch):
    power = PowerLoss(monkeypatch)
    w, _ = open_wal(tmp_path)
    w.append((3, "n2"), 1, [(3, b"kept")])
    w.close()
    power.cut(seg(tmp_path))
    monkeypatch.undo()
    r = reopen(tmp_path)
    assert (r.current_term, r.voted_for, r.entries) == (3, "n2", [(3, b"kept")])


@needs_proc
def test_power_loss_takes_what_was_never_synced(tmp_path, monkeypatch):
    """The model bites: without fsync (the --no-fsync comparison mode) a power cut loses the log."""
    power = PowerLoss(monkeypatch)
    w, _ = open_wal(tmp_path, fsync=False)
    w.append((3, "n2"), 1, [(3, b"lost")])
    w.close()
    power.cut(seg(tmp_path))
    monkeypatch.undo()
    r = reopen(tmp_path)
    assert (r.current_term, r.entries) == (0, []) and power.syncs == 0


def test_after_bytes_are_sent_only_once_their_batch_is_fsynced_and_in_order(tmp_path, monkeypatch):
    w, _ = open_wal(tmp_path)
    gate = threading.Event()
    counter = FsyncCounter(os.fdatasync, gate=gate)
    monkeypatch.setattr(os, "fdatasync", counter)
    sent: list[tuple[bytes, int]] = []  # what the thread sent, and the fsyncs done by then
    writer = WalWriter(w, send=lambda b: sent.append((b, counter.calls)))
    writer.submit((1, None), 1, [(1, b"a")], b"ack1\n", False)
    writer.submit(None, 2, [(1, b"b")], b"ack2\n", False)
    writer.submit(None, None, (), b"after-only\n", False)  # no records: rides behind the others
    time.sleep(0.2)
    assert sent == [], "an acknowledgement left before its fsync"
    assert not wait_readable(writer.wake_fd, 0), "wake=False batches woke the loop"
    gate.set()
    deadline = time.monotonic() + 10
    while writer.durable_id < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.close()
    assert b"".join(b for b, _ in sent) == b"ack1\nack2\nafter-only\n"
    assert all(fsyncs >= 1 for _, fsyncs in sent)
    assert counter.calls <= 2  # the records-free batch needs no fsync of its own
    monkeypatch.undo()
    w.close()


def test_after_bytes_of_a_failed_fsync_are_never_sent(tmp_path, monkeypatch):
    w, _ = open_wal(tmp_path)
    failing = FsyncCounter(os.fdatasync, fail=OSError(5, "Input/output error"))
    monkeypatch.setattr(os, "fdatasync", failing)
    sent: list[bytes] = []
    writer = WalWriter(w, send=sent.append)
    writer.submit((1, None), 1, [(1, b"x")], b"ack\n", False)
    assert wait_readable(writer.wake_fd), "the loop was not woken on failure, even with wake=False"
    writer.close()
    assert sent == [] and isinstance(writer.error, OSError)
    monkeypatch.undo()
    w.close()


CRASH_CHILD = textwrap.dedent(
    """
    import select, sys
    from rast_maelstrom.runtime.wal import WriteAheadLog, WalWriter
    wal = WriteAheadLog(sys.argv[1])
    wal.recover()
    writer = WalWriter(wal, pending_batches_max=64)
    reported = 0
    for b in range(1, 100001):
        start = 3 * (b - 1) + 1
        writer.submit((1, None) if b == 1 else None, start,
                      [(1, b"batch %d entry %d" % (b, j)) for j in range(3)])
        if select.select([writer.wake_fd], [], [], 0)[0]:
            d = writer.drain_wake()
            if d > reported:
                reported = d
                print(d, flush=True)
    """
)


def test_crash_loses_nothing_reported_durable(tmp_path):
    p = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    reported = 0
    try:
        deadline = time.monotonic() + 30
        while reported < 200 and time.monotonic() < deadline:
            if not wait_readable(p.stdout.fileno(), 5):
                break
            line = p.stdout.readline()
            if not line:
                break
            reported = int(line)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        p.stdout.close()
        err = p.stderr.read()
        p.stderr.close()
    assert reported >= 200, f"child reported only {reported} durable batches: {err!r}"
    r = reopen(tmp_path)
    expected = [(1, b"batch %d entry %d" % (b, j)) for b in range(1, reported + 1) for j in range(3)]
    assert r.entries[: len(expected)] == expected
    # Whatever else survived is a prefix of what the child submitted.
    n = len(r.entries)
    b_max = n // 3 + 1
    everything = [(1, b"batch %d entry %d" % (b, j)) for b in range(1, b_max + 1) for j in range(3)]
    assert r.entries == everything[:n]


# -- property: random histories against an in-memory model -------------------------------------


@st.composite
def histories(draw):
    ops = []
    term, vote, log = 0, None, []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["hs", "append", "replace", "both", "reopen"]))
        if kind == "reopen":
            ops.append(("reopen",))
            continue
        hs = None
        if kind in ("hs", "both"):
            new_term = term + draw(st.integers(0, 2))
            if new_term == term and vote is not None:
                new_vote = vote
            else:
                new_vote = draw(st.sampled_from([None, "n1", "n2", "n3"]))
            hs = (new_term, new_vote)
            term, vote = hs
        start, entries = None, []
        if kind in ("append", "replace", "both"):
            start = len(log) + 1 if kind != "replace" or not log else draw(st.integers(1, len(log) + 1))
            prev = log[start - 2][0] if start >= 2 else 0
            assert prev <= term  # model log terms never exceed the model current_term
            for _ in range(draw(st.integers(1, 4))):
                t = draw(st.integers(prev, term))
                entries.append((t, draw(st.binary(max_size=12))))
                prev = t
            log[start - 1:] = entries
        ops.append(("append", hs, start, entries))
    return ops, (term, vote, log)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.booleans())
def test_random_histories_round_trip(history, through_writer):
    ops, (term, vote, log) = history
    with tempfile.TemporaryDirectory() as d:
        w, _ = open_wal(d, fsync=False)
        writer = WalWriter(w) if through_writer else None
        for op in ops:
            if op[0] == "reopen":
                if writer:
                    writer.close()
                w.close()
                w, _ = open_wal(d, fsync=False)
                writer = WalWriter(w) if through_writer else None
                continue
            _, hs, start, entries = op
            if writer:
                writer.submit(hs, start, entries)
            else:
                w.append(hs, start, entries)
        if writer:
            writer.close()
        w.close()
        r = reopen(d, fsync=False)
        assert (r.current_term, r.voted_for, r.entries, r.truncated_bytes) == (term, vote, log, 0)


# -- disk faults through the injectable file layer ---------------------------------------------


def run_until_fault(path, fault):
    """Submit batches through a WalWriter over a failing file layer until the writer fails; return
    the batches it reported durable (id -> entries). Startup failures are reported as None."""
    io = FaultyFileIO(fault)
    try:
        w = WriteAheadLog(str(path), io=io)
        w.recover()
    except OSError as e:
        assert e.errno == fault.errno
        return None
    writer = WalWriter(w)
    batches: dict[int, list] = {}
    durable: dict[int, list] = {}
    index = 1
    try:
        for b in range(1, 200):
            ents = [(1, b"batch %d entry %d" % (b, j)) for j in range(b % 3 + 1)]
            try:
                bid = writer.submit((1, None) if b == 1 else None, index, ents)
            except WalWriterError:
                break
            batches[bid] = ents
            index += len(ents)
            wait_readable(writer.wake_fd, 0.002)
            d = writer.drain_wake()
            durable.update({i: batches[i] for i in batches if i <= d})
        else:
            raise AssertionError(f"{fault} never fired")
        assert isinstance(writer.error, OSError) and writer.error.errno == fault.errno
        d = writer.drain_wake()
        durable.update({i: batches[i] for i in batches if i <= d})
    finally:
        writer.close()
        w.close()
    return durable


@pytest.mark.parametrize("kind,err", [("write", errno.ENOSPC), ("fsync", errno.EIO)])
def test_no_batch_reported_durable_is_lost_when_a_write_or_fsync_fails_at_any_point(tmp_path, kind, err):
    for nth in range(1, 16):
        d = tmp_path / f"{kind}-{nth}"
        durable = run_until_fault(d, DiskFault(kind, nth, err))
        if durable is None:
            continue  # failed while opening: nothing was ever reported durable
        r = reopen(d)  # a healthy disk again: the torn tail of the failed write is cut
        want = [e for bid in sorted(durable) for e in durable[bid]]
        assert r.entries[: len(want)] == want, f"{kind} #{nth}: a batch reported durable was lost"


def test_a_failed_compaction_does_not_block_a_healthy_log(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(walmod, "compact_bytes_min", 0)
    w, _ = open_wal(tmp_path)
    w.append((1, None), 1, [(1, b"v" * 100) for _ in range(50)])
    w.append((2, None), 2, [(2, b"w")])  # supersedes 49 records: recovery wants to compact
    w.close()
    before = open(seg(tmp_path), "rb").read()
    w = WriteAheadLog(str(tmp_path), io=FaultyFileIO(DiskFault("write", 1, errno.ENOSPC)))
    r = w.recover()
    assert r.entries == [(1, b"v" * 100), (2, b"w")] and r.current_term == 2
    assert "compaction failed" in caplog.text
    assert open(seg(tmp_path), "rb").read() == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    w.io = REAL  # the disk has room again
    w.append(None, 3, [(2, b"after")])
    w.close()
    assert reopen(tmp_path).entries[-1] == (2, b"after")
