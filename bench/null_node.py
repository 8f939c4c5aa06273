#!/usr/bin/env python3
"""The null node: a non-replicated lin-kv Maelstrom node answering from a local dict.

Owns: one process's dict of key -> value, served over Maelstrom's JSON lines (stdin/stdout). It
is the benchmark's ceiling: no replication, no disk, no peers, so whatever throughput and latency
it reaches is what the runner's network and process layer (and the client driver) allow. Each
node of a "cluster" has its own dict, so a multi-node null cluster is linearizable only per node;
the benchmark keeps every key on one node when it drives null nodes (see bench/driver.py).

Loop: block in os.read on stdin, answer every complete line in the chunk, write all replies with
one os.write. Replies follow lin-kv's closed schemas (read_ok with value; write_ok; cas_ok;
error 20 key-does-not-exist, 22 precondition-failed).

Invariants: a partial line is at most `partial_line_bytes_max` (longer input is dropped, loudly);
the dict holds at most `keys_max` keys (beyond that, new keys get error 11).
May not touch: anything outside its own stdin, stdout and stderr.
"""
from __future__ import annotations

import os
import sys

import orjson

read_chunk_bytes = 1 << 16
partial_line_bytes_max = 1 << 24
keys_max = 1_000_000


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def serve(fd_in: int = 0, fd_out: int = 1) -> None:
    node_id = ""
    store: dict = {}
    partial = b""
    dumps = orjson.dumps
    loads = orjson.loads
    while True:
        chunk = os.read(fd_in, read_chunk_bytes)
        if not chunk:
            return
        data = partial + chunk if partial else chunk
        lines = data.split(b"\n")
        partial = lines.pop()
        if len(partial) > partial_line_bytes_max:
            sys.stderr.write(f"null node: dropping a {len(partial)}-byte partial line\n")
            partial = b""
        out = []
        for line in lines:
            if not line.strip():
                continue
            msg = loads(line)
            body = msg["body"]
            kind = body.get("type")
            reply: dict
            if kind == "read":
                key = body["key"]
                if key in store:
                    reply = {"type": "read_ok", "value": store[key]}
                else:
                    reply = {"type": "error", "code": 20, "text": "no such key"}
            elif kind == "write":
                key = body["key"]
                if key in store or len(store) < keys_max:
                    store[key] = body["value"]
                    reply = {"type": "write_ok"}
                else:
                    reply = {"type": "error", "code": 11, "text": "key table full"}
            elif kind == "cas":
                key = body["key"]
                if key not in store:
                    reply = {"type": "error", "code": 20, "text": "no such key"}
                elif store[key] != body["from"]:
                    reply = {"type": "error", "code": 22,
                             "text": f"expected {body['from']!r}, have {store[key]!r}"}
                else:
                    store[key] = body["to"]
                    reply = {"type": "cas_ok"}
            elif kind == "init":
                node_id = body["node_id"]
                reply = {"type": "init_ok"}
            else:
                reply = {"type": "error", "code": 10, "text": f"unsupported type {kind!r}"}
            if "msg_id" in body:
                reply["in_reply_to"] = body["msg_id"]
            out.append(dumps({"src": node_id, "dest": msg["src"], "body": reply}))
        if out:
            out.append(b"")
            _write_all(fd_out, b"\n".join(out))


if __name__ == "__main__":
    try:
        serve()
    except KeyboardInterrupt:
        pass
