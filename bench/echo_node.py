#!/usr/bin/env python3
"""A benchmark fixture: the cheapest echo node this project can write, so that a router benchmark
measures the router and not the node.

Owns: one Maelstrom node that answers `init` with init_ok and `echo` with echo_ok (the request's
`echo` value, `in_reply_to` its msg_id), as tests/nodes/echo.py does, but parses with orjson and
writes each reply from a byte template: about a fifth of the stdlib echo node's CPU per message,
well under the router's. Reads stdin in chunks, answers every complete line of a chunk, writes
all its replies with one write. Not a Maelstrom node to test with (no relay, no errors for other
types: it exits on one, loudly); bench/router_bench.py `--node fast` and bench/runner_ceiling.py's
echo-fast case use it.

Invariants: a partial line is at most `partial_line_bytes_max` (longer input is an error).
May not touch: anything outside its own stdin, stdout and stderr.
"""
from __future__ import annotations

import os
import sys

import orjson

read_chunk_bytes = 1 << 16
partial_line_bytes_max = 1 << 24


def serve(fd_in: int = 0, fd_out: int = 1) -> int:
    node_id = b""
    partial = b""
    loads = orjson.loads
    dumps = orjson.dumps
    while True:
        chunk = os.read(fd_in, read_chunk_bytes)
        if not chunk:
            return 0
        lines = (partial + chunk).split(b"\n") if partial else chunk.split(b"\n")
        partial = lines.pop()
        if len(partial) > partial_line_bytes_max:
            sys.stderr.write(f"echo node: a {len(partial)}-byte line without a newline\n")
            return 2
        out = []
        for line in lines:
            msg = loads(line)
            body = msg["body"]
            kind = body["type"]
            if kind == "echo":
                out.append(b'{"src":%s,"dest":%s,"body":{"type":"echo_ok","echo":%s,'
                           b'"in_reply_to":%d}}' % (node_id, dumps(msg["src"]),
                                                    dumps(body["echo"]), body["msg_id"]))
            elif kind == "init":
                node_id = dumps(body["node_id"])
                out.append(dumps({"src": body["node_id"], "dest": msg["src"],
                                  "body": {"type": "init_ok", "in_reply_to": body["msg_id"]}}))
            else:
                sys.stderr.write(f"echo node: unsupported message type {kind!r}\n")
                return 2
        if out:
            out.append(b"")
            data = memoryview(b"\n".join(out))
            while data:
                data = data[os.write(fd_out, data):]


if __name__ == "__main__":
    sys.exit(serve())
