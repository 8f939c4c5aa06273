"""Clients in a process of their own: the router's side (`ClientHost`) and the host's (`RemoteNetwork`).

Owns: moving client state machines (op generation, timeouts, history) off the router's thread onto
another core, over one pipe pair, without changing what the network sees or does.
- `RemoteNetwork` runs in the client host process. It offers the three calls a client uses on
  `Network` -- `register_client(id, deliver)`, `unregister(id)`, `send_body(src, dest, body)` -- so
  client code runs unchanged in either place. `send_body` buffers the line
  `{"src":S,"dest":D,"body":B}` (orjson's bytes) and every pass of the host's loop ends by writing
  the buffer to stdout in one blocking write; stdin is read in chunks and each line, a message
  `{"src","dest","body"}` for one of its clients, is handed to that client's `deliver(src, body)`.
  `ready()` writes the line `#ready <t0_ns>` (the host's monotonic clock, shared by every process
  of the machine), which the router waits for before the first message.
- `ClientHost` runs in the router. It starts the host command as a `NodeProcess` (pipes served by
  the router's loop; stderr to a log), registers each of the host's client ids with the router's
  `Network` as an ordinary client whose deliveries are written to the host's stdin as
  `{"src","dest","body"}` lines, and routes the host's stdout lines with `Network.on_node_lines`,
  the path node lines take. A client line from the host therefore gets exactly what `send_body`
  gives it in the router: the next message id, the journal line (the same bytes:
  `{"id":N,` spliced before the host's `"src":...`), zero latency, the partition check and the
  counts; what the network would do to the message is unchanged, only the client is elsewhere.
  The host's stdin is flushed at the end of every router pass, as node stdins are.

Invariants: the host speaks only for its own clients (`ClientHost` refuses a line whose src is not
one of them: the host is stopped being read, as a node with a bad line is); buffers are bounded by
the clients' in-flight messages (closed-loop clients, one request each) and by the process
layer's `stdin_buffer_max_bytes` back-pressure for the host's stdin; the ready line is awaited at
most `ready_timeout_s`.
May not touch: the network's internals (it uses register_client, unregister and on_node_lines),
the clients' logic.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import orjson

from .eventloop import Loop
from .process import NodeProcess, end_pass, partial_line_max_bytes, read_chunk_bytes

log = logging.getLogger("maelstrom.clienthost")

READY = b"#ready"
ready_timeout_s = 10.0


class RemoteNetwork:
    """The client's view of the network inside a client host process (see the module doc)."""

    def __init__(self, loop: Loop, fd_in: int = 0, fd_out: int = 1):
        self.loop = loop
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.handlers: dict[str, Callable[[str, dict], None]] = {}
        self.out = bytearray()
        self.partial = b""
        self.closed = False        # the router closed our stdin
        self.sent = 0
        self.received = 0
        os.set_blocking(fd_in, False)
        os.set_blocking(fd_out, True)
        loop.set_fd(fd_in, self._read, None)
        loop.add_after_pass(self.flush)

    def register_client(self, client_id: str, deliver: Callable[[str, dict], None]) -> None:
        assert client_id not in self.handlers, client_id
        self.handlers[client_id] = deliver

    def unregister(self, client_id: str) -> None:
        self.handlers.pop(client_id, None)

    def send_body(self, src: str, dest: str, body: dict) -> None:
        """Queue a message; the router gives it its id (unknown here, hence no return value)."""
        out = self.out
        out += orjson.dumps({"src": src, "dest": dest, "body": body})
        out += b"\n"
        self.sent += 1

    def ready(self) -> int:
        """Tell the router the host is set up; returns the t0 it was told (monotonic ns)."""
        t0 = self.loop.now_ns()
        self.out += READY + b" %d\n" % t0
        self.flush()
        return t0

    def flush(self) -> None:
        out = self.out
        if not out:
            return
        view = memoryview(out)
        try:
            while view:
                view = view[os.write(self.fd_out, view):]
        finally:
            view.release()
        out.clear()

    def _read(self) -> None:
        try:
            chunk = os.read(self.fd_in, read_chunk_bytes)
        except BlockingIOError:
            return
        if not chunk:
            self.closed = True
            self.loop.set_fd(self.fd_in, None, None)
            return
        data = self.partial + chunk if self.partial else chunk
        lines = data.split(b"\n")
        self.partial = lines.pop()
        assert len(self.partial) <= partial_line_max_bytes, "the router sent an endless line"
        handlers = self.handlers
        loads = orjson.loads
        self.received += len(lines)
        for line in lines:
            msg = loads(line)
            deliver = handlers.get(msg["dest"])
            if deliver is not None:   # a client unregistered meanwhile drops it, as a sink would
                deliver(msg["src"], msg["body"])

    def close(self) -> None:
        self.flush()
        self.loop.remove_after_pass(self.flush)
        self.loop.set_fd(self.fd_in, None, None)


class ClientHost:
    """The router's end of a client host process (see the module doc)."""

    def __init__(self, loop: Loop, network, command: list[str], log_path: Path,
                 client_ids: list[str], host_id: str = "client-host"):
        self.loop = loop
        self.network = network
        self.client_ids = list(client_ids)
        self.allowed = frozenset(c.encode() for c in self.client_ids)
        self.proc = NodeProcess(loop, host_id, command, log_path)
        self.proc.on_lines = self._first_lines
        self.t0_ns: int | None = None
        self.bad = False

    def start(self, config: bytes) -> int:
        """Register the host's clients, start it, send `config` (one line), wait for its ready
        line; returns the t0 the host reported. Raises RuntimeError if it does not get ready."""
        assert b"\n" not in config
        dumps = orjson.dumps
        deliver = self.proc.deliver
        for cid in self.client_ids:
            self.network.register_client(
                cid, lambda src, body, cid=cid: deliver(
                    dumps({"src": src, "dest": cid, "body": body})))
        self.loop.add_after_pass(self._flush)
        self.proc.start()
        self.proc.killed = True   # the host exits on its own when its clients are done
        self.proc.deliver(config)
        ok = self.loop.run_until(lambda: self.t0_ns is not None or self.bad or self.exited(),
                                 self.loop.now_ns() + int(ready_timeout_s * 1e9))
        if not ok or self.t0_ns is None:
            self.proc.drain_stderr()
            raise RuntimeError("the client host did not get ready: "
                               + b"\n".join(self.proc.stderr_lines).decode(errors="replace"))
        return self.t0_ns

    def _flush(self) -> None:
        end_pass((self.proc,))

    def _first_lines(self, host_id: str, lines: list[bytes]) -> int:
        first = lines[0]
        if not first.startswith(READY + b" "):
            log.warning("client host's first line is not its ready line: %r", first[:200])
            self.bad = True
            return 0
        self.t0_ns = int(first[len(READY) + 1:])
        self.proc.on_lines = self._route
        return 1 + self._route(host_id, lines[1:])

    def _route(self, host_id: str, lines: list[bytes]) -> int:
        allowed = self.allowed
        for i, line in enumerate(lines):
            # The src is the line's first field as RemoteNetwork writes it; anything else is
            # refused here (and, if it is no well-formed message at all, by the network).
            end = line.find(b'"', 8)
            if line[:8] != b'{"src":"' or line[8:end] not in allowed:
                log.warning("client host sent a line not from one of its clients: %r", line[:200])
                self.bad = True
                return self.network.on_node_lines(host_id, lines[:i]) if i else 0
        return self.network.on_node_lines(host_id, lines)

    def exited(self) -> bool:
        return self.proc.exit_status() is not None

    def wait_exit(self, deadline_ns: int) -> bool:
        """Run the router's loop until the host exited and its stdout is drained."""
        return self.loop.run_until(
            lambda: self.proc.stdout_closed or self.proc.stdout_bad or self.bad,
            deadline_ns) and self.loop.run_until(self.exited, deadline_ns)

    def stop(self) -> None:
        """Kill the host (if still running) and close its pipes; its clients stay registered."""
        self.proc.kill()
        self.proc.drain_stderr()
        self.proc.close()
        self.loop.remove_after_pass(self._flush)
