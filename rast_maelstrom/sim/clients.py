"""Simulated Maelstrom lin-kv clients and the history they record.

Owns: the clients' state (one request in flight each, a timeout, a process id that changes after
every indefinite outcome, as Jepsen does) and the history in the runner's format
(index, time ns, type, process, f, value, optional error and node). Outcomes are decided by the
runner's own `harness.workload.complete_op` (spec §5.6): a matching `*_ok` that fits its closed
schema is ok; an error with a definite code is fail; code 0, 13 or an unknown code is fail for a
read and info for write/cas; no reply before the timeout is fail for a read and info for write/cas;
a malformed reply is info. A write or cas the simulator sent twice (`cdup`) and refused with a
definite code that speaks for one copy only (11 and the like) is info, as in the runner.

The workload: keys 0..keys_n-1, values in [0, 4] (spec §5.1); reads about half of the ops, then
writes and cas 1:2.

Invariants: a client has at most one op in flight; a reply counts only if it answers the op in
flight (`in_reply_to` equals its msg_id); the history index is dense from 0.
May not touch: nodes, the network (it asks the simulator to send), the clock (the simulator's).
"""

from __future__ import annotations

import random
from typing import Any, Callable

import orjson

from ..harness.workload import complete_op

VALUE_MAX = 4


class Client:
    __slots__ = ("cid", "node_id", "process", "msg_id", "op", "busy", "ops", "copied")

    def __init__(self, cid: str, node_id: str, process: int) -> None:
        self.cid = cid
        self.node_id = node_id
        self.process = process
        self.msg_id = 0
        self.op: tuple[str, Any, Any] | None = None  # (f, key, value) in flight
        self.busy = False
        self.ops = 0
        self.copied = False  # the op in flight was sent more than once (the simulator's cdup)


class Workload:
    """Drives clients through the simulator's hooks:
    send(client_id, node_id, line), after(delay_s, fn, arg), now() -> seconds."""

    def __init__(
        self,
        rng: random.Random,
        node_ids: list[str],
        clients_n: int,
        keys_n: int,
        timeout_s: float,
        think_s: float,
        send: Callable[[str, str, bytes], None],
        after: Callable[[float, Callable[[Any], None], Any], None],
        now: Callable[[], float],
    ) -> None:
        self.rng = rng
        self.node_ids = node_ids
        self.keys_n = keys_n
        self.timeout_s = timeout_s
        self.think_s = think_s
        self._send = send
        self._after = after
        self._now = now
        self.clients = {
            f"c{i}": Client(f"c{i}", node_ids[i % len(node_ids)], i) for i in range(clients_n)
        }
        self.concurrency = clients_n
        self.history: list[dict] = []
        self.counts = {"ok": 0, "fail": 0, "info": 0}
        self.issuing = True
        # The liveness probe: its own client, talking to each node in turn.
        self.probe: Client | None = None
        self.probe_ok = False
        self.probe_attempts = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self, delay_s: float) -> None:
        """Clients begin after `delay_s` (once every node has its init, as in Maelstrom)."""
        for c in self.clients.values():
            self._after(delay_s + self.rng.random() * self.think_s, self._issue, c)

    def start_probe(self) -> None:
        """Healed phase: write until one write succeeds (liveness)."""
        self.probe = Client("cprobe", self.node_ids[0], 1_000_000)
        self._issue_probe(self.probe)

    def idle(self) -> bool:
        return not any(c.busy for c in self.clients.values()) and not (self.probe and self.probe.busy)

    # ------------------------------------------------------------------ ops

    def _issue(self, c: Client) -> None:
        if not self.issuing or c.busy:
            return
        rng = self.rng
        key = rng.randrange(self.keys_n)
        r = rng.random()
        if r < 0.5:
            self._invoke(c, "read", key, None)
        elif r < 2 / 3:
            self._invoke(c, "write", key, rng.randint(0, VALUE_MAX))
        else:
            self._invoke(c, "cas", key, [rng.randint(0, VALUE_MAX), rng.randint(0, VALUE_MAX)])

    def _issue_probe(self, c: Client) -> None:
        if self.probe_ok:
            return
        c.node_id = self.node_ids[self.probe_attempts % len(self.node_ids)]
        self.probe_attempts += 1
        self._invoke(c, "write", 0, self.rng.randint(0, VALUE_MAX))

    def _invoke(self, c: Client, f: str, key: Any, value: Any) -> None:
        c.msg_id += 1
        c.op = (f, key, value)
        c.copied = False
        c.busy = True
        c.ops += 1
        body: dict[str, Any] = {"type": f, "msg_id": c.msg_id, "key": key}
        if f == "write":
            body["value"] = value
        elif f == "cas":
            body["from"], body["to"] = value
        self._record("invoke", c, f, [key, value])
        self._send(c.cid, c.node_id, orjson.dumps({"src": c.cid, "dest": c.node_id, "body": body}) + b"\n")
        self._after(self.timeout_s, self._on_timeout, (c, c.msg_id))

    def _record(self, typ: str, c: Client, f: str, value: Any, error: Any = None) -> None:
        rec: dict[str, Any] = {
            "index": len(self.history), "time": int(self._now() * 1e9), "type": typ,
            "process": c.process, "f": f, "value": value, "node": c.node_id,
        }
        if error is not None:
            rec["error"] = error
        self.history.append(rec)

    def _complete(self, c: Client, typ: str, value: Any, error: Any = None) -> None:
        f, key, _ = c.op
        self._record(typ, c, f, value, error)
        if c is not self.probe:
            self.counts[typ] += 1
        c.busy = False
        c.op = None
        if typ == "info":
            c.process += self.concurrency
        if c is self.probe:
            if typ == "ok":
                self.probe_ok = True
            else:
                self._after(0.05, self._issue_probe, c)
        else:
            self._after(self.rng.expovariate(1.0 / self.think_s), self._issue, c)

    def note_copy(self, cid: str, line: bytes) -> None:
        """The simulator sends another copy of the client's request in flight."""
        c = self.clients.get(cid) or (self.probe if self.probe and cid == self.probe.cid else None)
        if c is not None and c.busy:
            c.copied = True

    def _on_timeout(self, arg: tuple[Client, int]) -> None:
        c, msg_id = arg
        if not c.busy or c.msg_id != msg_id:
            return
        self._settle(c, None)

    def on_reply(self, cid: str, line: bytes) -> None:
        c = self.clients.get(cid) or (self.probe if self.probe and cid == self.probe.cid else None)
        if c is None:
            return  # init_ok and the like
        body = orjson.loads(line)["body"]
        if not c.busy or body.get("in_reply_to") != c.msg_id:
            return  # late: the op already timed out
        self._settle(c, body)

    def _settle(self, c: Client, body: dict | None) -> None:
        """Complete c's op from its reply (None: timed out) with the runner's own outcome rules
        (maelstrom-spec §5.6, closed reply schemas included), so the simulator judges the node
        exactly as maelstrom-py does."""
        f, key, value = c.op
        done = complete_op(f, [key, value], body, copied=c.copied)
        self._complete(c, done["type"], done["value"], done.get("error"))