#!/usr/bin/env python3
"""PySyncObj (0.3.17) wrapped as a lin-kv Maelstrom node, for the benchmark's comparison.

Owns: one PySyncObj replica per Maelstrom node and the glue between Maelstrom's JSON lines and it.
- On `init`, node i of node_ids starts a SyncObj bound to 127.0.0.1:(base_port + i) whose peers
  are the other nodes' ports; the replicas talk to each other over loopback TCP (PySyncObj's own
  transport), not through the Maelstrom network. `--base-port` is chosen free by the benchmark.
- The state machine is a replicated dict: write(k, v) and cas(k, from, to) are @replicated
  methods. A client's write/cas is submitted at the node it reached (a follower forwards it to the
  leader itself) and answered when PySyncObj's callback reports it applied (write_ok / cas_ok /
  error 20 or 22), or with error 11 when PySyncObj says it was not applied (no leader, not leader,
  queue full, discarded).
- READS ARE LOCAL: a read is answered at once from this replica's dict, with no quorum round and no
  log entry (PySyncObj offers no linearizable read). A follower, or a deposed leader, can therefore
  answer with a stale value; the benchmark's linearizability verdict for this system reports
  whether that happened in the run.
- Durability: PySyncObj's journal is an mmap'd file that it never fsyncs (`--journal` on); the
  default here is its in-memory journal, i.e. no disk work at all (the PySyncObj default config).

Threads: the main thread reads stdin (blocking) and submits commands; PySyncObj's auto-tick thread
runs Raft and the callbacks. Both write replies to stdout under one lock, one line per write.

Invariants: at most `pending_max` commands submitted and not yet answered (beyond it: error 11);
stdin partial lines are bounded by `partial_line_bytes_max`.
May not touch: anything but its own stdio, its loopback port and its temp dir.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading

import orjson
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

read_chunk_bytes = 1 << 16
partial_line_bytes_max = 1 << 24
pending_max = 100_000

OK, NO_KEY, PRECONDITION = 0, 20, 22


class KvStore(SyncObj):
    """A replicated dict: write and cas go through PySyncObj's log; get is a local read."""

    def __init__(self, self_addr: str, peers: list[str], conf: SyncObjConf):
        super().__init__(self_addr, peers, conf)
        self._data: dict = {}

    @replicated
    def write(self, key, value):
        self._data[key] = value
        return (OK, None)

    @replicated
    def cas(self, key, from_value, to_value):
        if key not in self._data:
            return (NO_KEY, "key does not exist")
        current = self._data[key]
        if current != from_value:
            return (PRECONDITION, f"expected {from_value!r}, have {current!r}")
        self._data[key] = to_value
        return (OK, None)

    def get(self, key):
        return self._data.get(key, None), key in self._data


class Adapter:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.node_id = ""
        self.kv: KvStore | None = None
        self.out_lock = threading.Lock()
        self.pending = 0
        self.pending_lock = threading.Lock()
        self.tmpdir: str | None = None

    # -- output -----------------------------------------------------------------------------------
    def send(self, dest: str, body: dict) -> None:
        line = orjson.dumps({"src": self.node_id, "dest": dest, "body": body}) + b"\n"
        with self.out_lock:
            view = memoryview(line)
            while view:
                n = os.write(1, view)
                view = view[n:]

    def reply(self, dest: str, req: dict, body: dict) -> None:
        body["in_reply_to"] = req.get("msg_id")
        self.send(dest, body)

    def error(self, dest: str, req: dict, code: int, text: str) -> None:
        self.reply(dest, req, {"type": "error", "code": code, "text": text})

    # -- requests ---------------------------------------------------------------------------------
    def on_init(self, src: str, body: dict) -> None:
        self.node_id = body["node_id"]
        ids = list(body["node_ids"])
        base = self.args.base_port
        addrs = {n: f"127.0.0.1:{base + i}" for i, n in enumerate(ids)}
        kwargs = dict(appendEntriesUseBatch=not self.args.no_batch, dynamicMembershipChange=False)
        if self.args.journal:
            self.tmpdir = tempfile.mkdtemp(prefix=f"pysyncobj-{self.node_id}-")
            kwargs.update(journalFile=os.path.join(self.tmpdir, "journal"),
                          fullDumpFile=os.path.join(self.tmpdir, "dump"), useFork=False)
        conf = SyncObjConf(**kwargs)
        peers = [a for n, a in addrs.items() if n != self.node_id]
        self.kv = KvStore(addrs[self.node_id], peers, conf)
        self.reply(src, body, {"type": "init_ok"})

    def on_write(self, src: str, body: dict, op: str) -> None:
        with self.pending_lock:
            if self.pending >= pending_max:
                self.error(src, body, 11, "too many commands in flight")
                return
            self.pending += 1
        ok_type = "write_ok" if op == "write" else "cas_ok"

        def done(result, err) -> None:
            with self.pending_lock:
                self.pending -= 1
            if err != FAIL_REASON.SUCCESS:
                # Every FAIL_REASON here means the command was not applied (or never will be).
                self.error(src, body, 11, f"pysyncobj: not applied (reason {err})")
                return
            code, text = result
            if code == OK:
                self.reply(src, body, {"type": ok_type})
            else:
                self.error(src, body, code, text)

        if op == "write":
            self.kv.write(body["key"], body["value"], callback=done)
        else:
            self.kv.cas(body["key"], body["from"], body["to"], callback=done)

    def on_read(self, src: str, body: dict) -> None:
        value, present = self.kv.get(body["key"])
        if present:
            self.reply(src, body, {"type": "read_ok", "value": value})
        else:
            self.error(src, body, NO_KEY, "key does not exist")

    def handle(self, line: bytes) -> None:
        msg = orjson.loads(line)
        src = msg["src"]
        body = msg["body"]
        kind = body.get("type")
        if kind == "init":
            self.on_init(src, body)
        elif self.kv is None:
            self.error(src, body, 11, "not initialised")
        elif kind == "read":
            self.on_read(src, body)
        elif kind in ("write", "cas"):
            self.on_write(src, body, kind)
        else:
            self.error(src, body, 10, f"unsupported type {kind!r}")

    def serve(self) -> None:
        partial = b""
        try:
            while True:
                chunk = os.read(0, read_chunk_bytes)
                if not chunk:
                    return
                data = partial + chunk if partial else chunk
                lines = data.split(b"\n")
                partial = lines.pop()
                if len(partial) > partial_line_bytes_max:
                    sys.stderr.write("pysyncobj node: dropping an oversized partial line\n")
                    partial = b""
                for line in lines:
                    if line.strip():
                        self.handle(line)
        finally:
            if self.tmpdir:
                shutil.rmtree(self.tmpdir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-port", type=int, required=True,
                    help="node i of init's node_ids listens on 127.0.0.1:(base + i)")
    ap.add_argument("--no-batch", action="store_true",
                    help="appendEntriesUseBatch=False: send AppendEntries per command")
    ap.add_argument("--journal", action="store_true",
                    help="keep the log in an mmap'd file in a temp dir (never fsynced)")
    Adapter(ap.parse_args()).serve()
    os._exit(0)  # PySyncObj's tick thread is not a daemon; do not wait for it


if __name__ == "__main__":
    main()
