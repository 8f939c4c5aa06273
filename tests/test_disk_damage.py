"""A damaged or failing disk under bin/rast with --data-dir, as an operator meets it.

Damage: 60 acknowledged writes, kill -9, one kind of damage to the WAL segment, restart. Each case
either recovers every acknowledged write or refuses to start (exit 65, one line naming the file
and the offset, the file left byte for byte as it was); none comes up short.
Disk faults (the test-only --disk-fault flag makes the WAL's n-th write or fsync fail): the node
stops with exit 70 and one stderr line, no write it acknowledged is missing after a restart, and
it never acknowledged one that was not durable.
"""

from __future__ import annotations

import glob
import os
import random
import time

import pytest
from test_node_protocol import NodeProc

from rast_maelstrom import node as node_mod
from rast_maelstrom.runtime import wal as walmod

WRITES = 60
EXIT_TIMEOUT_S = 20.0


def segment(data_dir) -> str:
    (path,) = glob.glob(os.path.join(str(data_dir), "n0", "wal-*.log"))
    return path


def write_until_ok(p: NodeProc, key: int, value: int, msg_id: int) -> None:
    for attempt in range(200):  # a fresh single node elects itself within a few hundred ms
        body = p.rpc({"type": "write", "msg_id": msg_id * 1000 + attempt, "key": key, "value": value})
        if body["type"] == "write_ok":
            return
        assert body.get("code") == 11, body
        time.sleep(0.02)
    raise AssertionError("no leader")


def read_all(p: NodeProc, keys) -> dict:
    got = {}
    for k in keys:
        for attempt in range(200):
            body = p.rpc({"type": "read", "msg_id": 10_000_000 + k * 1000 + attempt, "key": k})
            if body["type"] == "read_ok":
                got[k] = body["value"]
                break
            if body.get("code") == 20:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("no leader to read from")
    return got


def sixty_acknowledged_writes(data_dir) -> dict:
    p = NodeProc("--data-dir", str(data_dir))
    try:
        assert p.init()["body"]["type"] == "init_ok"
        for k in range(WRITES):
            write_until_ok(p, k, k * 7, k + 1)
    finally:
        p.kill()  # kill -9: whatever was acknowledged must come back
    return {k: k * 7 for k in range(WRITES)}


def record_offsets(raw: bytes) -> list[int]:
    offs, off = [], 0
    while off + walmod._REC.size <= len(raw):
        offs.append(off)
        (length, _) = walmod._REC.unpack_from(raw, off)
        off += walmod._REC.size + length
    return offs


def flip_byte(raw: bytearray) -> None:
    raw[len(raw) // 3] ^= 0x40


def flip_length_field(raw: bytearray) -> None:
    offs = record_offsets(bytes(raw))
    raw[offs[len(offs) // 2] + 2] ^= 0x08  # a middle record claims 512 KiB more than it has


def torn_final_record(raw: bytearray) -> None:
    """A crash in the middle of writing one more (never acknowledged) entry: half of it landed."""
    out: list[bytes] = []
    walmod.WriteAheadLog._encode_entry(10_000, 1, b'[1,"w",99,99]', out)
    rec = b"".join(out)
    raw.extend(rec[: len(rec) // 2])


def garbage_appended(raw: bytearray) -> None:
    raw.extend(random.Random(8).randbytes(300))


def zeroed_block(raw: bytearray) -> None:
    at = len(raw) // 2 // 512 * 512
    raw[at:at + 512] = bytes(512)


DAMAGE = {
    "flipped byte mid-file": (flip_byte, "refuse"),
    "flipped length field": (flip_length_field, "refuse"),
    "truncated final record": (torn_final_record, "recover"),
    "garbage appended": (garbage_appended, "either"),
    "zeroed block": (zeroed_block, "refuse"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_wal_recovers_every_acknowledged_write_or_refuses_to_start(tmp_path, case):
    damage, expected = DAMAGE[case]
    acked = sixty_acknowledged_writes(tmp_path)
    path = segment(tmp_path)
    raw = bytearray(open(path, "rb").read())
    damage(raw)
    open(path, "wb").write(raw)
    p = NodeProc("--data-dir", str(tmp_path))
    p.send("c0", "n0", {"type": "init", "msg_id": 1, "node_id": "n0", "node_ids": ["n0"]})
    try:
        rc = p.proc.wait(timeout=3.0)
    except Exception:  # still running: it started
        rc = None
    if rc is None:
        assert expected != "refuse", f"{case}: the node started on a damaged WAL"
        assert p.recv_reply(1, "c0")["body"]["type"] == "init_ok"
        got = read_all(p, acked)
        p.kill()
        missing = {k for k, v in acked.items() if got.get(k) != v}
        assert not missing, f"{case}: {len(missing)} of {len(acked)} acknowledged writes lost"
        return
    assert expected != "recover", f"{case}: refused a WAL that is only torn (exit {rc})"
    err = p.proc.stderr.read().decode()
    assert rc == node_mod.EXIT_DAMAGED, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"{path} is damaged at offset " in lines[0] and "refusing to start" in lines[0], lines[0]
    assert open(path, "rb").read() == raw, "the damaged file must be left untouched"
    assert p.lines == [], "a node that refuses to start answers nothing, not even init"


@pytest.mark.parametrize("fault", ["fsync:1:EIO", "write:1:ENOSPC", "fsync:9:EIO", "write:6:ENOSPC",
                                   "fsync:25:ENOSPC", "write:30:EIO"])
def test_a_failing_disk_stops_the_node_with_exit_70_and_acknowledges_nothing_it_lost(tmp_path, fault):
    p = NodeProc("--data-dir", str(tmp_path), "--disk-fault", fault)
    acked: dict[int, int] = {}
    p.send("c0", "n0", {"type": "init", "msg_id": 1, "node_id": "n0", "node_ids": ["n0"]})
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    key = 0
    try:
        while p.proc.poll() is None and time.monotonic() < deadline:
            try:
                for _ in range(8):  # writes in flight while the disk fails: proposals are pending
                    key += 1
                    p.send("c1", "n0", {"type": "write", "msg_id": key, "key": key, "value": -key})
            except BrokenPipeError:  # it stopped meanwhile; its last replies are still readable
                pass
            try:
                while True:
                    m = p.recv(0.05)
                    if m["body"]["type"] == "write_ok":
                        acked[m["body"]["in_reply_to"]] = -m["body"]["in_reply_to"]
            except AssertionError:  # no more replies for now, or stdout closed
                pass
        rc = p.proc.wait(timeout=EXIT_TIMEOUT_S)
    finally:
        p.kill()
    err = p.proc.stderr.read().decode()
    assert rc == node_mod.EXIT_DISK_FAILED, (rc, err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "CRITICAL" in lines[0] and "(injected)" in lines[0], err[-2000:]
    assert "Traceback" not in err
    # Restart on a healthy disk: every acknowledged write is there.
    q = NodeProc("--data-dir", str(tmp_path))
    try:
        assert q.init()["body"]["type"] == "init_ok"
        got = read_all(q, sorted(acked))
    finally:
        q.kill()
    lost = {k for k, v in acked.items() if got.get(k) != v}
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged writes lost after {fault}"


def test_a_write_arriving_after_the_writer_failed_exits_70_not_a_traceback(tmp_path):
    """The fsync fails while the loop is busy; the next pass has a proposal to persist: the submit
    that finds the writer failed must stop the node with 70 too, and acknowledge nothing."""
    from test_node_clock import ManualLoop

    from rast_maelstrom.runtime.fileio import DiskFault

    loop = ManualLoop()
    out: list[bytes] = []
    args = node_mod.parse_args(["--data-dir", str(tmp_path)])
    opener = node_mod._open_wal_with_faults([DiskFault("fsync", 4, 5)])  # the first after the 3 at start
    n = node_mod.Node(args, out.append, loop, opener)
    n.on_line(b'{"src":"c0","dest":"n0","body":{"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0"]}}')
    n.flush()
    try:
        for _ in range(100):
            loop.now += 0.01
            loop.fire_due()
            n.flush()  # elected alone: its term, vote and no-op go to the WAL, whose fsync fails
            if n.writer.error is not None:
                break
            time.sleep(0.01)
        assert n.writer.error is not None, "the injected fsync failure never happened"
        n.on_line(b'{"src":"c1","dest":"n0","body":{"type":"write","msg_id":2,"key":1,"value":1}}')
        with pytest.raises(SystemExit) as exc:
            n.flush()
        assert exc.value.code == node_mod.EXIT_DISK_FAILED
        assert not any(b"write_ok" in x for x in out)
    finally:
        n.stop()
