#!/usr/bin/env python3
"""The node's loop-thread CPU per operation, in one process, per role: what a node build costs.

Owns: one real `Node` (any build: `--root` imports that checkout's package) over its real WAL and
WalWriter (fsync off, in a temp dir), driven pass by pass by this program instead of an event
loop: each pass feeds the node a fixed mix of lines through `Node.on_line`, ends with
`Node.flush`, then waits (outside the measurement) until the writer made every batch durable and
hands the node its wake-up, as the loop would. Only the loop thread's own CPU
(`time.thread_time`) inside `on_line`, `flush` and the durable wake-up is counted, so the figure is
the node's Python per op without the WAL thread, the pipes or the machine's other load (the best
of `--repeats` runs; a busy machine inflates a run, never deflates it).

Roles, 3 nodes n0..n2, OPS_PER_PASS client ops per pass (half reads; writes and cas in turn; 64
clients, one in three attached to each node, as bench/driver.py spreads them):
- `leader` (n0): its own clients' requests plus the followers' forwards of theirs, then the
  followers' acknowledgements of every AppendEntries and heartbeat it sent in the pass before.
- `follower` (n1): its own clients' requests (forwarded), one AppendEntries from n0 carrying the
  pass's writes (with their clients' identities, encoded as the build's leader would) and
  committing the pass before, one heartbeat.
Figures: loop-thread µs per cluster op (ops of all clients, not only the node's own), per role.

Bounds: `--passes` passes per run, `--repeats` runs per role; every wait for the writer has a
timeout. May not touch: the node's code (it only calls its public entry points).

    .venv/bin/python bench/loop_cpu.py [--root CHECKOUT]... [--passes 300] [--repeats 15]
    # instructions instead of CPU time (repeats to within 0.4% on a loaded machine): run once with
    # --passes 320 and once with --passes 20, --repeats 1 --roles ROLE, and divide the difference by 3,600
    valgrind --tool=cachegrind --cache-sim=no .venv/bin/python bench/loop_cpu.py --roles follower --passes 320 --repeats 1
"""
from __future__ import annotations

import argparse
import heapq
import importlib
import shutil
import sys
import tempfile
import time

OPS_PER_PASS = 12  # client ops per pass, cluster-wide (about one loop pass at 64 clients)
PASS_S = 0.002  # the clock moves this much per pass (12 ops per 2 ms: 6,000 ops/s)
CLIENTS = 64
DURABLE_WAIT_S = 5.0
SETTLE_POLL_S = 0.002  # between looks at the writer (coarse: few looks, so an instruction count repeats)
PEERS = ("n0", "n1", "n2")


class FakeLoop:
    """What Node needs of the event loop: a clock this program moves, timers fired by `run_due`."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.readers: dict[int, object] = {}
        self.timers: list = []
        self.seq = 0

    def clock(self) -> float:
        return self.now

    def call_at(self, deadline: float, callback) -> "_Timer":
        t = _Timer()
        self.seq += 1
        heapq.heappush(self.timers, (deadline, self.seq, t, callback))
        return t

    def call_later(self, delay_s: float, callback) -> "_Timer":
        return self.call_at(self.now + delay_s, callback)

    def add_reader(self, fd: int, callback: object) -> None:
        self.readers[fd] = callback

    def remove_reader(self, fd: int) -> None:
        self.readers.pop(fd, None)

    def run_due(self) -> None:
        timers = self.timers
        while timers and timers[0][0] <= self.now:
            _, _, t, callback = heapq.heappop(timers)
            if not t.cancelled:
                callback()


class _Timer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _line(orjson, src: str, dest: str, body: dict) -> bytes:
    return orjson.dumps({"src": src, "dest": dest, "body": body})


class Driver:
    def __init__(self, root: str | None, role: str, passes: int) -> None:
        if root:
            sys.path.insert(0, root)
        for name in [m for m in sys.modules if m == "rast_maelstrom" or m.startswith("rast_maelstrom.")]:
            del sys.modules[name]
        self.node_mod = importlib.import_module("rast_maelstrom.node")
        self.kv = importlib.import_module("rast_maelstrom.kv")
        import orjson
        self.orjson = orjson
        if root:
            sys.path.remove(root)
        self.role = role
        self.passes = passes
        self.me = "n0" if role == "leader" else "n1"
        self.tmp = tempfile.mkdtemp(prefix="loop_cpu.")
        self.sent: list[bytes] = []
        args = self.node_mod.parse_args(["--data-dir", self.tmp, "--no-fsync", "--seed", "1",
                                         "--no-snapshots"])
        self.loop = FakeLoop()
        self.node = self.node_mod.Node(args, self.sent.append, self.loop)
        self.node.on_line(_line(orjson, "c0", self.me, {"type": "init", "msg_id": 1, "node_id": self.me,
                                                        "node_ids": list(PEERS)}))
        self.node.flush()
        self.msg_id = 10
        self.seq = 0
        self.identity = "src" in self.kv.encode_write.__code__.co_varnames

    # -- the writer -------------------------------------------------------------------------------
    def _settle(self) -> None:
        """Wait until every submitted batch is durable, then give the node its wake-up."""
        node = self.node
        writer = node.writer.writer
        deadline = time.monotonic() + DURABLE_WAIT_S
        while node.batches and writer._durable_id < node.batches[-1][0]:
            if time.monotonic() > deadline:
                raise RuntimeError("the WAL writer did not make a batch durable in time")
            time.sleep(SETTLE_POLL_S)

    def _wake(self) -> None:
        import select
        fd = self.node.writer.wake_fd
        if select.select([fd], [], [], 0)[0]:
            self.node._on_durable()

    # -- scenario ---------------------------------------------------------------------------------
    def _out(self) -> list[dict]:
        msgs = []
        for chunk in self.sent:
            for ln in chunk.split(b"\n"):
                if ln:
                    msgs.append(self.orjson.loads(ln))
        self.sent.clear()
        return msgs

    def become_leader(self) -> None:
        """Win an election with the peers' granted (pre-)votes, then settle the first entry."""
        node, orjson = self.node, self.orjson
        raft = node.raft
        for _ in range(1000):
            if raft.role.value == "leader":
                break
            msgs = self._out()
            votes = [m for m in msgs if m["body"]["type"] == "rv"]
            if not votes:
                self.loop.now += 0.01
                self.loop.run_due()
            for m in votes:
                b = m["body"]
                node.on_line(_line(orjson, m["dest"], self.me,
                                   {"type": "rvr", "term": b["term"], "g": True, "pre": b["pre"]}))
            node.flush()
            self._settle()
            self._wake()
            node.flush()
        assert raft.role.value == "leader", raft.role

    def ops(self) -> list[tuple]:
        """One pass's client ops, cluster-wide: (client, home node, msg_id, body)."""
        out = []
        for k in range(OPS_PER_PASS):
            self.msg_id += 1
            i = self.msg_id % CLIENTS
            client, home = f"c{i + 1}", PEERS[i % 3]
            key = self.msg_id % 100
            kind = k % 4
            if kind in (0, 2):
                body = {"type": "read", "msg_id": self.msg_id, "key": key}
            elif kind == 1:
                body = {"type": "write", "msg_id": self.msg_id, "key": key, "value": self.msg_id % 5}
            else:
                body = {"type": "cas", "msg_id": self.msg_id, "key": key, "from": self.msg_id % 5,
                        "to": (self.msg_id + 1) % 5}
            out.append((client, home, self.msg_id, body))
        return out

    def _timed_pass(self, lines: list[bytes]) -> None:
        """Feed a pass's lines, end the pass, settle the writer, deliver the wake-up; count CPU."""
        node = self.node
        self.loop.now += PASS_S
        t0 = time.thread_time()
        self.loop.run_due()
        for ln in lines:
            node.on_line(ln)
        node.flush()
        t = time.thread_time() - t0
        self._settle()
        t0 = time.thread_time()
        self._wake()
        node.flush()
        self.cpu += time.thread_time() - t0 + t

    def leader_pass(self, pending_acks: list[bytes]) -> list[bytes]:
        lines = []
        for client, home, _, body in self.ops():
            if home != self.me:
                body["fwd"] = 1  # forwarded by the client's node, which keeps the client as src
            lines.append(_line(self.orjson, client, self.me, body))
        self._timed_pass(lines + pending_acks)
        acks = []
        for m in self._out():
            b = m["body"]
            if m["dest"] not in PEERS:
                continue
            if b["type"] == "ae":
                acks.append(_line(self.orjson, m["dest"], self.me,
                                  {"type": "aer", "term": b["term"], "ok": True, "m": b["pi"] + len(b["e"])}))
            elif b["type"] == "hb":
                acks.append(_line(self.orjson, m["dest"], self.me,
                                  {"type": "hbr", "term": b["term"], "rs": b["rs"]}))
        return acks

    def follower_pass(self) -> None:
        kv = self.kv
        lines = []
        entries = []
        for client, home, msg_id, body in self.prev_ops:  # the writes the leader got last pass
            extra = (client, msg_id) if self.identity else ()
            if body["type"] == "write":
                cmd = kv.encode_write(body["key"], b"%d" % body["value"], *extra)
            elif body["type"] == "cas":
                cmd = kv.encode_cas(body["key"], b"%d" % body["from"], b"%d" % body["to"], *extra)
            else:
                continue
            entries.append([self.term, self.orjson.Fragment(cmd)])
        self.prev_ops = self.ops()
        for client, home, _, body in self.prev_ops:
            if home == self.me:
                lines.append(_line(self.orjson, client, self.me, body))
        last = self.node.raft.log.last_index()
        lines.append(_line(self.orjson, "n0", self.me, {"type": "ae", "term": self.term, "pi": last,
                                                         "pt": self.term, "c": last, "e": entries}))
        self.hb_seq += 1
        lines.append(_line(self.orjson, "n0", self.me, {"type": "hb", "term": self.term,
                                                         "c": last, "rs": self.hb_seq}))
        self._timed_pass(lines)
        self.sent.clear()

    def run(self) -> float:
        self.cpu = 0.0
        self.hb_seq = 0
        if self.role == "leader":
            self.become_leader()
            self._out()
            acks: list[bytes] = []
            for _ in range(self.passes):
                acks = self.leader_pass(acks)
        else:
            # n0 is the leader of term 1; its first entry (the new leader's no-op) opens the log
            self.term = 1
            self.prev_ops = []
            self.node.on_line(_line(self.orjson, "n0", self.me, {"type": "ae", "term": 1, "pi": 0, "pt": 0,
                                                                  "c": 0, "e": [[1, None]]}))
            self.node.flush()
            self._settle()
            self.sent.clear()
            for _ in range(self.passes):
                self.follower_pass()
        return self.cpu / (self.passes * OPS_PER_PASS)

    def close(self) -> None:
        self.node.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", action="append",
                    help="a checkout whose rast_maelstrom to measure (repeatable: the builds are run "
                         "in turn, round by round; default: this checkout)")
    ap.add_argument("--passes", type=int, default=300, help="passes per run")
    ap.add_argument("--repeats", type=int, default=15, help="runs per build and role (the best counts)")
    ap.add_argument("--roles", default="leader,follower")
    args = ap.parse_args()
    roots = args.root or [None]
    roles = args.roles.split(",")
    best = {(r, role): float("inf") for r in roots for role in roles}
    for _ in range(args.repeats):
        for role in roles:
            for root in roots:
                d = Driver(root, role, args.passes)
                try:
                    best[root, role] = min(best[root, role], d.run())
                finally:
                    d.close()
    for root in roots:
        print(" ".join(f"{role}={best[root, role] * 1e6:.2f}" for role in roles), "us/op",
              root or "(this checkout)")


if __name__ == "__main__":
    main()
