"""The simulated network: envelope validation, routing, latency, partitions, journal and counts.

Owns: every message between a node, a client and another node. Nodes hand in raw stdout lines;
clients (state machines in the runner's loop) hand in bodies (`send_body`), or bodies already
encoded (`send_json`, spliced into the framed line as bytes). The network gives each message the
next global id (from 0), journals it, and puts it on its destination's inbox. A client's message
to an idle inbox that no partition or fault drops (the common case) is delivered inline, without
the general path's calls, with the same ids, counts and journal bytes.

Mechanics (maelstrom-spec §3):
- Each registered id has an inbox: a heap ordered by (delivery deadline, id). An idle inbox takes
  the earliest message off the heap, checks the partition table by the message's `src` at that
  moment (dropping it if `dest` has a grudge against `src`), then holds it until its deadline and
  delivers it. Messages arriving while the head waits queue behind it (head-of-line blocking), so
  random latencies reorder messages exactly as the jar's sleeping reader does.
- Latency is 0 when src or dest starts with "c" (a client); otherwise it is drawn per message from
  the configured distribution, in whole ms.
- Nothing is lost or duplicated except by a partition (or by delivery to a dead process, which the
  process layer swallows), unless an [extension] fault is on:
  - `set_node_down(node, True)` (a node the nemesis killed or paused): its inbox is emptied and
    every message for it vanishes (journaled as a drop) until `set_node_down(node, False)`.
  - `set_loss(p)`: each server-to-server message is dropped at send time with probability p.
  - `set_dup(p)`: each server-to-server message that survives loss is delivered twice with
    probability p; each copy draws its own latency, so the copies may be reordered.
  Loss and duplication draw from `fault_rng` only while p > 0, so with the faults off the latency
  draws (and hence a seeded jar-compatible run) are exactly as before.
- A node's line must be JSON matching the closed envelope {src: str, dest: str, body: object,
  id?: int} with registered src and dest (as the jar, a missing or null body counts as {}, and an
  array of [key, value] pairs as an object, for the body and the message itself); otherwise
  `on_node_line` logs a WARN naming the node
  and returns False, and the caller reads nothing more from that node (as the jar does).

Journal (`messages.jsonl`, one JSON object per line, buffered; times are ns since the network was
created, i.e. before node start-up):
  {"t":"send","ns":N,"msg":{"id":I,"src":S,"dest":D,"body":{...}}}   a message entered the network
  {"t":"recv","ns":N,"id":I}                                       it was delivered to its dest
  {"t":"drop","ns":N,"id":I}                                       a partition dropped it
  {"t":"drop","ns":N,"id":I,"why":"loss"|"down"}                   [extension] p-loss dropped it,
                                                                   or its dest was killed/paused
  {"t":"dup","ns":N,"id":I}                                        [extension] a second copy of I
                                                                   was queued (it gets a 2nd recv)
  {"t":"time-zero","ns":N}                                         the history's time 0 (after init)
A message with a send and neither recv nor drop was still queued (or its dest closed) at the end.
For node-sent messages the "msg" bytes are the node's own line with the id spliced in.

Statistics (`stats()`, written as net-stats.json): send/recv/msg counts for all, clients (src or
dest is a client) and servers (the rest). msg-count is the number of distinct ids, which equals the
send count because every send gets a fresh id. A duplicated message counts one send and up to two
recvs.

Invariants: ids are dense from 0; an inbox holds at most `inbox_messages_max` queued messages (more
raises NetworkOverload, which aborts the run rather than growing without bound).

May not touch: processes (it only calls the `deliver` and `blocked` callbacks it was given), the
history, the nemesis schedule (the nemesis calls `drop_grudge`/`heal`/`set_loss`/`set_dup`, the
runner calls `set_node_down`).
"""
from __future__ import annotations

import heapq
import logging
import random
from typing import Any, Callable, IO

import orjson

from .eventloop import Loop

log = logging.getLogger("maelstrom.net")

inbox_messages_max = 1_000_000
journal_buffer_bytes = 1 << 20

ENVELOPE_KEYS = frozenset(("src", "dest", "body", "id"))
# a message delivered at once: its send and its recv, one write (the second with the framed line
# spliced from the node's own line, as `on_node_lines` frames it)
JOURNAL_SEND_RECV = b'{"t":"send","ns":%d,"msg":%s}\n{"t":"recv","ns":%d,"id":%d}\n'
JOURNAL_SEND_RECV_SPLICED = b'{"t":"send","ns":%d,"msg":{"id":%d,%b}\n{"t":"recv","ns":%d,"id":%d}\n'
LATENCY_DISTS = ("constant", "uniform", "exponential")


class BadLine(Exception):
    """A node printed a line that is not a well-formed message."""


class NetworkOverload(Exception):
    """An inbox exceeded `inbox_messages_max` (a destination stopped consuming)."""


def _as_map(value: Any, what: str) -> dict:
    """The jar's one-level key conversion (`process.clj` keywordize-keys-1): a JSON object as is,
    null or "" as {}, an array of [key, value] pairs as an object; anything else is not a map."""
    if value is None or value == "":
        return {}
    if type(value) is list and all(type(p) is list and p and type(p[0]) is str for p in value):
        return {p[0]: (p[1] if len(p) > 1 else None) for p in value}
    raise BadLine(f"{what} is not a JSON object")


def parse_envelope(line: bytes) -> dict:
    """Parse one stdout line into a message dict, or raise BadLine saying why (closed schema)."""
    return parse_envelope_lenient(line)[0]


def parse_envelope_lenient(line: bytes) -> tuple[dict, bool]:
    """(message, rewritten): as the jar, a missing or null body is {} and an array of pairs is
    an object (at the top level too); `rewritten` says the line's own bytes no longer match."""
    try:
        msg = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadLine(f"not well-formed JSON ({exc})") from None
    rewritten = False
    if type(msg) is not dict:
        msg = _as_map(msg, "the message")
        rewritten = True
    if type(msg.get("body")) is not dict:
        msg["body"] = _as_map(msg.get("body"), "body")
        rewritten = True
    if not msg.keys() <= ENVELOPE_KEYS:
        extra = sorted(msg.keys() - ENVELOPE_KEYS)
        raise BadLine(f"unexpected top-level keys {extra}; a message has only src, dest, body, id")
    src = msg.get("src")
    dest = msg.get("dest")
    if type(src) is not str:
        raise BadLine("src missing or not a string")
    if type(dest) is not str:
        raise BadLine("dest missing or not a string")
    if "id" in msg and type(msg["id"]) is not int:
        raise BadLine("id is not an integer")
    return msg, rewritten


def is_client(node_id: str) -> bool:
    return node_id[:1] == "c"


def make_latency_sampler(dist: str, mean_ms: int, rng: random.Random) -> Callable[[], int]:
    """A function drawing one server-to-server latency in whole ms (maelstrom-spec §3.1)."""
    assert dist in LATENCY_DISTS, dist
    assert mean_ms >= 0
    if dist == "constant":
        return lambda: mean_ms
    if mean_ms <= 0:
        # The jar hangs (uniform) or cannot build its network (exponential) with mean 0.
        raise ValueError(f"--latency-dist {dist} needs --latency > 0")
    if dist == "uniform":
        high = 2 * mean_ms
        return lambda: rng.randrange(0, high)
    rate = 1.0 / mean_ms
    return lambda: int(rng.expovariate(rate))


class _Inbox:
    __slots__ = ("id", "quoted", "deliver", "blocked", "client", "queue", "head", "head_timer")

    def __init__(self, node_id: str, deliver: Callable, blocked: Callable[[], bool] | None):
        self.id = node_id
        self.quoted = orjson.dumps(node_id)   # the id as a JSON string, for spliced lines
        self.deliver = deliver
        self.blocked = blocked
        self.client = is_client(node_id)
        self.queue: list[tuple] = []       # (deadline_ns, id, src, payload)
        self.head: tuple | None = None     # taken off the queue, waiting for its deadline
        self.head_timer = None


class Network:
    """Routes messages between registered ids; see the module docstring."""

    def __init__(self, loop: Loop, *, latency_ms: int = 0, latency_dist: str = "constant",
                 rng: random.Random | None = None, journal: IO[bytes] | None = None,
                 log_send: bool = False, log_recv: bool = False,
                 fault_rng: random.Random | None = None):
        self.loop = loop
        self.rng = rng or random.Random(0)
        self.fault_rng = fault_rng or random.Random(1)
        self.p_loss = 0.0
        self.p_dup = 0.0
        self.down: set[str] = set()      # nodes killed or paused by the nemesis
        self.latency_ms = latency_ms
        self.sample_latency_ms = make_latency_sampler(latency_dist, latency_ms, self.rng)
        self.journal = journal
        self.log_send = log_send
        self.log_recv = log_recv
        self.origin_ns = loop.now_ns()
        self.inboxes: dict[str, _Inbox] = {}
        self.grudges: dict[str, frozenset[str]] = {}  # dest -> srcs it drops
        self.next_id = 0
        # counts: [send, recv] for all and for client traffic; servers = all - clients. A client
        # message delivered inline (one send and one recv, both client traffic) counts only in
        # `inline_count`; the properties below add it in.
        self._send_all = 0
        self._send_clients = 0
        self._recv_all = 0
        self._recv_clients = 0
        self.inline_count = 0
        self.drop_count = 0
        self.loss_count = 0
        self.dup_count = 0
        self.down_drop_count = 0

    # -- registration -----------------------------------------------------------------------------
    def register_node(self, node_id: str, deliver_bytes: Callable[[bytes], None],
                      blocked: Callable[[], bool] | None = None) -> None:
        """A server: `deliver_bytes` gets the framed line (no newline) to write to its stdin."""
        assert node_id not in self.inboxes, node_id
        assert not is_client(node_id), f"server ids may not start with 'c': {node_id}"
        self.inboxes[node_id] = _Inbox(node_id, deliver_bytes, blocked)

    def register_client(self, client_id: str, deliver_body: Callable[[str, dict], None]) -> None:
        """A client in the runner's loop: `deliver_body(src, body)` gets each message for it."""
        assert client_id not in self.inboxes, client_id
        assert is_client(client_id), client_id
        self.inboxes[client_id] = _Inbox(client_id, deliver_body, None)

    def unregister(self, node_id: str) -> None:
        inbox = self.inboxes.pop(node_id, None)
        if inbox is not None and inbox.head_timer is not None:
            inbox.head_timer.cancel()

    def set_time_zero(self) -> None:
        """Mark the history's time 0 in the journal."""
        if self.journal is not None:
            self.journal.write(b'{"t":"time-zero","ns":%d}\n' % (self.loop.now_ns() - self.origin_ns))

    # -- partitions -------------------------------------------------------------------------------
    def drop_grudge(self, grudge: dict[str, Any]) -> None:
        """Apply a grudge {dest: [srcs dest must not hear from]} on top of the current table."""
        for dest, srcs in grudge.items():
            self.grudges[dest] = self.grudges.get(dest, frozenset()) | frozenset(srcs)
        self.grudges = {d: s for d, s in self.grudges.items() if s}

    def heal(self) -> None:
        self.grudges = {}

    # -- [extension] faults beyond partitions -----------------------------------------------------
    def set_loss(self, p: float) -> None:
        """Drop each server-to-server message with probability p (0 turns loss off)."""
        assert 0.0 <= p <= 1.0, p
        self.p_loss = p

    def set_dup(self, p: float) -> None:
        """Deliver each server-to-server message twice with probability p (0 turns it off)."""
        assert 0.0 <= p <= 1.0, p
        self.p_dup = p

    def set_node_down(self, node_id: str, down: bool) -> None:
        """A node killed or paused (down=True) gets nothing: its queued messages and every later
        one vanish until it is back (down=False)."""
        inbox = self.inboxes.get(node_id)
        assert inbox is not None and not inbox.client, node_id
        if not down:
            self.down.discard(node_id)
            return
        self.down.add(node_id)
        now = self.loop.now_ns()
        if inbox.head is not None:
            self._drop(inbox.head[1], now, b"down")
            inbox.head = None
            if inbox.head_timer is not None:
                inbox.head_timer.cancel()
                inbox.head_timer = None
        for _, mid, _, _ in sorted(inbox.queue):
            self._drop(mid, now, b"down")
        inbox.queue = []

    # -- sending ----------------------------------------------------------------------------------
    def on_node_line(self, node_id: str, line: bytes) -> bool:
        """Route one stdout line of `node_id`. Returns False if the line was bad (stop reading)."""
        return self.on_node_lines(node_id, (line,)) == 1

    def on_node_lines(self, node_id: str, lines) -> int:
        """Route stdout lines of `node_id` in order; returns how many were routed. A result below
        len(lines) means lines[result] was bad (logged) and nothing after it was looked at.

        The common line, a JSON object of exactly src, dest and body (strings and an object) with
        registered ids, takes a fast path; every other line goes through `parse_envelope_lenient`,
        so what is accepted, rewritten or refused is the same as line by line."""
        inboxes = self.inboxes
        loads = orjson.loads
        journal = self.journal
        plain = journal is None and not self.log_send
        quick = not (self.log_send or self.log_recv)
        routed = 0
        for line in lines:
            # The fast path's test: the ids are keys of `inboxes` (all of them str, and orjson
            # makes only exact str, so a hit is a registered id of the right type), exactly
            # three keys (so no id), a body that is an object. Anything else (not JSON, not an
            # object, a key missing, an unhashable id) raises or fails here.
            try:
                msg = loads(line)
                src = msg["src"]
                body = msg["body"]
                inbox = inboxes[msg["dest"]]
                fast = len(msg) == 3 and type(body) is dict and src in inboxes
            except (orjson.JSONDecodeError, KeyError, TypeError):
                fast = False
            if fast:
                rewritten = False
            else:
                try:
                    msg, rewritten = parse_envelope_lenient(line)
                    src = msg["src"]
                    if src not in inboxes:
                        raise BadLine(f"invalid source {src!r}: not a registered node or client")
                    if msg["dest"] not in inboxes:
                        raise BadLine(f"invalid destination {msg['dest']!r}: not a registered "
                                      f"node or client")
                except BadLine as exc:
                    log.warning("Node %s printed a line that was not well-formed JSON or tried "
                                "to send a malformed message; reading nothing more from its "
                                "stdout. %s. Line: %r", node_id, exc, line[:500])
                    return routed
                body = msg["body"]
                inbox = inboxes[msg["dest"]]
            mid = self.next_id
            self.next_id = mid + 1
            if inbox.client and quick and inbox.head is None and not inbox.queue and (
                    not self.grudges or src not in self.grudges.get(inbox.id, ())):
                # A reply to a client (latency 0, no loss or dup, an idle inbox: always, for a
                # client) that no partition drops: `_send` and `_deliver` inline, same effects.
                self.inline_count += 1
                if journal is not None:
                    ns = self.loop.now_ns() - self.origin_ns
                    if "id" in msg or rewritten:
                        msg["id"] = mid
                        journal.write(JOURNAL_SEND_RECV % (ns, orjson.dumps(msg), ns, mid))
                    else:   # the framed line spliced straight into the journal's
                        journal.write(JOURNAL_SEND_RECV_SPLICED % (ns, mid, line.strip()[1:],
                                                                   ns, mid))
                inbox.deliver(src, body)
                routed += 1
                continue
            if inbox.client and plain:
                framed = None   # only the journal and the send log would read it
            elif "id" in msg or rewritten:
                msg["id"] = mid
                framed = orjson.dumps(msg)
            else:
                framed = b'{"id":%d,%s' % (mid, line.strip()[1:])
            self._send(mid, src, inbox, body if inbox.client else framed, framed)
            routed += 1
        return routed

    def send_body(self, src: str, dest: str, body: dict) -> int:
        """A client (or the runner) sends `body` from `src` to `dest`. Returns the message id."""
        inbox = self.inboxes.get(dest)
        assert inbox is not None, f"unregistered destination {dest}"
        if not inbox.client:
            return self.send_json(src, dest, orjson.dumps(body))
        mid = self.next_id
        self.next_id = mid + 1
        framed = orjson.dumps({"id": mid, "src": src, "dest": dest, "body": body})
        self._send(mid, src, inbox, body, framed)
        return mid

    def send_json(self, src: str, dest: str, body_json: bytes) -> int:
        """`send_body` with the body already encoded (compact JSON of an object, as orjson writes
        it): the framed line is spliced from bytes, so a client can send from a byte template.
        Same ids, journal bytes, counts and delivery as `send_body(src, dest, loads(body_json))`."""
        inbox = self.inboxes.get(dest)
        assert inbox is not None, f"unregistered destination {dest}"
        if inbox.client:
            return self.send_body(src, dest, orjson.loads(body_json))
        mid = self.next_id
        self.next_id = mid + 1
        sender = self.inboxes.get(src)
        framed = b'{"id":%d,"src":%s,"dest":%s,"body":%s}' % (
            mid, sender.quoted if sender is not None else orjson.dumps(src), inbox.quoted,
            body_json)
        if (src[:1] == "c" and inbox.head is None and not inbox.queue
                and not (self.log_send or self.log_recv) and inbox.id not in self.down
                and (inbox.blocked is None or not inbox.blocked())
                and (not self.grudges or src not in self.grudges.get(inbox.id, ()))):
            # A client's request to an idle node inbox that no partition drops (latency 0, no
            # loss or dup): `_send` and `_deliver` inline, same effects.
            self.inline_count += 1
            if self.journal is not None:
                ns = self.loop.now_ns() - self.origin_ns
                self.journal.write(JOURNAL_SEND_RECV % (ns, framed, ns, mid))
            inbox.deliver(framed)
            return mid
        self._send(mid, src, inbox, framed, framed)
        return mid

    def _send(self, mid: int, src: str, inbox: _Inbox, payload: Any, framed: bytes | None) -> None:
        """`framed` may be None only when there is no journal and no send log."""
        now = self.loop.now_ns()
        client_traffic = inbox.client or src[:1] == "c"
        self._send_all += 1
        if client_traffic:
            self._send_clients += 1
            latency_ns = 0
        else:
            latency_ns = self.sample_latency_ms() * 1_000_000
        if self.journal is not None:
            self.journal.write(b'{"t":"send","ns":%d,"msg":%s}\n' % (now - self.origin_ns, framed))
        if self.log_send:
            log.info("send %s", framed.decode(errors="replace"))
        if self.down and inbox.id in self.down:
            self._drop(mid, now, b"down")
            return
        if client_traffic and inbox.head is None and not inbox.queue and (
                inbox.blocked is None or not inbox.blocked()):
            # Client traffic to an idle inbox (no latency, no loss or dup): delivered at once.
            grudge = self.grudges.get(inbox.id) if self.grudges else None
            if grudge is not None and src in grudge:
                self._drop(mid, now)
                return
            self._deliver(inbox, mid, src, payload, True, now)
            return
        copies = 1
        if not client_traffic and (self.p_loss or self.p_dup):
            if self.p_loss and self.fault_rng.random() < self.p_loss:
                self._drop(mid, now, b"loss")
                return
            if self.p_dup and self.fault_rng.random() < self.p_dup:
                copies = 2
                self.dup_count += 1
                if self.journal is not None:
                    self.journal.write(b'{"t":"dup","ns":%d,"id":%d}\n' % (now - self.origin_ns, mid))
        if inbox.head is None and not inbox.queue and latency_ns == 0 and not (
                inbox.blocked is not None and inbox.blocked()):
            # Fast path: an idle inbox takes the message at once (partition check) and delivers it.
            grudge = self.grudges.get(inbox.id)
            if grudge is not None and src in grudge:
                self._drop(mid, now)
            else:
                self._deliver(inbox, mid, src, payload, client_traffic, now)
            if copies == 1:
                return
            copies = 1
            latency_ns = self.sample_latency_ms() * 1_000_000
        for copy in range(copies):
            if copy:
                latency_ns = self.sample_latency_ms() * 1_000_000
            if len(inbox.queue) >= inbox_messages_max:
                raise NetworkOverload(f"{inbox.id} has {len(inbox.queue)} undelivered messages")
            heapq.heappush(inbox.queue, (now + latency_ns, mid, src, payload))
        if inbox.head is None:
            self._pump(inbox)

    # -- delivery ---------------------------------------------------------------------------------
    def resume(self, node_id: str) -> None:
        """The destination drained its buffer: take messages off its inbox again."""
        inbox = self.inboxes.get(node_id)
        if inbox is not None and inbox.head is None:
            self._pump(inbox)

    def _pump(self, inbox: _Inbox) -> None:
        """Take messages off an idle inbox until one must wait for its deadline."""
        queue = inbox.queue
        now = self.loop.now_ns()
        while queue:
            if inbox.blocked is not None and inbox.blocked():
                return  # resume() restarts us
            deadline, mid, src, payload = heapq.heappop(queue)
            grudge = self.grudges.get(inbox.id)
            if grudge is not None and src in grudge:
                self._drop(mid, now)
                continue
            if deadline > now:
                inbox.head = (deadline, mid, src, payload)
                inbox.head_timer = self.loop.call_at(deadline, self._head_due, inbox)
                return
            self._deliver(inbox, mid, src, payload, inbox.client or src[:1] == "c", now)

    def _head_due(self, inbox: _Inbox) -> None:
        head = inbox.head
        assert head is not None
        inbox.head = None
        inbox.head_timer = None
        if self.inboxes.get(inbox.id) is not inbox:
            return  # unregistered meanwhile
        _, mid, src, payload = head
        now = self.loop.now_ns()
        self._deliver(inbox, mid, src, payload, inbox.client or src[:1] == "c", now)
        self._pump(inbox)

    def _deliver(self, inbox: _Inbox, mid: int, src: str, payload: Any, client_traffic: bool,
                 now: int) -> None:
        self._recv_all += 1
        if client_traffic:
            self._recv_clients += 1
        if self.journal is not None:
            self.journal.write(b'{"t":"recv","ns":%d,"id":%d}\n' % (now - self.origin_ns, mid))
        if self.log_recv:
            log.info("recv %s -> %s id %d", src, inbox.id, mid)
        if inbox.client:
            inbox.deliver(src, payload)
        else:
            inbox.deliver(payload)

    def _drop(self, mid: int, now: int, why: bytes = b"") -> None:
        """Journal a message that will not be delivered: by a partition (no `why`), or by an
        [extension] fault (why = b"loss" or b"down")."""
        self.drop_count += 1
        if why == b"loss":
            self.loss_count += 1
        elif why == b"down":
            self.down_drop_count += 1
        if self.journal is not None:
            if why:
                self.journal.write(b'{"t":"drop","ns":%d,"id":%d,"why":"%s"}\n'
                                   % (now - self.origin_ns, mid, why))
            else:
                self.journal.write(b'{"t":"drop","ns":%d,"id":%d}\n' % (now - self.origin_ns, mid))

    # -- statistics -------------------------------------------------------------------------------
    @property
    def send_all(self) -> int:
        return self._send_all + self.inline_count

    @property
    def send_clients(self) -> int:
        return self._send_clients + self.inline_count

    @property
    def recv_all(self) -> int:
        return self._recv_all + self.inline_count

    @property
    def recv_clients(self) -> int:
        return self._recv_clients + self.inline_count

    def stats(self) -> dict:
        def group(send: int, recv: int) -> dict:
            return {"send-count": send, "recv-count": recv, "msg-count": send}
        return {
            "all": group(self.send_all, self.recv_all),
            "clients": group(self.send_clients, self.recv_clients),
            "servers": group(self.send_all - self.send_clients, self.recv_all - self.recv_clients),
        }
