"""Snapshot files and the segmented WAL: round trip, corruption handling, compaction bounds,
recovery on top of a snapshot, and the refusal when no file covers a gap."""

from __future__ import annotations

import os
import select
import time

import pytest

from rast_maelstrom import kv
from rast_maelstrom.runtime import wal as wal_mod
from rast_maelstrom.runtime.records import DamagedFile
from rast_maelstrom.runtime.snapshot import SnapshotStore, decode_snapshot, encode_snapshot, snapshot_name
from rast_maelstrom.runtime.wal import WalWriter, WriteAheadLog
from rast_maelstrom.state import StateMachine


def _blob(index=7, term=2, sections=(("kv", b'[[1,2],["a","b"]]'),)) -> bytes:
    out: list[bytes] = []
    encode_snapshot(index, term, ("n1", "n2"), sections, out.extend)
    return b"".join(out)


def test_snapshot_round_trip_and_sections_by_name():
    store = kv.KVStore()
    store.data = {i: b'{"v":%d}' % i for i in range(5000)} | {"s": b'"x"'}
    sm = StateMachine(store)
    blob = _blob(sections=list(sm.sections()) + [("later", b"")])
    index, term, voters, sections, learners = decode_snapshot(blob, "x")
    assert (index, term, voters, learners) == (7, 2, ("n1", "n2"), ())
    other = StateMachine(kv.KVStore())
    other.restore(sections)
    assert other.kv.data == store.data and sections["later"] == b""


def test_the_header_holds_the_configuration_and_format_1_files_still_load():
    out: list[bytes] = []
    encode_snapshot(9, 3, ("n0", "n1", "n2"), [("kv", b"[]")], out.extend, ("n4",))
    assert decode_snapshot(b"".join(out), "x")[2:] == (("n0", "n1", "n2"), {"kv": b"[]"}, ("n4",))
    # A file written before membership changes: version 1, a bare voter list; read with no learners.
    import orjson
    from rast_maelstrom.runtime import snapshot as snap_mod
    from rast_maelstrom.runtime.records import frame
    old: list[bytes] = []
    frame([snap_mod._HEADER.pack(b"H", snap_mod.MAGIC, 1, 9, 3), orjson.dumps(["n0", "n1"])], old)
    frame([b"S\x02kv", b"[]"], old)
    frame([snap_mod._FOOTER.pack(b"F", 1)], old)
    assert decode_snapshot(b"".join(old), "x") == (9, 3, ("n0", "n1"), {"kv": b"[]"}, ())
    bad: list[bytes] = []  # a format this node does not know is refused, not guessed at
    frame([snap_mod._HEADER.pack(b"H", snap_mod.MAGIC, 3, 9, 3), b"{}"], bad)
    with pytest.raises(DamagedFile, match="format"):
        decode_snapshot(b"".join(bad), "x")


@pytest.mark.parametrize("where", ["flip", "cut-record", "cut-boundary", "empty"])
def test_damaged_snapshot_is_refused(where):
    blob = bytearray(_blob(sections=[("kv", b"x" * 3_000_000)]))  # three section records
    if where == "flip":
        blob[len(blob) // 2] ^= 1
    elif where == "cut-record":
        del blob[len(blob) - 5:]
    elif where == "cut-boundary":  # exactly after a whole record: only the footer tells
        del blob[-(8 + 9):]
    else:
        blob = bytearray()
    with pytest.raises(DamagedFile):
        decode_snapshot(bytes(blob), "snap")


def test_forked_child_writes_the_state_as_of_the_fork(tmp_path):
    store = kv.KVStore()
    store.data = {i: b"1" for i in range(1000)}
    sm = StateMachine(store)
    ss = SnapshotStore(str(tmp_path))
    fd = ss.take(10, 3, ("n1",), sm.sections)
    store.data[0] = b"2"  # the parent carries on; the child's copy is the one at the fork
    select.select([fd], [], [], 30)
    snap = ss.taken()
    assert (snap.index, snap.term) == (10, 3)
    loaded, sections = ss.load(10)
    got = StateMachine(kv.KVStore())
    got.restore(sections)
    assert got.kv.data[0] == b"1" and len(got.kv.data) == 1000
    assert ss.indexes() == [10]


def test_received_chunks_become_a_snapshot_only_when_whole_and_right(tmp_path):
    blob = _blob()
    ss = SnapshotStore(str(tmp_path))
    for off in range(0, len(blob), 10):
        ss.receive(off, blob[off:off + 10])
    got = ss.finish_receive(7, 2)
    assert got is not None and got[0].size == len(blob) and ss.indexes() == [7]
    ss.receive(0, blob[:-1])  # one byte short: not a snapshot
    assert ss.finish_receive(7, 2) is None
    ss.receive(0, blob)
    assert ss.finish_receive(8, 2) is None  # not the one announced
    assert ss.indexes() == [7]


def _fill(w: WriteAheadLog, lo: int, hi: int, term: int = 1) -> None:
    for i in range(lo, hi + 1):
        w.append((term, None) if i == lo else None, i, [(term, b"x" * 100)])
    w.sync()


def test_wal_rolls_segments_and_compaction_deletes_the_covered_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(wal_mod, "segment_bytes_max", 2000)
    w = WriteAheadLog(str(tmp_path))
    w.recover()
    _fill(w, 1, 200)
    assert w.segment_count() > 5
    w.compact(120)
    names = sorted(n for n in os.listdir(tmp_path) if n.startswith("wal-"))
    firsts = [int(n[4:24]) for n in names]
    assert firsts[0] <= 121 and (len(firsts) == 1 or firsts[1] > 121)  # only what 120 covers went
    w.close()
    w = WriteAheadLog(str(tmp_path))
    rec = w.recover(120, 1)  # on top of a snapshot through 120
    assert rec.first_index == 121 and len(rec.entries) == 80 and rec.current_term == 1
    w.close()
    w = WriteAheadLog(str(tmp_path))
    with pytest.raises(DamagedFile, match="no snapshot covers"):
        w.recover()  # without the snapshot, entries 1..firsts[0]-1 are nowhere: refuse
    w.close()


def test_wal_through_a_writer_rolls_and_prunes(tmp_path, monkeypatch):
    monkeypatch.setattr(wal_mod, "segment_bytes_max", 3000)
    w = WriteAheadLog(str(tmp_path))
    w.recover()
    wr = WalWriter(w)
    for i in range(1, 301):
        wr.submit((1, "n1") if i == 1 else None, i, [(1, b"y" * 50)])
    last = wr.compact(250)
    for _ in range(1000):
        if wr.drain_wake() >= last:
            break
        select.select([wr.wake_fd], [], [], 1)
    wr.close()
    w.close()
    w = WriteAheadLog(str(tmp_path))
    rec = w.recover(250, 1)
    assert (rec.first_index, len(rec.entries), rec.voted_for) == (251, 50, "n1")
    assert len([n for n in os.listdir(tmp_path) if n.startswith("wal-")]) <= 2
    w.close()


def test_reset_after_an_installed_snapshot_replaces_the_log(tmp_path):
    w = WriteAheadLog(str(tmp_path))
    w.recover()
    _fill(w, 1, 10)
    w.append((3, None), None, [])  # the new leader's term reaches the log first
    w.reset(51, 3)  # a snapshot through 50, term 3, was installed
    w.append(None, 51, [(3, b"new")])
    w.sync()
    w.close()
    w = WriteAheadLog(str(tmp_path))
    rec = w.recover(50, 3)
    assert rec.first_index == 51 and rec.entries == [(3, b"new")]
    w.close()
    w = WriteAheadLog(str(tmp_path))
    with pytest.raises(DamagedFile, match="reset"):
        w.recover(40, 2)  # an older snapshot does not reach the reset: refuse
    w.close()


def test_entries_after_a_mismatching_entry_at_the_snapshot_are_dropped(tmp_path):
    # A crash after installing a snapshot (50, term 3) but before the reset record: the WAL still
    # holds the old log, whose entry 50 has term 1. What follows it is not the snapshot's future.
    w = WriteAheadLog(str(tmp_path))
    w.recover()
    _fill(w, 1, 60)
    w.close()
    w = WriteAheadLog(str(tmp_path))
    rec = w.recover(50, 3)
    assert rec.first_index == 51 and rec.entries == []
    w.close()
    w = WriteAheadLog(str(tmp_path))
    rec = w.recover(50, 1)  # it matches: the suffix is kept
    assert len(rec.entries) == 10
    w.close()


def test_snapshot_store_prunes_older_files_and_sweeps_temp_files(tmp_path):
    ss = SnapshotStore(str(tmp_path))
    for i in (5, 9, 12):
        (tmp_path / snapshot_name(i)).write_bytes(_blob(index=i))
    (tmp_path / (snapshot_name(13) + ".tmp")).write_bytes(b"half")
    assert ss.indexes() == [12, 9, 5]
    assert not (tmp_path / (snapshot_name(13) + ".tmp")).exists()
    ss.prune(12)
    assert ss.indexes() == [12]


def test_the_snapshot_child_does_not_hold_the_data_directory_lock(tmp_path):
    """A killed node's child may still be writing; the restarted node must find the lock free."""
    import fcntl

    lock = os.open(tmp_path / "LOCK", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    store = kv.KVStore()
    store.data = {i: b"1" for i in range(300_000)}  # long enough to still be running below
    ss = SnapshotStore(str(tmp_path))
    fd = ss.take(5, 1, ("n1",), StateMachine(store).sections)
    pid = ss.child[0]
    os.close(lock)  # the parent dies
    again = os.open(tmp_path / "LOCK", os.O_RDWR)
    got = False
    try:
        for _ in range(200):  # (the child drops its copy as its first act; give it that moment)
            try:
                fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
                break
            except BlockingIOError:
                time.sleep(0.005)
        still_running = os.waitpid(pid, os.WNOHANG) == (0, 0)
    finally:
        os.close(again)
    assert got, "the child kept the data directory's lock"
    select.select([fd], [], [], 30)
    assert ss.taken().index == 5
    assert still_running, "the child finished too soon for this test to mean anything"


def _cmd(key, value, src=None, msg_id=0):
    return kv.encode_write(key, b"%d" % value, src, msg_id)


@pytest.mark.parametrize("layer_items", [kv.LAYER_ITEMS_MAX, 3])
def test_a_sliced_snapshot_holds_the_state_at_its_index_while_writes_go_on(tmp_path, layer_items):
    """The default way: frozen map and session table, slices written as they come, later writes
    in the overlay (read back at once), folded back after; the file holds exactly what serializing
    the state at that index whole gives. With small layers, the writes stack many overlay layers:
    the newest write of a key is what every read sees, and folding keeps it so."""
    from rast_maelstrom.state import SnapshotJob
    store = kv.KVStore()
    for i in range(3000):
        store.apply(_cmd(i, i, f"c{i % 7}", i))
    sm = StateMachine(store)
    want: list[bytes] = []
    encode_snapshot(10, 3, ("n1",), sm.sections(), want.extend)
    ss = SnapshotStore(str(tmp_path))
    job = SnapshotJob(sm, ss.begin(10, 3, ("n1",)), slice_items=100, slice_bytes=1 << 20, slice_results=50,
                      fold_items=7, layer_items=layer_items)
    expect = {i: b"%d" % i for i in range(3000)}
    steps = depth_max = 0
    for k in range(100_000):
        if k % 2 == 0:  # writes and cas between slices: overwrite, add, new sessions
            key = (k * 7919) % 5000 if k % 3 else (k // 3) % 8  # (a few hot keys: in many layers)
            store.apply(_cmd(key, -k, f"c{k % 11}", 10_000 + k))
            expect[key] = b"%d" % -k
            assert store.read(key) == (None, expect[key])  # the overlay first
            assert store.read(2) == (None, expect[2])  # ... then the frozen map
            assert store.apply(kv.encode_cas(2, expect[2], expect[2])) == (None, None)
        steps += 1
        layer, depth = store.data, 0
        while type(layer) is kv.Overlay:
            layer, depth = layer.base, depth + 1
        depth_max = max(depth_max, depth)
        assert store.items() == expect
        if not job.step():
            break
    assert steps > 3000 // 100, "the snapshot was not sliced"
    assert depth_max == 1 if layer_items == kv.LAYER_ITEMS_MAX else depth_max > 5, depth_max
    assert type(store.data) is dict and store.sessions.frozen is None  # folded back, thawed
    assert store.data == expect
    select.select([job.writer.fd], [], [], 30)
    snap = ss.taken()
    blob = (tmp_path / snapshot_name(10)).read_bytes()
    assert snap.size == len(blob) and decode_snapshot(blob, "x") == decode_snapshot(b"".join(want), "x")
    assert ss.load(10)[0] == snap


@pytest.mark.parametrize("fault", ["write:2:28", "fsync:1:5"])
def test_a_failed_snapshot_write_is_reported_and_the_overlay_still_folds_back(tmp_path, fault):
    from rast_maelstrom.runtime.fileio import DiskFault, FaultyFileIO
    from rast_maelstrom.state import SnapshotJob
    store = kv.KVStore()
    store.data = {i: b"1" * 100 for i in range(2000)}
    ss = SnapshotStore(str(tmp_path), io=FaultyFileIO(DiskFault.parse(fault)))
    job = SnapshotJob(StateMachine(store), ss.begin(4, 1, ("n1",)), slice_items=10)
    while job.step():
        store.apply(_cmd(5, 5))
    select.select([job.writer.fd], [], [], 30)
    with pytest.raises(OSError, match="index 4"):
        ss.taken()
    assert type(store.data) is dict and store.read(5) == (None, b"5") and len(store.data) == 2000
    assert not (tmp_path / snapshot_name(4)).exists() and ss.indexes() == []


@pytest.mark.parametrize("fault", [None, "fsync:2:EIO"])
def test_a_large_snapshot_is_flushed_in_steps_as_it_is_written_and_a_failed_step_fails_it(
        tmp_path, monkeypatch, fault):
    """The writer's thread flushes the file every SYNC_STEP_BYTES while the loop writes on (one
    fsync of the whole file at the end stalled the loop on the disk's interrupts); a step whose
    flush fails fails the snapshot: nothing is renamed into place."""
    from rast_maelstrom.runtime import snapshot as snap_mod
    from rast_maelstrom.runtime.fileio import DiskFault, FaultyFileIO
    from rast_maelstrom.state import SnapshotJob
    monkeypatch.setattr(snap_mod, "SYNC_STEP_BYTES", 16 << 10)
    store = kv.KVStore()
    store.data = {i: b"1" * 100 for i in range(4000)}  # about 450 KB of file
    io = FaultyFileIO(*([DiskFault.parse(fault)] if fault else []))
    ss = SnapshotStore(str(tmp_path), io=io)
    job = SnapshotJob(StateMachine(store), ss.begin(4, 1, ("n1",)), slice_items=50)
    while job.step():
        pass
    assert select.select([job.writer.fd], [], [], 30)[0]
    if fault is None:
        snap = ss.taken()
        assert io.calls["fsync"] >= snap.size // (32 << 10), io.calls  # steps as it grew, then the final fsyncs
        assert ss.indexes() == [4] and ss.load(4)[1]["kv"] == store.serialize()
    else:
        with pytest.raises(OSError, match="index 4"):
            ss.taken()
        assert io.failed["fsync"] >= 1 and ss.indexes() == [] and not (tmp_path / snapshot_name(4)).exists()
