"""A follower behind by 1,024 entries of ~20 KB catches up: three bin/rast processes wired through a
small router in this test, one of them cut off while the writes commit, then healed. Every line a
node writes must fit under the receiver's line limit (a longer one is dropped, so a leader that sent
one whole ~20 MB AppendEntries would resend it forever and the follower would never catch up)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from rast_maelstrom.wire.codec import LINE_BYTES_MAX

ROOT = Path(__file__).resolve().parent.parent
RAST = str(ROOT / "bin" / "rast")
IDS = ["n0", "n1", "n2"]
WRITES = 1024
VALUE_BYTES = 20_000
WINDOW = 64  # client writes in flight
WRITE_PHASE_S = 120.0
CATCHUP_S = 30.0


class Cluster:
    """Three node processes; lines between nodes are routed unless an end is cut off; lines to
    clients are collected. Writes to the nodes never block the router (per-node output buffers)."""

    def __init__(self, tmp: Path) -> None:
        self.procs = {
            i: subprocess.Popen([RAST, "--data-dir", str(tmp), "--no-fsync"], cwd="/tmp",
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(tmp / f"{i}.log", "wb"))
            for i in IDS
        }
        for p in self.procs.values():
            os.set_blocking(p.stdin.fileno(), False)
        self.outbuf = {i: bytearray() for i in IDS}
        self.inbuf = {i: b"" for i in IDS}
        self.cut: set[str] = set()
        self.client: list[dict] = []
        self.line_bytes_max = 0  # the longest line any node wrote
        self.acked_by: dict[str, int] = {}  # node -> highest match index it acknowledged
        for i in IDS:
            self.send(i, {"src": "c0", "dest": i, "body": {"type": "init", "msg_id": 1, "node_id": i, "node_ids": IDS}})

    def send(self, dest: str, msg: dict) -> None:
        self.outbuf[dest] += orjson.dumps(msg) + b"\n"

    def pump(self, timeout_s: float) -> None:
        fds = {p.stdout.fileno(): i for i, p in self.procs.items()}
        wfds = {self.procs[i].stdin.fileno(): i for i in IDS if self.outbuf[i]}
        r, w, _ = select.select(list(fds), list(wfds), [], timeout_s)
        for fd in w:
            i = wfds[fd]
            try:
                n = os.write(fd, self.outbuf[i][: 1 << 20])
            except BlockingIOError:
                continue
            del self.outbuf[i][:n]
        for fd in r:
            i = fds[fd]
            chunk = os.read(fd, 1 << 20)
            assert chunk, f"{i} exited"
            *lines, self.inbuf[i] = (self.inbuf[i] + chunk).split(b"\n")
            for line in lines:
                self._route(i, line)

    def _route(self, src: str, line: bytes) -> None:
        self.line_bytes_max = max(self.line_bytes_max, len(line))
        msg = orjson.loads(line)
        dest = msg["dest"]
        if dest not in self.procs:
            self.client.append(msg)
            return
        body = msg["body"]
        if src in self.cut or dest in self.cut:
            return
        if body["type"] == "aer" and body["ok"]:
            self.acked_by[src] = max(self.acked_by.get(src, 0), body["m"])
        elif body["type"] == "isr" and body["done"]:  # caught up by a snapshot (the leader compacted)
            self.acked_by[src] = max(self.acked_by.get(src, 0), body["li"])
        self.outbuf[dest] += line + b"\n"

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)


@pytest.mark.e2e
def test_a_follower_behind_by_1024_entries_of_20_kb_catches_up(tmp_path: Path) -> None:
    c = Cluster(tmp_path)
    try:
        # Wait for a leader that is not n2 (whoever answers n0's forwarded writes), then cut n2 off.
        next_id, outstanding, ok = 100, {}, 0
        c.cut.add("n2")
        deadline = time.monotonic() + WRITE_PHASE_S
        value = "v" * VALUE_BYTES
        while ok < WRITES:
            assert time.monotonic() < deadline, f"only {ok} writes acknowledged"
            while len(outstanding) < WINDOW and ok + len(outstanding) < WRITES:
                outstanding[next_id] = time.monotonic()
                c.send("n0", {"src": "c1", "dest": "n0", "body": {
                    "type": "write", "msg_id": next_id, "key": next_id % 7, "value": value}})
                next_id += 1
            c.pump(0.05)
            for msg in c.client:
                b = msg["body"]
                if b.get("in_reply_to") in outstanding:
                    del outstanding[b["in_reply_to"]]
                    ok += b["type"] == "write_ok"  # an 11 (no leader yet) is simply retried
            c.client.clear()
        target = max(c.acked_by.values())
        assert target > WRITES and c.acked_by.get("n2", 0) < 10  # n2 is behind by over 1,024 entries
        healed = time.monotonic()
        c.cut.clear()
        while c.acked_by.get("n2", 0) < target:
            assert time.monotonic() - healed < CATCHUP_S, (
                f"n2 acknowledged {c.acked_by.get('n2', 0)} of {target} after {CATCHUP_S} s")
            c.pump(0.05)
        catchup_ms = (time.monotonic() - healed) * 1000
        print(f"n2 caught up {target} entries of {VALUE_BYTES} B in {catchup_ms:.0f} ms; "
              f"longest line {c.line_bytes_max} B")
        assert c.line_bytes_max <= LINE_BYTES_MAX
    finally:
        c.close()
