"""Real bin/rast processes wired through a small router (tests and bench/membership_bench.py).

Owns: one process per node id (started with `--data-dir <tmp>`, each node in `<tmp>/<id>`), the
routing of every line by `dest` (node to node as written, to clients into `replies`), per-node
output buffers so the router never blocks on a node, and the node lifecycle the membership tests
need: kill, restart on the same data directory, and wipe (kill, delete the directory, start fresh).
Every node gets the same `init` (node_ids and the initial `members`); a wiped node gets the
configuration it rejoins as `members` (it starts as a spare; see README, membership changes).

Invariants: every wait is bounded (`rpc` and `pump_until` take a timeout); `close()` kills every
process it started, by PID. May not touch: the node's code (it is a black box on a pipe).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import orjson

ROOT = Path(__file__).resolve().parent.parent
RAST = str(ROOT / "bin" / "rast")
READ_BYTES_MAX = 1 << 20


class ProcNet:
    def __init__(self, tmp: Path, ids: list[str], members: list[str] | None, args: tuple[str, ...] = ()) -> None:
        self.tmp = tmp
        self.ids = ids
        self.members = members
        self.args = args
        self.procs: dict[str, subprocess.Popen] = {}
        self.outbuf: dict[str, bytearray] = {i: bytearray() for i in ids}
        self.inbuf: dict[str, bytes] = {i: b"" for i in ids}
        self.replies: dict[tuple[str, int], dict] = {}  # (client, in_reply_to) -> the reply message
        self.on_peer: Callable[[str, dict], None] | None = None  # sees every node-to-node body
        self.sent_at: dict[tuple[str, int], float] = {}
        for i in ids:
            self.start(i)

    # ------------------------------------------------------------------ lifecycle

    def start(self, i: str, members: list[str] | None = None) -> None:
        log = open(self.tmp / f"{i}.log", "ab")
        p = subprocess.Popen([RAST, "--data-dir", str(self.tmp), *self.args], cwd="/tmp",
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        log.close()
        os.set_blocking(p.stdin.fileno(), False)
        self.procs[i] = p
        self.outbuf[i] = bytearray()
        self.inbuf[i] = b""
        body: dict[str, Any] = {"type": "init", "msg_id": 0, "node_id": i, "node_ids": self.ids}
        if members or self.members is not None:
            body["members"] = members or self.members
        self.outbuf[i] += orjson.dumps({"src": "cinit", "dest": i, "body": body}) + b"\n"

    def kill(self, i: str) -> None:
        p = self.procs.pop(i)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)

    def wipe(self, i: str, members: list[str]) -> None:
        """A replaced machine: the node is killed, its data directory deleted, and it starts again
        with init's `members` naming the configuration it rejoins (without it)."""
        self.kill(i)
        shutil.rmtree(self.tmp / i, ignore_errors=True)
        self.start(i, members)

    def close(self) -> None:
        for i in list(self.procs):
            self.kill(i)

    # ------------------------------------------------------------------ traffic

    def send(self, client: str, dest: str, body: dict) -> None:
        self.sent_at[(client, body["msg_id"])] = time.monotonic()
        self.outbuf[dest] += orjson.dumps({"src": client, "dest": dest, "body": body}) + b"\n"

    def pump(self, timeout_s: float) -> None:
        fds = {p.stdout.fileno(): i for i, p in self.procs.items()}
        wfds = {self.procs[i].stdin.fileno(): i for i in self.procs if self.outbuf[i]}
        r, w, _ = select.select(list(fds), list(wfds), [], timeout_s)
        for fd in w:
            i = wfds[fd]
            try:
                n = os.write(fd, self.outbuf[i][:READ_BYTES_MAX])
            except (BlockingIOError, BrokenPipeError):
                continue
            del self.outbuf[i][:n]
        for fd in r:
            i = fds[fd]
            chunk = os.read(fd, READ_BYTES_MAX)
            assert chunk, f"{i} exited (see {self.tmp / (i + '.log')})"
            *lines, self.inbuf[i] = (self.inbuf[i] + chunk).split(b"\n")
            for line in lines:
                self._route(i, line)

    def _route(self, src: str, line: bytes) -> None:
        msg = orjson.loads(line)
        dest = msg["dest"]
        if dest not in self.ids:
            body = msg["body"]
            if "in_reply_to" in body:
                self.replies[(dest, body["in_reply_to"])] = msg
            return
        if self.on_peer is not None:
            self.on_peer(src, msg["body"])
        if dest in self.procs:  # (a line to a node that is down is lost, as on a network)
            self.outbuf[dest] += line + b"\n"

    def pump_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            self.pump(0.02)
        return True

    def rpc(self, client: str, dest: str, body: dict, timeout_s: float = 5.0) -> dict | None:
        """Send and wait for the reply (its whole message, with `src`); None after the timeout."""
        key = (client, body["msg_id"])
        self.send(client, dest, body)
        self.pump_until(lambda: key in self.replies, timeout_s)
        return self.replies.pop(key, None)
