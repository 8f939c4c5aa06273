"""Linearizability checker for lin-kv histories: the runner's oracle.

What it owns
    Deciding whether one key's history of read / write / cas operations is linearizable with
    respect to a compare-and-set register that starts at nil (spec §5.8), and doing so for every
    key of a whole history (``check_independent``). It imports only the standard library: the
    oracle shares no code with the nodes or the harness it judges, and it never touches files.

Public API (fixed by the runner contract)
    check_register(ops, *, config_max=..., time_limit_s=..., key=None, search="competition",
                   absent_reads=False) -> per-key result
    check_independent(history, *, time_limit_s=..., config_max=..., absent_reads=False)
        -> {"valid?", "results", "failures"[, "absent-reads"]}

Model and preprocessing (spec §5.8)
    * An op is an invocation paired with the next record of the same process. ``fail`` ops are
      dropped; an invocation without completion counts as ``info``. Nemesis records are ignored.
    * ``info`` ops may take effect at any time after their invocation, or never. Info reads have
      no effect and are dropped; an ok read of nil is legal anywhere and is dropped too.
    * write v sets v; cas [a b] is legal only when the register equals a, then sets b; an ok read
      of v is legal only when the register equals v. Values are arbitrary JSON compared exactly,
      as Knossos's Clojure `=` compares them (lists and objects are frozen to tuples for hashing;
      integers, floats and booleans are kept apart: 3, 3.0 and true are three values).
    * [extension] ``absent_reads``: a read that failed with the definite key-does-not-exist
      (code 20) is an ok read that requires the register to be nil. The jar drops it with the
      other failed ops, so a lost write that a later read exposes as 20 passes there.

Two searches over the same cuts (``search``): the witness search (depth first, below) stops at
the first linearization; the breadth-first search carries every configuration and is kept as
the competition's second runner (and as the reference the witness search is tested against).

Algorithm: just-in-time linearization over call/return events (the WGL search run breadth-first)
    Records are swept in history order (the order is real time; positions, not clocks, decide
    precedence). A *configuration* is ``(state, U)``: the register value and a bitset of ops that
    have been invoked but not yet linearized. The *frontier* F is the set of configurations the
    register could be in after the records seen so far; it starts as {(nil, {})}.
      - call of op Y: Y's bit is added to U in every configuration of F.
      - return of an ok op X: F' = every configuration reachable from F by linearizing pending
        ops in some order and then X (X is linearized "just in time", before its return). The
        search memoises (state, U, need) so each configuration is explored once per step. If F'
        is empty, no linearization exists: the history is not linearizable at X.
    Every return is therefore a cut that carries the full *set of possible configurations*, which
    is exactly the sound way to cut a history that contains info ops: an info op stays pending
    (its bit stays in U) until it is linearized or proven useless, so nothing it could do later
    is lost at a cut. Ops are given bit *slots* that are reused once an op leaves every
    configuration, so bitsets stay as small as the number of pending ops.

Pruning, and why each rule is sound (each keeps at least one witness of every linearization)
    1. Dominance on info ops. Split U into O (pending ok ops) and I (pending info ops). If two
       configurations have the same state and O, and I1 ⊇ I2, then everything possible from
       (s, O, I2) is possible from (s, O, I1): the extra info ops may simply never take effect.
       Only the maximal I are kept.
    2. No info op right before a write. In any linearization, an info op directly followed by a
       write can be deleted: the write overwrites its effect, nothing observed it, and deleting
       it only leaves one more info op available (rule 1). So after linearizing an info op, the
       search's next op must be a read or cas that needs the value it produced (``need`` flag).
       (A search step always ends with X, so an info op in it always has a next op; one that
       would take effect after X is tried in a later step, where it is still pending.)
       This keeps the search from enumerating all subsets of timed-out writes.
    3. Identical info ops are interchangeable (same f and value, all invoked already, none ever
       completes): only the lowest-slot one of each signature is tried.
    4. Useless info ops. An info op whose resulting value v is never again required (no ok read
       of v returns after the current position, no ok cas from v does, and no info cas from v
       exists at all, since those never return) is removed
       from every configuration: by rule 2's argument, any linearization that uses it later can
       drop it. An info cas [a a] never changes the register and is dropped at once.
    5. Only applicable ops are tried from a configuration: writes, and reads / cas whose
       required value is the current state (pending ops are indexed by required value).
    6. Fast paths: when nothing but X and info ops is pending, X is linearized directly if its
       precondition holds (a longer path through info ops ends in the same state with fewer
       info ops left, so it is dominated); a write X in that situation needs no search at all.

Witness search: the same cuts, depth first (``run_witness``)
    A node is (k, state, O, C, need): the k-th returning ok op x_k is next to be linearized, O
    holds the pending ok ops as bits, C counts the pending info ops per signature (rule 3 made
    exact: info ops with the same signature are interchangeable once invoked, so only their
    number matters, and a history's thousands of timed-out writes of five values take five
    counters), need is rule 2's flag. From a node the search linearizes one applicable op; when
    it linearizes x_k it moves on to the next return still pending. It tries x_k first, then the
    ops that produce the value x_k needs (ok ops before info ops), then the rest, and stops at
    the first node past the last return. A node seen before is on the current path or dead
    (the WGL memo of (linearized set, state), Lowe's "just-in-time" variant); a node dominated by
    a dead one (same k, state and O, at most its info ops, rule 1) is dead. Two more cuts keep
    at least one witness: an applicable ok op that leaves the state unchanged (a read, a cas
    [a a]) is taken alone, since it can move to the front of any linearization; an applicable
    x_k with no other ok op pending is taken alone (rule 6). When the search is stuck, the
    furthest return it reached is the first one the breadth-first search would find empty,
    so both report the same op with the same explanation (tested). Memory is trimmed as it
    goes: the memo of the returns below the deepest choice point still open is dropped.

Bounds (per key: one hard key cannot use up another's budget)
    ``config_max`` bounds the configurations a search holds at once (the witness search's memo;
    the breadth-first search's closure of one step), which bounds memory (about 500 bytes
    each at the peak, measured with tracemalloc on a stuck search over 20,000 ops);
    ``time_limit_s`` bounds wall-clock time. The competition gives the witness
    search ``WITNESS_TIME_SHARE`` of the time, then the breadth-first search the rest. When
    both run out the verdict is ``"unknown"`` with cause ``"search-limit"``, the ``"limit"``
    that ran out and a ``"reason"`` in words. The jar's Knossos has no time limit (it stops when
    memory runs low); the runner's ``--lin-time-limit`` and ``--lin-config-max`` raise these.
    The worst case stays exponential in the ops pending at once on one key.

Testing
    tests/test_linearizability.py checks hand-made verdicts, histories generated from real
    sequential executions, agreement with a brute-force search over every real-time-
    consistent order on random small histories (hundreds of thousands agreed during development),
    and agreement of the witness search with the breadth-first one (verdict, failing op and
    explanation) wherever the latter decides. bench/checker_bench.py compares their speed.

Reports
    An invalid key names the op that could not be linearized, the last ok op before it, the ops
    concurrent with it (at most ``WINDOW_MAX``), the values the register could hold, and a short
    explanation that a person can act on.
"""

from __future__ import annotations

import heapq
import logging
import operator
import time

__all__ = ["check_register", "check_independent", "CONFIG_MAX_DEFAULT", "TIME_LIMIT_S_DEFAULT"]

log = logging.getLogger(__name__)

CONFIG_MAX_DEFAULT = 1_000_000  # configurations one key's search holds at once (bounds memory)
TIME_LIMIT_S_DEFAULT = 60.0  # wall-clock bound for one key's check
WITNESS_TIME_SHARE = 0.5  # share of a key's time the competition gives the witness search first
ABSENT_ERROR = "key-does-not-exist"  # the definite error (code 20) a strict read observes
WINDOW_MAX = 64  # ops listed in an invalid key's "window"
EXPLAIN_CONFIG_MAX = 100_000  # configurations explored when computing the possible values
TIME_CHECK_EVERY = 1024  # nodes / events between two clock reads
DOMINANCE_CHECK_MAX = 16  # dead nodes of the same (return, state, ok ops) compared with a new one

_CLIENT_FS = ("read", "write", "cas")
_COMPLETIONS = ("ok", "fail", "info")
_READ, _WRITE, _CAS = 0, 1, 2
_NONE = object()  # "no required value" / "no resulting value"
_KEEP = object()  # a read leaves the state as it is


_LIMIT_WORDS = {"time_limit_s": "time limit", "config_max": "memory limit"}


class _SearchLimit(Exception):
    """Raised inside the search when config_max or the deadline is exceeded."""

    def __init__(self, limit: str):
        super().__init__(limit)
        self.limit = limit


def _freeze(v):
    """Map a JSON value to a hashable value with exact JSON equality, as Knossos's Clojure `=`:
    lists -> tuples, and integers, floats and booleans are three kinds (3 != 3.0 != true)."""
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return ("\x00obj", frozenset((k, _freeze(x)) for k, x in v.items()))
    if v is True or v is False:
        return ("\x00bool", v)
    if type(v) is float:
        return ("\x00float", v)
    return v


def _thaw(v):
    """Inverse of _freeze, for reports."""
    if isinstance(v, tuple):
        if len(v) == 2 and v[0] in ("\x00bool", "\x00float"):
            return v[1]
        if len(v) == 2 and v[0] == "\x00obj" and isinstance(v[1], frozenset):
            return {k: _thaw(x) for k, x in v[1]}
        return [_thaw(x) for x in v]
    return v


def _show(v) -> str:
    """A value the way a person reads it in a history: nil, 3, [1 4]."""
    v = _thaw(v)
    if v is None:
        return "nil"
    if isinstance(v, list):
        return "[" + " ".join(_show(_freeze(x)) for x in v) + "]"
    if v is True:
        return "true"
    if v is False:
        return "false"
    return repr(v) if isinstance(v, str) else str(v)


class _Op:
    """One logical operation: an invocation and its completion (or none)."""

    __slots__ = ("f", "type", "kind", "req", "res", "inv_pos", "ret_pos", "invoke", "complete",
                 "value", "info", "sig", "slot", "bit", "death", "absent")

    def __init__(self, f, typ, inv_pos, ret_pos, invoke, complete, value, absent=False):
        self.f = f
        self.type = typ  # "ok" | "fail" | "info" (an invocation without completion is "info")
        self.inv_pos = inv_pos
        self.ret_pos = ret_pos  # None for info
        self.invoke = invoke
        self.complete = complete
        self.value = value  # the user-visible value (read: the value returned)
        self.info = typ == "info"
        self.req = _NONE
        self.res = _NONE
        self.sig = None
        self.slot = -1
        self.bit = 0
        self.death = -1  # info ops: position after which no op can need their value
        self.absent = absent  # a read that failed with key-does-not-exist, read strictly
        if f == "read":
            self.kind = _READ
            self.req = None if absent else _NONE if value is None else _freeze(value)
        elif f == "write":
            self.kind = _WRITE
            self.res = _freeze(value)
        else:
            self.kind = _CAS
            if not (isinstance(value, (list, tuple)) and len(value) == 2):
                raise ValueError(f"cas value must be [from, to], got {value!r}")
            self.req = _freeze(value[0])
            self.res = _freeze(value[1])
        self.sig = (self.kind, self.req, self.res)

    def summary(self) -> dict:
        """A compact description of the op for reports."""
        rec = self.complete if self.complete is not None else self.invoke
        out = {"process": rec.get("process"), "type": rec.get("type") if self.absent else self.type,
               "f": self.f, "value": self.value,
               "invoke-index": self.invoke.get("index"), "invoke-time": self.invoke.get("time")}
        if self.complete is not None:
            out["complete-index"] = self.complete.get("index")
            out["complete-time"] = self.complete.get("time")
        return out


def _is_absent_read(f, comp) -> bool:
    """A read that failed with the definite error key-does-not-exist (code 20)."""
    if f != "read" or comp is None or comp.get("type") != "fail":
        return False
    err = comp.get("error")
    return (isinstance(err, (list, tuple)) and len(err) > 0 and err[0] == ABSENT_ERROR) or \
        err == ABSENT_ERROR


def _pair(ops, absent_reads: bool = False) -> tuple[list[_Op], int]:
    """Pair invocations with completions (by process). Returns (ops, count of client ops).

    With ``absent_reads``, a read that failed with key-does-not-exist becomes an ok read that
    requires the register to be nil (the key absent) instead of a fail op that is dropped."""
    pending: dict = {}
    out: list[_Op] = []

    def finish(inv_pos, inv, comp_pos, comp):
        f = inv.get("f")
        typ = "info" if comp is None else comp.get("type")
        value = inv.get("value")
        absent = absent_reads and _is_absent_read(f, comp)
        if absent:
            typ, value = "ok", None
        elif f == "read":
            value = comp.get("value") if (comp is not None and typ == "ok") else None
        elif value is None and comp is not None:
            value = comp.get("value")
        out.append(_Op(f, typ, inv_pos, comp_pos if typ != "info" else None, inv, comp, value,
                       absent))

    for pos, rec in enumerate(ops):
        proc = rec.get("process")
        if proc == "nemesis" or rec.get("f") not in _CLIENT_FS:
            continue
        typ = rec.get("type")
        if typ == "invoke":
            if proc in pending:
                log.warning("process %r invoked again before completing; treating as info", proc)
                finish(*pending.pop(proc), None, None)
            pending[proc] = (pos, rec)
        elif typ in _COMPLETIONS:
            if proc not in pending:
                log.warning("completion without invocation ignored: %r", rec)
                continue
            inv_pos, inv = pending.pop(proc)
            finish(inv_pos, inv, pos, rec)
        else:
            log.warning("op with unknown type ignored: %r", rec)
    for inv_pos, inv in pending.values():
        finish(inv_pos, inv, None, None)
    out.sort(key=lambda o: o.inv_pos)
    return out, len(out)


def _fmt_t(rec) -> str:
    t = rec.get("time") if rec else None
    if isinstance(t, (int, float)):
        return f"t={t / 1e9:.3f} s"
    return f"index {rec.get('index') if rec else '?'}"


def _describe(op: _Op) -> str:
    if op.f == "read":
        return f"read {_show(_freeze(op.value))}"
    return f"{op.f} {_show(_freeze(op.value))}"


class _Checker:
    """State of one per-key check. Single use."""

    def __init__(self, ops, config_max: int, deadline: float, key, absent_reads: bool = False):
        assert config_max >= 1
        self.config_max = config_max
        self.deadline = deadline
        self.key = key
        self.records = ops
        self.all_ops, self.op_count = _pair(ops, absent_reads)
        self.configs_explored = 0
        self.frontier_max = 1
        self.useless_infos: list = []  # info ops no later op can observe (rule 4)
        # Slot tables (indexed by slot number).
        self.slot_op: list = []
        self.used = 0
        self.info_mask = 0
        self.sig_mask: dict = {}  # info op signature -> bits of pending info ops like it
        self.bit_tab: dict = {}  # bit -> (resulting state or _KEEP, is info, signature)
        self.write_mask = 0  # bits of pending writes
        self.req_mask: dict = {}  # required value -> bits of pending reads / cas needing it

    # -- search ------------------------------------------------------------------------------

    def run(self) -> dict:
        call_at, ret_at = self._events()
        n = len(self.records)
        frontier = [(None, 0)]  # (state, U)
        deaths: list = []  # heap of (death position, tie, op) for info ops
        tie = 0
        for pos in range(n):
            if pos % TIME_CHECK_EVERY == 0 and time.monotonic() > self.deadline:
                raise _SearchLimit("time_limit_s")
            if deaths and deaths[0][0] < pos:
                dead = 0
                while deaths and deaths[0][0] < pos:
                    dead |= self._free(heapq.heappop(deaths)[2])
                frontier = self._prune([(s, u & ~dead) for s, u in frontier])
            op = call_at[pos]
            if op is not None:
                bit = self._alloc(op)
                frontier = [(s, u | bit) for s, u in frontier]
                if op.info:
                    heapq.heappush(deaths, (op.death, tie, op))
                    tie += 1
            op = ret_at[pos]
            if op is not None:
                nxt = self._step(frontier, op)
                if not nxt:
                    return self._invalid(frontier, op)
                self._free(op)
                frontier = nxt
                if len(frontier) > self.frontier_max:
                    self.frontier_max = len(frontier)
        # The values the register may hold at the end (reported as Knossos's final configs).
        return {"valid?": True,
                "final-values": sorted((_thaw(s) for s in {s for s, _ in frontier}), key=repr)}

    def _events(self) -> tuple[list, list]:
        """The live ops by position: the op invoked there, the ok op returning there."""
        n = len(self.records)
        call_at: list = [None] * n
        ret_at: list = [None] * n
        for op in self._filter():
            call_at[op.inv_pos] = op
            if not op.info:
                ret_at[op.ret_pos] = op
        return call_at, ret_at

    def _filter(self) -> list:
        """Drop fail ops, info reads, nil reads and useless info ops; compute info deaths."""
        inf = float("inf")
        last_req: dict = {}  # value -> last position at which an op may still need it
        for op in self.all_ops:
            if op.type == "fail" or op.req is _NONE:
                continue
            if op.kind == _READ and op.info:
                continue
            p = inf if op.info else op.ret_pos
            if last_req.get(op.req, -1) < p:
                last_req[op.req] = p
        live = []
        for op in self.all_ops:
            if op.type == "fail":
                continue
            if op.kind == _READ and (op.info or op.req is _NONE):
                continue
            if op.info:
                if op.kind == _CAS and op.req == op.res:
                    self.useless_infos.append(op)
                    continue
                op.death = last_req.get(op.res, -1)
                if op.death <= op.inv_pos:
                    self.useless_infos.append(op)
                    continue
            live.append(op)
        return live

    def _alloc(self, op: _Op) -> int:
        free = ~self.used & (self.used + 1)  # lowest clear bit
        slot = free.bit_length() - 1
        if slot == len(self.slot_op):
            self.slot_op.append(None)
        self.slot_op[slot] = op
        op.slot, op.bit = slot, free
        self.used |= free
        self.bit_tab[free] = (_KEEP if op.kind == _READ else op.res, op.info, op.sig)
        if op.kind == _WRITE:
            self.write_mask |= free
        else:
            self.req_mask[op.req] = self.req_mask.get(op.req, 0) | free
        if op.info:
            self.info_mask |= free
            self.sig_mask[op.sig] = self.sig_mask.get(op.sig, 0) | free
        return free

    def _free(self, op: _Op) -> int:
        bit = op.bit
        assert self.used & bit and self.slot_op[op.slot] is op
        self.used &= ~bit
        self.slot_op[op.slot] = None
        del self.bit_tab[bit]
        if op.kind == _WRITE:
            self.write_mask &= ~bit
        else:
            left = self.req_mask[op.req] & ~bit
            if left:
                self.req_mask[op.req] = left
            else:
                del self.req_mask[op.req]
        if op.info:
            self.info_mask &= ~bit
            self.sig_mask[op.sig] &= ~bit
        return bit

    def _step(self, frontier: list, x: _Op) -> list:
        """All configurations right after x is linearized (x returns now)."""
        xb = x.bit
        ok_mask = ~self.info_mask
        out = []
        slow = []
        for s, u in frontier:
            if not u & xb:  # x was linearized earlier, when another op returned
                out.append((s, u))
                continue
            rest = u & ~xb
            if not rest & ok_mask:  # only info ops pending besides x
                if x.kind == _WRITE:
                    out.append((x.res, rest))
                    continue
                if s == x.req:
                    out.append((s if x.kind == _READ else x.res, rest))
                    continue
                if not rest:
                    continue
            slow.append((s, u))
        if slow:
            out.extend(self._search(slow, x))
        return self._prune(out) if len(out) > 1 else out

    def _search(self, starts: list, x: _Op) -> list:
        """Breadth-first closure from starts; returns the configurations just after x.

        From a node only applicable ops are tried: writes, and reads / cas whose required
        value is the current state (``req_mask``); after an info op, writes are not tried.
        """
        xb = x.bit
        bit_tab = self.bit_tab
        sig_mask = self.sig_mask
        req_mask = self.req_mask
        write_mask = self.write_mask
        config_max = self.config_max
        seen = set()
        frontier = []
        for s, u in starts:
            node = (s, u, False)
            if node not in seen:
                seen.add(node)
                frontier.append(node)
        results = []
        count = 0
        while frontier:
            nxt = []
            for s, u, need in frontier:
                count += 1
                if count % TIME_CHECK_EVERY == 0 and time.monotonic() > self.deadline:
                    self.configs_explored += count
                    raise _SearchLimit("time_limit_s")
                m = req_mask.get(s, 0) & u
                if not need:  # rule 2: no info op right before a write
                    m |= write_mask & u
                while m:
                    low = m & -m
                    m ^= low
                    res, info, sig = bit_tab[low]
                    if info:
                        same = sig_mask[sig] & u
                        if same & -same != low:
                            continue  # rule 3: try only one of identical info ops
                    s2 = s if res is _KEEP else res
                    u2 = u ^ low
                    if low == xb:
                        results.append((s2, u2))
                        continue
                    node = (s2, u2, info)
                    if node not in seen:
                        seen.add(node)
                        nxt.append(node)
                if len(seen) + len(results) > config_max:
                    self.configs_explored += count
                    raise _SearchLimit("config_max")
            frontier = nxt
        self.configs_explored += count
        return results

    def _prune(self, configs: list) -> list:
        """Deduplicate and keep, per (state, pending ok ops), only maximal sets of info ops."""
        info = self.info_mask
        groups: dict = {}
        for s, u in configs:
            groups.setdefault((s, u & ~info), set()).add(u & info)
        out = []
        for (s, o), infos in groups.items():
            if len(infos) == 1:
                out.append((s, o | next(iter(infos))))
                continue
            kept: list = []
            for i in sorted(infos, key=int.bit_count, reverse=True):
                if not any(not (i & ~k) for k in kept):
                    kept.append(i)
            out.extend((s, o | i) for i in kept)
        return out

    # -- witness search (depth first) ---------------------------------------------------------

    def run_witness(self) -> dict:
        """Depth-first search for one linearization; stops at the first one found.

        Same model, cuts and pruning rules as ``run``, but instead of carrying every possible
        configuration from one return to the next it follows one and comes back only when it is
        stuck. A node is ``(k, state, O, C, need)``: the k-th returning ok op x_k is about to be
        linearized; O is the bitset of pending ok ops (slots as in ``run``); C counts the pending
        info ops per signature (info ops with the same signature are interchangeable once
        invoked, rule 3, so only their number matters); ``need`` is rule 2's flag. (k, O, C)
        names the set of ops linearized so far up to interchangeable twins, so ``memo`` is the
        WGL memo of (linearized set, state): a node in it is on the current path or dead.
        """
        if time.monotonic() > self.deadline:
            raise _SearchLimit("time_limit_s")
        plan = self._plan()
        steps, tabs, sig_tabs, x_bits, moves, sig_width = plan
        m = len(steps)
        k, o, c = self._advance(-1, 0, (0,) * sig_width, x_bits, moves, m)
        if k == m:
            return {"valid?": True, "final-values": [None]}
        memo: list = [None] * m
        dead: list = [None] * m  # per k: (state, O) -> [(C, need)] of nodes proven dead
        memo_lo = 0  # memo[:memo_lo] and dead[:memo_lo] were dropped: no node comes back there
        stored = 0
        deepest_k, deepest = -1, []
        config_max = self.config_max
        deadline = self.deadline
        root = (k, None, o, c, False)
        stack = [[[root], 0, (k, None, o, c, False)]]  # [children in order, next index, parent]
        explored = 0
        ge = operator.ge
        while stack:
            frame = stack[-1]
            children, i, parent = frame
            if i == len(children):
                stack.pop()
                k, s, o, c, need = parent
                group = dead[k]
                if group is None:
                    group = dead[k] = {}
                group.setdefault((s, o), []).append((c, need))
                continue
            frame[1] = i + 1
            node = children[i]
            k, s, o, c, need = node
            if k == m:
                self.configs_explored += explored
                # The witness's last state (pending info ops may still change it later; the
                # breadth-first search reports every value the register may end with).
                return {"valid?": True, "final-values": [_thaw(s)]}
            seen = memo[k]
            if seen is None:
                seen = memo[k] = set()
            key = (s, o, c, need)
            if key in seen or (need and (s, o, c, False) in seen):
                continue  # dead, or a less constrained twin is dead
            group = dead[k]
            if group is not None:
                # Rule 1: a dead node with at least these info ops left, and no more
                # constrained, proves this one dead.
                others = group.get((s, o))
                if others is not None and any(
                        (need or not need2) and all(map(ge, c2, c)) for c2, need2 in
                        others[-DOMINANCE_CHECK_MAX:]):
                    continue
            seen.add(key)
            stored += 1
            explored += 1
            if k >= deepest_k:
                if k > deepest_k:
                    deepest_k, deepest = k, []
                if len(deepest) < EXPLAIN_CONFIG_MAX:
                    deepest.append((s, o, c))
            if explored % TIME_CHECK_EVERY == 0:
                if time.monotonic() > deadline:
                    self.configs_explored += explored
                    raise _SearchLimit("time_limit_s")
                stack, memo_lo, stored = self._trim(stack, memo, dead, memo_lo, stored)
            if stored > config_max:
                stack, memo_lo, stored = self._trim(stack, memo, dead, memo_lo, stored)
                if stored > config_max:
                    self.configs_explored += explored
                    raise _SearchLimit("config_max")
            stack.append([self._children(node, steps[k], tabs[k], sig_tabs[k], plan, m), 0, node])
        self.configs_explored += explored
        x = steps[deepest_k]
        return self._invalid(None, x, self._witness_states(deepest, x, tabs[deepest_k],
                                                           sig_tabs[deepest_k]))

    def _plan(self) -> tuple:
        """Sweep the records once. For the k-th return: the op returning, the slot table of
        pending ok ops and the signature table of pending info ops then, and ``moves[k]``, how
        (O, C) change on the way there from the previous return: ok bits set by calls, info
        signatures that died (rule 4; every info op of a signature dies at the same position,
        since its death depends only on the value it writes), info counts added by calls."""
        call_at, ret_at = self._events()
        n = len(self.records)
        steps, tabs, sig_tabs, x_bits, moves = [], [], [], [], []
        ok_slots: list = []
        used = 0
        sig_slot: dict = {}  # live info signature -> its index in C
        sig_slots: list = []  # index in C -> signature (or None)
        sig_tab = ()
        sig_changed = False
        deaths: list = []  # heap of (death position, tie, signature)
        added_bits = 0
        dead: list = []
        adds: dict = {}
        for pos in range(n):
            while deaths and deaths[0][0] < pos:
                sig = heapq.heappop(deaths)[2]
                j = sig_slot.pop(sig)
                sig_slots[j] = None
                sig_changed = True
                dead.append(j)
                adds.pop(j, None)
            op = call_at[pos]
            if op is not None:
                if op.info:
                    j = sig_slot.get(op.sig)
                    if j is None:
                        j = next((i for i, v in enumerate(sig_slots) if v is None), len(sig_slots))
                        if j == len(sig_slots):
                            sig_slots.append(None)
                        sig_slots[j] = op.sig
                        sig_slot[op.sig] = j
                        sig_changed = True
                        heapq.heappush(deaths, (op.death, len(steps) + pos, op.sig))
                    adds[j] = adds.get(j, 0) + 1
                else:
                    bit = ~used & (used + 1)  # lowest clear bit
                    slot = bit.bit_length() - 1
                    if slot == len(ok_slots):
                        ok_slots.append(None)
                    ok_slots[slot] = op
                    op.slot, op.bit = slot, bit
                    used |= bit
                    added_bits |= bit
            op = ret_at[pos]
            if op is not None:
                if sig_changed:
                    sig_tab = tuple(sig_slots)
                    sig_changed = False
                steps.append(op)
                tabs.append(tuple(ok_slots))
                sig_tabs.append(sig_tab)
                x_bits.append(op.bit)
                moves.append((added_bits, tuple(dead), tuple(adds.items())))
                added_bits = 0
                dead = []
                adds = {}
                ok_slots[op.slot] = None  # linearized on every path by now; the slot is free
                used &= ~op.bit
        return steps, tabs, sig_tabs, x_bits, moves, len(sig_slots)

    @staticmethod
    def _advance(k: int, o: int, c: tuple, x_bits, moves, m: int) -> tuple:
        """From just after x_k is linearized to the next return whose op is still pending."""
        while True:
            k += 1
            if k == m:
                return k, o, c
            added_bits, dead, adds = moves[k]
            o |= added_bits
            if dead or adds:
                cl = list(c)
                for j in dead:
                    cl[j] = 0
                for j, count in adds:
                    cl[j] += count
                c = tuple(cl)
            if o & x_bits[k]:
                return k, o, c

    def _children(self, node: tuple, x: _Op, tab: tuple, sig_tab: tuple, plan: tuple,
                  m: int) -> list:
        """The nodes one linearized op away from ``node``, in the order they are tried.

        Order: x itself, then ops that produce the value x needs (ok ops before info ops: an
        info op need never take effect), then the other ok ops, then the other info ops.
        Dominance cuts: an applicable ok op that leaves the state unchanged (a read, a cas
        [a a]) is taken alone, since moving it to the front of any linearization keeps that
        linearization legal; and an applicable x with no other ok op pending is taken alone
        (rule 6).
        """
        k, s, o, c, need = node
        x_bits, moves = plan[3], plan[4]
        xb = x.bit
        want = x.req
        # The common cases, decided by x alone: an applicable x that keeps the state, or an
        # applicable x with no other ok op pending.
        if x.kind == _WRITE:
            simple = o == xb and not need
        else:
            simple = want == s and (o == xb or x.kind == _READ or x.res == want)
        if simple:
            k2, o2, c2 = self._advance(k, o ^ xb, c, x_bits, moves, m)
            return [(k2, s if x.kind == _READ else x.res, o2, c2, False)]
        x_next = None
        producers_ok, producers_info, others_ok, others_info = [], [], [], []
        mm = o
        while mm:
            low = mm & -mm
            mm ^= low
            op = tab[low.bit_length() - 1]
            if op.kind == _WRITE:
                if need:
                    continue  # rule 2
                s2 = op.res
            elif op.req != s:
                continue
            elif op.kind == _READ or op.res == op.req:
                if low == xb:
                    k2, o2, c2 = self._advance(k, o ^ low, c, x_bits, moves, m)
                    return [(k2, s, o2, c2, False)]
                return [(k, s, o ^ low, c, False)]
            else:
                s2 = op.res
            if low == xb:
                k2, o2, c2 = self._advance(k, o ^ low, c, x_bits, moves, m)
                x_next = (k2, s2, o2, c2, False)
            else:
                (producers_ok if s2 == want else others_ok).append((k, s2, o ^ low, c, False))
        if x_next is not None and o == xb:
            return [x_next]  # rule 6
        for j, count in enumerate(c):
            if not count:
                continue
            kind, req, res = sig_tab[j]
            if kind == _WRITE:
                if need:
                    continue
            elif req != s:
                continue
            c2 = c[:j] + (count - 1,) + c[j + 1:]
            (producers_info if res == want else others_info).append((k, res, o, c2, True))
        out = [x_next] if x_next is not None else []
        out += producers_ok
        out += producers_info
        out += others_ok
        out += others_info
        return out

    @staticmethod
    def _trim(stack: list, memo: list, dead: list, memo_lo: int, stored: int) -> tuple:
        """Drop the exhausted frames at the bottom of the stack and the memo of the returns
        below the lowest frame that still has untried children: no node can reach them again
        (a node's k never decreases along a path)."""
        j = 0
        while j < len(stack) and stack[j][1] >= len(stack[j][0]):
            j += 1
        if j == len(stack):
            return stack, memo_lo, stored
        if j:
            stack = stack[j:]
        lo = stack[0][2][0]  # every node still to come descends from this frame's parent
        for kk in range(memo_lo, lo):
            seen = memo[kk]
            if seen is not None:
                stored -= len(seen)
                memo[kk] = None
                dead[kk] = None
        return stack, max(memo_lo, lo), stored

    def _witness_states(self, nodes: list, x: _Op, tab: tuple, sig_tab: tuple) -> tuple:
        """Values the register could hold while x is pending, from the witness search's nodes
        at x's return (x itself excluded); the same closure as ``_possible_states``."""
        seen = set(nodes)
        todo = list(nodes)
        states = {s for s, _, _ in nodes}
        capped = False
        while todo:
            s, o, c = todo.pop()
            nxt = []
            mm = o & ~x.bit
            while mm:
                low = mm & -mm
                mm ^= low
                op = tab[low.bit_length() - 1]
                if op.kind == _WRITE:
                    nxt.append((op.res, o ^ low, c))
                elif s == op.req:
                    nxt.append((s if op.kind == _READ else op.res, o ^ low, c))
            for j, count in enumerate(c):
                if count:
                    kind, req, res = sig_tab[j]
                    if kind == _WRITE or req == s:
                        nxt.append((res, o, c[:j] + (count - 1,) + c[j + 1:]))
            for node in nxt:
                if node not in seen:
                    if len(seen) >= EXPLAIN_CONFIG_MAX:
                        capped = True
                        continue
                    seen.add(node)
                    states.add(node[0])
                    todo.append(node)
        self._add_dead_info_states(states, x)
        return states, capped

    # -- reports -----------------------------------------------------------------------------

    def _possible_states(self, frontier: list, x: _Op) -> tuple[set, bool]:
        """Values the register could hold while x is pending (x itself excluded)."""
        seen = set(frontier)
        todo = list(frontier)
        states = {s for s, _ in frontier}
        capped = False
        while todo:
            s, u = todo.pop()
            m = u & ~x.bit
            while m:
                low = m & -m
                m ^= low
                op = self.slot_op[low.bit_length() - 1]
                if op.kind == _WRITE:
                    s2 = op.res
                elif s != op.req:
                    continue
                else:
                    s2 = s if op.kind == _READ else op.res
                node = (s2, u ^ low)
                if node not in seen:
                    if len(seen) >= EXPLAIN_CONFIG_MAX:
                        capped = True
                        continue
                    seen.add(node)
                    states.add(s2)
                    todo.append(node)
        self._add_dead_info_states(states, x)
        return states, capped

    def _add_dead_info_states(self, states: set, x: _Op) -> None:
        """Info ops pruned as useless (rule 4, or dead by x's return) can still set the
        register: add the values they could produce from the states already found."""
        extra = [op for op in self.useless_infos if op.inv_pos < x.ret_pos]
        extra += [op for op in self.all_ops if op.info and op.kind != _READ and
                  op.inv_pos < x.ret_pos and 0 <= op.death < x.ret_pos]
        changed = True
        while changed:
            changed = False
            for op in extra:
                if (op.kind == _WRITE or op.req in states) and op.res not in states:
                    states.add(op.res)
                    changed = True

    def _invalid(self, frontier: list | None, x: _Op, possible: tuple | None = None) -> dict:
        states, capped = possible if possible is not None else self._possible_states(frontier, x)
        inv_pos, ret_pos = x.inv_pos, x.ret_pos
        window = []
        hidden = 0
        for op in self.all_ops:
            if op is x or op.type == "fail" or op.inv_pos >= ret_pos:
                continue
            if op.ret_pos is not None and op.ret_pos <= inv_pos:
                continue
            if op.kind == _READ and op.req is _NONE:
                continue  # nil and indeterminate reads constrain nothing
            if len(window) < WINDOW_MAX:
                window.append(op.summary())
            else:
                hidden += 1
        previous = None
        for op in self.all_ops:
            if op.type == "ok" and op is not x and op.ret_pos < ret_pos:
                if previous is None or op.ret_pos > previous.ret_pos:
                    previous = op
        n_info = sum(1 for w in window if w["type"] == "info")
        states_txt = "{" + ", ".join(sorted(_show(s) for s in states)) + "}"
        key_txt = f" of key {_show(_freeze(self.key))}" if self.key is not None else ""
        if x.absent:
            head = f"read{key_txt} failed with key-does-not-exist (read strictly: the key was absent)"
        elif x.kind == _READ:
            head = f"read{key_txt} returned {_show(x.req)}"
        else:
            head = f"cas{key_txt} {_show(_freeze(x.value))} succeeded"
        n_conc = len(window) + hidden
        where = (f"{'at least ' if capped else ''}{states_txt}, never {_show(x.req)}")
        if n_conc:
            conc = f"{n_conc} concurrent op{'s' if n_conc != 1 else ''}"
            if n_info:
                conc += f" ({n_info} indeterminate)"
            why = f"every order of the {conc} leaves the register in {where}"
        else:
            why = f"no op is concurrent with it and the register holds {where}"
        sentences = [
            f"{head} at {_fmt_t(x.complete)} (invoked {_fmt_t(x.invoke)}, process "
            f"{x.invoke.get('process')}), but {why}."]
        sentences.append(self._why(x))
        explanation = " ".join(s for s in sentences if s)
        out = {"valid?": False,
               "op": dict(x.complete),
               "previous-ok": dict(previous.complete) if previous is not None else None,
               "window": window,
               "possible-values": sorted((_thaw(s) for s in states), key=repr),
               "explanation": explanation}
        if hidden:
            out["window-truncated"] = hidden
        return out

    def _why(self, x: _Op) -> str:
        """One or two sentences about where the required value went."""
        want = x.req
        producers = [op for op in self.all_ops if op is not x and op.res is not _NONE
                     and op.res == want and op.inv_pos < x.ret_pos]
        real = [op for op in producers if op.type != "fail"]
        failed = [op for op in producers if op.type == "fail"]
        if want is None:
            return ("The register starts at nil, but a value was written before this op "
                    "began and nothing sets it back to nil.")
        if not real:
            msg = (f"No write or cas that could set the register to {_show(want)} was invoked "
                   f"before this op completed.")
            if failed:
                last = failed[-1]
                msg += (f" A {_describe(last)} that failed ({_fmt_t(last.complete)}, index "
                        f"{last.complete.get('index')}) was visible: a fail means the op did "
                        f"not happen, so the node applied a write it reported as failed.")
            return msg
        last = max(real, key=lambda o: o.inv_pos)
        if last.info:
            return (f"The last op that could set {_show(want)} was an indeterminate "
                    f"{_describe(last)} invoked at {_fmt_t(last.invoke)}; even taking effect "
                    f"at any time it cannot be ordered to explain this op.")
        if last.ret_pos > x.inv_pos:
            return (f"The last {_describe(last)} (completed {_fmt_t(last.complete)}) overlaps "
                    f"this op, but the other ops it overlaps leave no point where the register "
                    f"held {_show(want)}.")
        overwriters = [op for op in self.all_ops
                       if op.type == "ok" and op.res is not _NONE and op.res != want
                       and op.inv_pos > last.ret_pos and op.ret_pos < x.inv_pos]
        base = (f"The last {_describe(last)} completed at {_fmt_t(last.complete)} "
                f"(index {last.complete.get('index')})")
        if overwriters:
            w = max(overwriters, key=lambda o: o.ret_pos)
            return (f"{base}; after it, {_describe(w)} completed at {_fmt_t(w.complete)} "
                    f"(index {w.complete.get('index')}), before this op began at "
                    f"{_fmt_t(x.invoke)}: the value was stale.")
        return (f"{base}, before this op began at {_fmt_t(x.invoke)}; the ops between them "
                f"leave no order in which the register still held {_show(want)}.")


def check_register(ops, *, config_max: int = CONFIG_MAX_DEFAULT,
                   time_limit_s: float = TIME_LIMIT_S_DEFAULT, key=None,
                   search: str = "competition", absent_reads: bool = False) -> dict:
    """Check one key's history (values already reduced from [k, v] to v) against a CAS register.

    ``ops`` is in history order and may contain nemesis records (ignored). ``key`` is used only
    in the explanation. ``time_limit_s`` and ``config_max`` are this key's budget. ``search``:
    "witness" (depth first, stops at the first linearization), "bfs" (every configuration at
    every return) or "competition" (the witness search with ``WITNESS_TIME_SHARE`` of the time,
    then, if it ran out, the breadth-first search with the rest: whatever either decides within
    the budget is decided). ``absent_reads`` [extension] checks a read that failed with
    key-does-not-exist as an observation that the key was absent (the register was nil).

    Returns {"valid?": True|False|"unknown", "op-count": n, ...}; "op-count" counts client
    operations (invocations), "analyzer" names the search that decided. Never raises on a search that is too large: it returns "unknown"
    with cause "search-limit", the "limit" that ran out and a "reason" in words instead.
    """
    started = time.monotonic()
    deadline = started + time_limit_s
    tried = []
    out = None
    checkers = []
    for name in (("witness", "bfs") if search == "competition" else (search,)):
        if name not in ("witness", "bfs"):
            raise ValueError(f"unknown search {name!r}")
        share = WITNESS_TIME_SHARE if name == "witness" and search == "competition" else 1.0
        checker = _Checker(ops, config_max, started + time_limit_s * share, key, absent_reads)
        checkers.append(checker)
        try:
            out = checker.run_witness() if name == "witness" else checker.run()
            out["analyzer"] = name  # which search decided (Knossos names its :analyzer too)
            break
        except _SearchLimit as e:
            log.info("key %r: %s search reached its %s after %d configurations", key, name,
                     e.limit, checker.configs_explored)
            tried.append((name, e.limit, checker.configs_explored))
            if time.monotonic() >= deadline:
                break
    if out is None:
        name, limit, _ = tried[-1]
        spent = "; ".join(f"the {n} search stopped at its {_LIMIT_WORDS[lim]} after "
                          f"{explored:,} configurations" for n, lim, explored in tried)
        out = {"valid?": "unknown", "cause": "search-limit", "limit": limit,
               "reason": (f"budget exhausted: {spent} (budget per key: {time_limit_s:g} s, "
                          f"{config_max:,} configurations held at once)")}
    out["op-count"] = checkers[0].op_count
    out["configs-explored"] = sum(c.configs_explored for c in checkers)
    out["frontier-max"] = max(c.frontier_max for c in checkers)
    return out


def _hashable_key(k):
    if isinstance(k, list):
        return tuple(_hashable_key(x) for x in k)
    if isinstance(k, dict):
        return tuple(sorted((a, _hashable_key(b)) for a, b in k.items()))
    return k


def _merge_valid(values) -> object:
    values = list(values)
    if any(v is False for v in values):
        return False
    if any(v is not True for v in values):
        return "unknown"
    return True


def check_independent(history, *, time_limit_s: float = TIME_LIMIT_S_DEFAULT,
                      config_max: int = CONFIG_MAX_DEFAULT, absent_reads: bool = False,
                      search: str = "competition") -> dict:
    """Split a whole history by key (value[0]) and check each key with its own budget
    (``time_limit_s`` and ``config_max`` apply to every key: one hard key cannot use up the
    others' time). ``absent_reads`` [extension]: see ``check_register``; when on, the result
    says so ("absent-reads": True)."""
    per_key: dict = {}
    open_key: dict = {}  # process -> key of its pending invocation
    for rec in history:
        proc = rec.get("process")
        if proc == "nemesis" or rec.get("f") not in _CLIENT_FS:
            continue
        typ = rec.get("type")
        value = rec.get("value")
        if typ == "invoke":
            if not (isinstance(value, (list, tuple)) and len(value) == 2):
                log.warning("client op without a [key, value] tuple ignored: %r", rec)
                open_key.pop(proc, None)
                continue
            k = _hashable_key(value[0])
            open_key[proc] = k
        else:
            if proc not in open_key:
                continue
            k = open_key.pop(proc)
        if k not in per_key:
            per_key[k] = []
        reduced = dict(rec)
        reduced["value"] = value[1] if isinstance(value, (list, tuple)) and len(value) == 2 else None
        per_key[k].append(reduced)
    results: dict = {}
    for k, ops in per_key.items():
        results[k] = check_register(ops, config_max=config_max, time_limit_s=time_limit_s, key=k,
                                    search=search, absent_reads=absent_reads)
    failures = [k for k, r in results.items() if r["valid?"] is not True]
    out = {"valid?": _merge_valid(r["valid?"] for r in results.values()),
           "results": results, "failures": failures}
    if absent_reads:
        out["absent-reads"] = True
    return out
