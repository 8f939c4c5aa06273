"""The services' state machines: immutable values, each request giving (new state, reply body).

Owns the three persistent services of the jar's `service.clj`:
- `PersistentKv`: one map. read -> read_ok {value} or error 20 "key does not exist"; write ->
  write_ok; cas -> cas_ok when the key holds `from` (then it holds `to`), error 22 "current value
  X is not Y" when it holds something else, and for a missing key error 20 -- unless the request
  says `create_if_not_exists` (any value but null or false), which creates the key with `to`.
- `LwwKv`: the same API without `create_if_not_exists`, with a Lamport clock: every change stores
  {ts: clock, value} and increments the clock. (The jar also defines a last-write-wins merge of
  two replicas, but its eventual wrapper throws every merge away; see consistency.py.)
- `PersistentTso`: `ts` -> ts_ok {ts: N}, N = 0, 1, 2, ...
A request with any other `type` raises `UnhandledRequest` (the jar's service logs it and never
answers).

Equality is Clojure's `=` on decoded JSON: keys and values compare by their canonical JSON text,
so 3, 3.0, "3" and true are four different keys and values, and states compare equal exactly when
they hold the same values (the sequential wrapper relies on it). Error texts print values the way
the jar's `pr-str` does (`nil`, `3`, `"a"`, `[1 2]`).

Invariants: a state is never mutated after construction (handle builds a new one); pure, no IO.
"""
from __future__ import annotations

from typing import Any

import orjson

from ..edn import dumps, from_json


class UnhandledRequest(Exception):
    """The service has no case for this request (the jar throws and sends no reply)."""


def canonical(value: Any) -> bytes:
    """The JSON text of `value` with sorted object keys: equal exactly when Clojure's `=` is."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def pr_str(value: Any) -> str:
    """A decoded JSON value as Clojure's pr-str prints it."""
    return dumps(from_json(value))


def clj_str(value: Any) -> str:
    """A decoded JSON value as Clojure's str prints it (strings bare, nil empty)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return pr_str(value)


def _truthy(value: Any) -> bool:
    return value is not None and value is not False


def _request_type(body: dict) -> Any:
    return body.get("type")


class _KvMap:
    """The read / write / cas cases both key-value services share; subclasses store the map."""

    __slots__ = ()
    create_if_not_exists = True      # may a cas create a missing key?
    from_text = staticmethod(pr_str)  # how a cas mismatch prints the expected value

    def _lookup(self, ck: bytes) -> tuple[bytes, Any] | None:
        """(canonical value, value) stored under key `ck`, or None."""
        raise NotImplementedError

    def _put(self, ck: bytes, value: Any):
        raise NotImplementedError

    def handle(self, body: dict) -> tuple["_KvMap", dict]:
        t = _request_type(body)
        ck = canonical(body.get("key"))
        if t == "write":
            return self._put(ck, body.get("value")), {"type": "write_ok"}
        if t not in ("read", "cas"):
            raise UnhandledRequest(f"no case for request type {t!r}")
        entry = self._lookup(ck)
        if entry is None:
            creates = self.create_if_not_exists and _truthy(body.get("create_if_not_exists"))
            if t == "cas" and creates:
                return self._put(ck, body.get("to")), {"type": "cas_ok"}
            return self, {"type": "error", "code": 20, "text": "key does not exist"}
        if t == "read":
            return self, {"type": "read_ok", "value": entry[1]}
        if entry[0] == canonical(body.get("from")):
            return self._put(ck, body.get("to")), {"type": "cas_ok"}
        return self, {"type": "error", "code": 22,
                      "text": f"current value {pr_str(entry[1])} is not "
                              f"{self.from_text(body.get('from'))}"}


class PersistentKv(_KvMap):
    """lin-kv's and seq-kv's map: canonical key -> (canonical value, value)."""

    __slots__ = ("m",)

    def __init__(self, m: dict):
        self.m = m

    @classmethod
    def empty(cls) -> "PersistentKv":
        return cls({})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PersistentKv) and self.m == other.m

    def _lookup(self, ck: bytes):
        return self.m.get(ck)

    def _put(self, ck: bytes, value: Any) -> "PersistentKv":
        m = dict(self.m)
        m[ck] = (canonical(value), value)
        return PersistentKv(m)


class LwwKv(_KvMap):
    """lww-kv's replica: a Lamport clock and canonical key -> (ts, canonical value, value)."""

    __slots__ = ("clock", "m")
    create_if_not_exists = False
    from_text = staticmethod(clj_str)

    def __init__(self, clock: int, m: dict):
        self.clock = clock
        self.m = m

    @classmethod
    def empty(cls) -> "LwwKv":
        return cls(0, {})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LwwKv) and self.clock == other.clock and self.m == other.m

    def _lookup(self, ck: bytes):
        entry = self.m.get(ck)
        return None if entry is None else entry[1:]

    def _put(self, ck: bytes, value: Any) -> "LwwKv":
        m = dict(self.m)
        m[ck] = (self.clock, canonical(value), value)
        return LwwKv(self.clock + 1, m)


class PersistentTso:
    """The next timestamp to hand out."""

    __slots__ = ("ts",)

    def __init__(self, ts: int):
        self.ts = ts

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PersistentTso) and self.ts == other.ts

    def handle(self, body: dict) -> tuple["PersistentTso", dict]:
        t = _request_type(body)
        if t == "ts":
            return PersistentTso(self.ts + 1), {"type": "ts_ok", "ts": self.ts}
        raise UnhandledRequest(f"no case for request type {t!r}")
