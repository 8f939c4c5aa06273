"""The lin-kv workload: op generator, client state machines, outcome mapping and the history.

Owns (maelstrom-spec §5):
- `LinKvGenerator`: keys 0, 1, ...; worker threads in groups of 2n, one key per group; absolute
  threads 0..n-1 read, the others write (1/3) or cas (2/3) with values 0-4; a group retires its key
  once more than `process_limit` (20) distinct processes have belonged to it while on that key.
- `Workload`: one `Worker` per thread (client id c<2n+i>, talks to node i mod n, one request in
  flight, ignores replies whose in_reply_to is not the awaited msg_id). Ops are issued by a global
  stagger: each invocation is at max(slot, first moment a thread is free), and the next slot is
  that time + U[0, 2/rate) s, so missed slots are not made up. No invocation after the time limit;
  in-flight ops finish (up to the client timeout).
  Which thread gets a slot is decided as the jar's generators decide it (`choose_thread`): a group
  with a free thread is drawn uniformly; within group 0, when both its reader range (threads
  0..n-1) and its other threads have a free thread, the read range wins with probability
  n / (n + n) = 1/2 (the ranges' thread counts as weights), else whichever range is free; the
  thread is then the first free one of that range at or after the rotating index
  `next_thread`, wrapping around -- the index advances by one for every op handed out, the
  nemesis's included (`note_nemesis_op`), modulo concurrency + 1 (the nemesis is a thread too).
  So when workers block, the read share stays the jar's instead of following the free workers.
- `complete_op`: reply (or timeout) -> history completion, per the §5.6 table, with closed reply
  schemas.
- [extension] `start_final_reads(keys)`: after the main phase, each node's reader client (threads
  0..n-1; thread i talks to node i) reads every key used, one read in flight per client, recorded
  like any op, so the checker judges them. `final` counts planned/ok/fail/info reads; no read is
  issued after the deadline given (`final_reads_s_max` by default). A final read that fails with
  key-does-not-exist (a definite code) on a key that had an acknowledged write or cas is counted
  in `final["lost"]` and its key listed in `final["lost-keys"]`: lin-kv never deletes a key, so
  that is an acknowledged write lost for certain -- which the CAS-register checker cannot see,
  because failed ops are dropped and a read of nil is always legal. The same answer for a key that
  never had an acknowledged write is correct and counted in `final["absent"]`; a final read is
  "answered" when it is ok or absent.
- [extension] duplicated requests (`dup`: probability, delay, target, rng): each request is sent
  again with that probability -- same client, same msg_id, the same body -- U[0, delay] ms after
  the first, to the same node, another one or any, whether or not the first was answered by then
  (a client that retries, or a proxy that duplicates). The op completes with the first reply; a
  write or cas whose copy was planned and that is refused with a code of `REFUSAL_CODES` is info.
- `History`: dense indexes, ns since time zero, one JSON object per line in history.jsonl; each
  op is also logged (logger `jepsen.util`, thread `jepsen worker N` or `jepsen nemesis`) in the
  jar's op->str layout, `3 :invoke :write [0 2]` (tab-separated).

Invariants: at most one op in flight per worker; a worker's process changes to old + concurrency
after every info; all randomness comes from the rng passed in.
May not touch: processes or the network's internals (it only registers clients and sends bodies).
"""
from __future__ import annotations

import logging
import random
from typing import IO, Any

import orjson

from . import oplog
from .analysis import history_line
from .eventloop import Loop, Timer

log = logging.getLogger("maelstrom.workload")
op_log = logging.getLogger("jepsen.util")   # the jar logs each op under this name

process_limit = 20
value_max = 4
final_reads_s_max = 60.0

# code -> (name, definite?)   (maelstrom-spec §1.6)
ERRORS: dict[int, tuple[str, bool]] = {
    0: ("timeout", False),
    1: ("node-not-found", True),
    10: ("not-supported", True),
    11: ("temporarily-unavailable", True),
    12: ("malformed-request", True),
    13: ("crash", False),
    14: ("abort", True),
    20: ("key-does-not-exist", True),
    21: ("key-already-exists", True),
    22: ("precondition-failed", True),
    30: ("txn-conflict", True),
}

REPLY_TYPES = {"read": "read_ok", "write": "write_ok", "cas": "cas_ok"}
_READ_OK_KEYS = frozenset(("type", "in_reply_to", "value", "msg_id"))
_OTHER_OK_KEYS = frozenset(("type", "in_reply_to", "msg_id"))


def client_timeout_ms(latency_ms: int) -> int:
    return max(10 * latency_ms, 1000)


def _is_int(x: Any) -> bool:
    return type(x) is int


def reply_schema_problem(f: str, body: Any) -> str | None:
    """Why `body` is not a well-formed success reply to op f, or None (closed schemas)."""
    if type(body) is not dict:
        return "reply body is not a JSON object"
    expected = REPLY_TYPES[f]
    if body.get("type") != expected:
        return f"expected a {expected} reply but got type {body.get('type')!r}"
    allowed = _READ_OK_KEYS if f == "read" else _OTHER_OK_KEYS
    extra = sorted(set(body) - allowed)
    if extra:
        return f"{expected} reply has unexpected keys {extra}"
    if not _is_int(body.get("in_reply_to")):
        return f"{expected} reply's in_reply_to is not an integer"
    if "msg_id" in body and not _is_int(body["msg_id"]):
        return f"{expected} reply's msg_id is not an integer"
    if f == "read" and "value" not in body:
        return "read_ok reply has no value"
    return None


# Definite codes that say "this message was not executed" (as opposed to 20-22, the state the
# request met): for a request also sent as another copy, they speak for that copy only.
REFUSAL_CODES = frozenset((1, 10, 11, 12, 14, 30))


def complete_op(f: str, value: list, body: dict | None, copied: bool = False) -> dict:
    """The completion record (type, value, error, exception) for op f with invoke value `value`
    given the matching reply body, or None for a timeout (maelstrom-spec §5.6).
    [extension] `copied`: the request was also sent as another copy (`--dup-requests`); a write or
    cas refused with one of `REFUSAL_CODES` is then info, since the other copy may take effect."""
    if type(body) is dict and type(body.get("in_reply_to")) is int:
        # The common well-formed success replies, exactly as `reply_schema_problem` accepts them
        # (read_ok: type, in_reply_to, value; write_ok/cas_ok: type, in_reply_to), without it.
        t = body.get("type")
        if f == "read":
            if t == "read_ok" and len(body) == 3 and "value" in body:
                return {"type": "ok", "value": [value[0], body["value"]]}
        elif len(body) == 2 and t == REPLY_TYPES[f]:
            return {"type": "ok", "value": value}
    return complete_op_checked(f, value, body, copied)


def complete_op_checked(f: str, value: list, body: dict | None, copied: bool = False) -> dict:
    """`complete_op` without its fast path for well-formed success replies (same results)."""
    key = value[0]
    if body is None:
        return {"type": "fail" if f == "read" else "info", "value": value, "error": "net-timeout"}
    if type(body) is dict and body.get("type") == "error":
        # A code that is missing or not an integer is not in the jar's registry either: an
        # unknown, indefinite error (a read still fails: it is idempotent).
        code = body.get("code")
        name, definite = ERRORS.get(code, ("unknown", False)) if _is_int(code) else (
            "unknown", False)
        error = [name, body.get("text")]
        if copied and _is_int(code) and code in REFUSAL_CODES and f != "read":
            definite = False
        if definite or f == "read":
            return {"type": "fail", "value": value, "error": error}
        return {"type": "info", "value": value, "error": error}
    problem = reply_schema_problem(f, body)
    if problem is not None:
        return {"type": "info", "value": value, "error": f"indeterminate: {problem}",
                "exception": {"class": "malformed-rpc-response", "message": problem,
                              "body": body}}
    if f == "read":
        return {"type": "ok", "value": [key, body["value"]]}
    return {"type": "ok", "value": value}


class History:
    """Appends ops to history.jsonl with dense indexes and times in ns since time zero."""

    def __init__(self, loop: Loop, out: IO[bytes] | None, threads: int | None = None):
        self.loop = loop
        self.out = out
        self.threads = threads   # client threads, to name the worker of a process in the log
        self.zero_ns = loop.now_ns()
        self.next_index = 0
        self.counts = {"invoke": 0, "ok": 0, "fail": 0, "info": 0}
        self.op_sink = None          # see write_ops_to
        self._sink_handlers: list = []

    def set_zero(self) -> None:
        self.zero_ns = self.loop.now_ns()

    def elapsed_ns(self) -> int:
        return self.loop.now_ns() - self.zero_ns

    def append(self, type_: str, process: Any, f: str, value: Any, node: Any = None,
               error: Any = None, exception: Any = None) -> dict:
        """Record an op; node, error and exception are set only when not None (in that order)."""
        op = {"index": self.next_index, "time": self.loop.now_ns() - self.zero_ns, "type": type_,
              "process": process, "f": f, "value": value}
        if node is not None:
            op["node"] = node
        if error is not None:
            op["error"] = error
        if exception is not None:
            op["exception"] = exception
        self.next_index += 1
        if process != "nemesis":
            self.counts[type_] += 1
        if self.out is not None:
            self.out.write(orjson.dumps(op, option=orjson.OPT_APPEND_NEWLINE))
        if op_log.isEnabledFor(logging.INFO):
            # As the jar's interpreter logs ops: from the worker's thread, op->str's layout.
            if process == "nemesis":
                thread = "jepsen nemesis"
            else:
                thread = f"jepsen worker {process % self.threads if self.threads else process}"
            sink = self.op_sink
            if sink is not None and logging.root.handlers == self._sink_handlers:
                sink(thread, history_line(op, error_readably=True))
            else:
                op_log.info(history_line(op, error_readably=True), extra={"jthread": thread})
        return op

    def write_ops_to(self, handler: logging.Handler | None) -> bool:
        """Write op lines straight to `handler` (oplog.fast_op_sink) while that is exactly what
        logging would do; True if the fast path is on. It turns itself off when the root
        logger's handlers change."""
        self.op_sink = oplog.fast_op_sink(handler)
        self._sink_handlers = list(logging.root.handlers)
        return self.op_sink is not None


class LinKvGenerator:
    """Chooses (f, value) for a thread, with per-group keys and process-limit key retirement."""

    def __init__(self, rng: random.Random, node_count: int, concurrency: int):
        assert node_count >= 1
        assert concurrency > 0 and concurrency % (2 * node_count) == 0, concurrency
        self.rng = rng
        self.n = node_count
        self.group_size = 2 * node_count
        groups = concurrency // self.group_size
        self.keys = list(range(groups))
        self.next_key = groups
        self.seen: list[set] = [set() for _ in range(groups)]

    def retire_if_exhausted(self, g: int, group_processes: list[int]) -> None:
        """Give group g the next unused key once its key has seen more than `process_limit`
        processes (the jar asks every free group, so every free group is checked)."""
        if len(self.seen[g] | set(group_processes)) > process_limit:
            self.keys[g] = self.next_key
            self.next_key += 1
            self.seen[g] = set()
            log.info("thread group %d retires its key; next key %d", g, self.keys[g])

    def op(self, thread: int, group_processes: list[int]) -> tuple[str, list]:
        """The op for `thread`; `group_processes` are the current processes of its group."""
        g = thread // self.group_size
        self.retire_if_exhausted(g, group_processes)
        self.seen[g] |= set(group_processes)
        key = self.keys[g]
        rng = self.rng
        if thread < self.n:
            return "read", [key, None]
        if rng.randrange(3) == 0:
            return "write", [key, rng.randint(0, value_max)]
        return "cas", [key, [rng.randint(0, value_max), rng.randint(0, value_max)]]


class Worker:
    """One client thread: a state machine with at most one request in flight."""
    __slots__ = ("thread", "client_id", "node", "process", "msg_id", "awaiting", "op", "timer",
                 "sent_ns", "copied")

    def __init__(self, thread: int, client_id: str, node: str):
        self.thread = thread
        self.client_id = client_id
        self.node = node
        self.process = thread
        self.msg_id = 0
        self.awaiting: int | None = None
        self.op: tuple[str, list] | None = None
        self.timer: Timer | None = None
        self.sent_ns = 0
        self.copied = False  # [extension] the op in flight is sent twice (--dup-requests)


class Workload:
    """Drives the workers inside the loop; see the module docstring."""

    def __init__(self, loop: Loop, network, history: History, rng: random.Random, *,
                 nodes: list[str], concurrency: int, rate: float, timeout_ms: int,
                 first_client_index: int,
                 dup: tuple[float, int, str, random.Random] | None = None):
        self.loop = loop
        self.network = network
        self.history = history
        self.rng = rng
        self.nodes = nodes
        self.concurrency = concurrency
        self.rate = rate
        self.timeout_ns = timeout_ms * 1_000_000
        self.generator = LinKvGenerator(rng, len(nodes), concurrency)
        self.workers = [Worker(i, f"c{first_client_index + i}", nodes[i % len(nodes)])
                        for i in range(concurrency)]
        self.free: set[int] = set()   # threads with no op in flight
        self.next_thread = 0          # the jar's rotating thread index (0..concurrency)
        self.next_slot_ns = 0
        self.slot_timer: Timer | None = None
        self.end_ns = 0
        self.running = False
        self.keys_used: set = set()
        self.final_queue: dict[int, list] = {}   # thread -> keys it still has to read
        self.final_end_ns = 0
        self.final_active = False
        self.final = {"planned": 0, "ok": 0, "fail": 0, "info": 0, "not-issued": 0, "absent": 0,
                      "lost": 0, "lost-keys": []}
        self.acked_keys: set = set()   # keys with an ok write or cas
        # [extension] duplicated requests: (probability, max delay ms, target, their own rng)
        self.dup_p, self.dup_delay_ms, self.dup_target, self.dup_rng = dup or (0.0, 0, "any", None)
        self.copies_sent = 0

    # -- lifecycle --------------------------------------------------------------------------------
    def open(self) -> None:
        for w in self.workers:
            self.network.register_client(w.client_id, lambda src, body, w=w: self._on_reply(w, body))

    def start(self, end_ns: int) -> None:
        """Begin issuing ops now; stop issuing at end_ns."""
        self.end_ns = end_ns
        self.running = self.rate > 0
        if not self.running:
            return
        self.free = {w.thread for w in self.workers}
        self.next_slot_ns = self.loop.now_ns()
        self._maybe_invoke()

    def stop_issuing(self) -> None:
        self.running = False
        if self.slot_timer is not None:
            self.slot_timer.cancel()
            self.slot_timer = None

    def idle(self) -> bool:
        return all(w.op is None for w in self.workers)

    def close(self) -> None:
        for w in self.workers:
            self.network.unregister(w.client_id)

    # -- issuing ----------------------------------------------------------------------------------
    def _slot_due(self) -> None:
        self.slot_timer = None
        self._maybe_invoke()

    def _maybe_invoke(self) -> None:
        if not self.running:
            return
        now = self.loop.now_ns()
        if now >= self.end_ns:
            self.stop_issuing()
            return
        if now < self.next_slot_ns:
            if self.slot_timer is None:
                self.slot_timer = self.loop.call_at(self.next_slot_ns, self._slot_due)
            return
        if not self.free:
            return  # the next free worker calls us; the slot is not made up
        worker = self.workers[self.choose_thread()]
        self.free.discard(worker.thread)
        self.next_thread = (self.next_thread + 1) % (self.concurrency + 1)
        self._invoke(worker, now)
        self.next_slot_ns = now + int(self.rng.random() * 2e9 / self.rate)
        if self.slot_timer is None:
            self.slot_timer = self.loop.call_at(self.next_slot_ns, self._slot_due)

    def note_nemesis_op(self) -> None:
        """The nemesis took an op: the jar's rotating thread index moves on for it too."""
        self.next_thread = (self.next_thread + 1) % (self.concurrency + 1)

    def _group_processes(self, g: int) -> list[int]:
        size = self.generator.group_size
        return [x.process for x in self.workers[g * size:(g + 1) * size]]

    def choose_thread(self) -> int:
        """The free thread the jar would hand the next op to (see the module docstring)."""
        size = self.generator.group_size
        n = len(self.nodes)
        groups = sorted({t // size for t in self.free})
        for g in groups:
            self.generator.retire_if_exhausted(g, self._group_processes(g))
        g = groups[self.rng.randrange(len(groups))] if len(groups) > 1 else groups[0]
        members = [t for t in range(g * size, (g + 1) * size) if t in self.free]
        readers = [t for t in members if t < n]
        others = [t for t in members if t >= n]
        if readers and others:
            # Reserve's weights: the read range's n threads against the rest of the group's.
            read_weight = n
            other_weight = size - sum(1 for t in range(g * size, (g + 1) * size) if t < n)
            chosen = readers if self.rng.randrange(read_weight + other_weight) < read_weight \
                else others
        else:
            chosen = readers or others
        for t in chosen:
            if t >= self.next_thread:
                return t
        return chosen[0]

    def _invoke(self, w: Worker, now: int) -> None:
        group = self._group_processes(w.thread // self.generator.group_size)
        f, value = self.generator.op(w.thread, group)
        self.keys_used.add(value[0])
        self._send_op(w, f, value, now)

    def _send_op(self, w: Worker, f: str, value: list, now: int) -> None:
        w.op = (f, value)
        w.msg_id += 1
        w.awaiting = w.msg_id
        self.history.append("invoke", w.process, f, value, node=w.node)
        key = value[0]
        if f == "read":
            body = {"type": "read", "msg_id": w.msg_id, "key": key}
        elif f == "write":
            body = {"type": "write", "msg_id": w.msg_id, "key": key, "value": value[1]}
        else:
            body = {"type": "cas", "msg_id": w.msg_id, "key": key,
                    "from": value[1][0], "to": value[1][1]}
        w.sent_ns = now
        w.timer = self.loop.call_at(now + self.timeout_ns, self._on_timeout, w)
        self.network.send_body(w.client_id, w.node, body)
        w.copied = False
        if self.dup_p and self.dup_rng.random() < self.dup_p:
            w.copied = True
            self._plan_copy(w, body, now)

    def _plan_copy(self, w: Worker, body: dict, now: int) -> None:
        """[extension] the same request again, later, to the node `dup_target` says."""
        rng = self.dup_rng
        others = [n for n in self.nodes if n != w.node]
        if self.dup_target == "same" or not others:
            dest = w.node
        elif self.dup_target == "other":
            dest = rng.choice(others)
        else:
            dest = rng.choice(self.nodes)
        delay_ns = int(rng.random() * self.dup_delay_ms * 1_000_000)
        self.loop.call_at(now + delay_ns, self._send_copy, w.client_id, dest, body)

    def _send_copy(self, client_id: str, dest: str, body: dict) -> None:
        if dest in self.network.inboxes:
            self.copies_sent += 1
            self.network.send_body(client_id, dest, body)

    # -- completing -------------------------------------------------------------------------------
    def _on_reply(self, w: Worker, body: dict) -> None:
        if w.op is None:
            return
        irt = body.get("in_reply_to") if type(body) is dict else None
        if type(irt) is not int or irt != w.awaiting:
            return  # late, duplicate or stray: the jar's client drops it
        self._complete(w, body)

    def _on_timeout(self, w: Worker) -> None:
        w.timer = None
        if w.op is not None:
            self._complete(w, None)

    def _complete(self, w: Worker, body: dict | None) -> None:
        f, value = w.op
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None
        result = complete_op(f, value, body, copied=w.copied)
        if result["type"] == "ok" and f != "read":
            self.acked_keys.add(value[0])
        self.history.append(result["type"], w.process, f, result["value"], node=w.node,
                            error=result.get("error"), exception=result.get("exception"))
        if result["type"] == "info":
            w.process += self.concurrency
        w.op = None
        w.awaiting = None
        if self.running:
            self.free.add(w.thread)
            self._maybe_invoke()
        elif self.final_active and w.thread in self.final_queue:
            self.final[result["type"]] += 1
            error = result.get("error")
            key = value[0]
            if type(error) is list and error[0] == "key-does-not-exist":
                if key not in self.acked_keys:
                    self.final["absent"] += 1
                else:
                    self.final["lost"] += 1
                    if key not in self.final["lost-keys"]:
                        self.final["lost-keys"].append(key)
            self._next_final_read(w)

    # -- [extension] final reads ------------------------------------------------------------------
    def start_final_reads(self, keys: list, deadline_ns: int | None = None) -> None:
        """Each node's reader client reads every key in `keys` (see the module docstring)."""
        assert not self.running, "final reads start after the main phase"
        now = self.loop.now_ns()
        self.final_end_ns = deadline_ns if deadline_ns is not None else (
            now + int(final_reads_s_max * 1e9))
        self.final_active = True
        readers = self.workers[:len(self.nodes)]
        self.final["planned"] += len(keys) * len(readers)
        for w in readers:
            if w.op is not None:   # still in flight after the main phase: cannot read for now
                log.warning("final reads: client %s is busy; skipping its reads", w.client_id)
                self.final["not-issued"] += len(keys)
                continue
            self.final_queue[w.thread] = list(keys)
        for w in readers:
            if w.thread in self.final_queue:
                self._next_final_read(w)

    def _next_final_read(self, w: Worker) -> None:
        keys = self.final_queue.get(w.thread)
        if not keys:
            self.final_queue.pop(w.thread, None)
            return
        now = self.loop.now_ns()
        if now >= self.final_end_ns:
            self.final["not-issued"] += len(keys)
            self.final_queue.pop(w.thread)
            return
        key = keys.pop(0)
        self._send_op(w, "read", [key, None], now)

    def final_answered(self) -> int:
        """Final reads with a correct-looking answer: a value, or 'absent' for a key never set."""
        return self.final["ok"] + self.final["absent"]

    def final_reads_done(self) -> bool:
        return not self.final_queue and self.idle()
