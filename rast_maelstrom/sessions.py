"""Client sessions: the part of the replicated state that makes a write or cas take effect once.

Owns: per client (the request's `src`), the results of its most recent applied requests, keyed by
`msg_id` (Raft dissertation §6.3). The state machine consults it at apply time, so two copies of a
request in the log (a client's retry, a network duplicate, a follower's retried forward) take
effect once, and the later copy is answered with the first one's result. A copy is the same
command (its CRC-32 is kept beside the result): a client that reuses a `msg_id` for another request
(message ids need only be unique per sender, so it breaks the protocol) gets that request applied.

Bounds, decided by the log alone (every replica evicts at the same log index):
- a client keeps the results of at least its last `WINDOW_MAX` applied requests (in apply order;
  the oldest `WINDOW_SLACK` go at once when there are `WINDOW_MAX + WINDOW_SLACK`); evicting raises
  the client's `floor` to the highest `msg_id` evicted, and a later request of that
  client at or below its floor is never applied (its fate is unknown: it may be an old duplicate),
  `EVICTED` (answered 13, indefinite);
- at most `CLIENTS_MAX` clients keep a session; beyond that the client whose last applied request
  is oldest (least recently used, by log index) loses its session, floor included.
So a duplicate is applied once as long as its client has a session; a client with up to
`WINDOW_MAX` requests in flight at once is served normally whatever order they arrive in.

Invariants: deterministic (same applies, same table, same encoding); no IO, no clock.
Results are stored as one int: the command's CRC-32 << 8 | a code, `OK` (0) or the Maelstrom error
code (< 256) the request got.
May not touch: the key-value map, Raft, IO.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from itertools import islice
from typing import Any, Iterator

import orjson

crc32 = zlib.crc32  # what tells two commands under one msg_id apart

WINDOW_MAX = 128  # results kept per client: its last 128 applied requests (at least)
WINDOW_SLACK = 32  # ... evicted 32 at a time once there are WINDOW_MAX + WINDOW_SLACK
EVICT_PAST = WINDOW_MAX + WINDOW_SLACK  # a window this full evicts (`Session.add`, `kv.KVStore.apply`)
CLIENTS_MAX = 4096  # sessions kept; beyond it the least recently active client's is dropped
OK = 0
EVICTED = -1  # `check`: below the client's floor; applying it again could apply it twice

# Test-only planted bug: the state machine ignores sessions (the simulator and the runner catch it).
BUG_NO_DEDUP = "no-dedup"
BUGS = frozenset({BUG_NO_DEDUP})


class Session:
    __slots__ = ("floor", "results")

    def __init__(self, floor: int | None = None) -> None:
        self.floor = floor  # the highest msg_id evicted from `results` (None: none yet)
        # msg_id -> CRC-32 << 8 | result code, oldest applied first (a plain dict: a third smaller
        # than an OrderedDict, and evicting its first key is as fast while the window is small)
        self.results: dict[int, int] = {}

    def prior(self, msg_id: int, crc: int) -> int | None:
        """As `SessionTable.check`, for this client and a command of CRC-32 `crc`."""
        v = self.results.get(msg_id)
        if v is not None:
            return v & 0xFF if v >> 8 == crc else None  # (another command under a reused msg_id)
        if self.floor is not None and msg_id <= self.floor:
            return EVICTED
        return None

    def copy(self) -> "Session":
        c = Session(self.floor)
        c.results = self.results.copy()
        return c

    def add(self, msg_id: int, crc: int, code: int) -> None:
        """A new request was applied with result `code` (a reused msg_id keeps its place); past
        WINDOW_MAX + WINDOW_SLACK the oldest WINDOW_SLACK are evicted, here."""
        results = self.results
        results[msg_id] = crc << 8 | code
        if len(results) > EVICT_PAST:
            self.evict()

    def evict(self) -> None:
        """The window is over `EVICT_PAST`: its oldest `WINDOW_SLACK` go, and the floor rises."""
        results = self.results
        old = list(islice(results, WINDOW_SLACK))
        for m in old:
            del results[m]
        top = max(old)
        if self.floor is None or top > self.floor:
            self.floor = top


class SessionTable:
    __slots__ = ("clients", "frozen")

    def __init__(self) -> None:
        self.clients: OrderedDict[str, Session] = OrderedDict()  # least recently applied first
        # While a snapshot serializes the table as it was (`freeze`): src -> its Session then, in
        # LRU order. A session still shared with it is copied before it changes (copy on write).
        self.frozen: dict[str, Session] | None = None

    def check(self, src: str, msg_id: int, command: bytes) -> int | None:
        """The stored result code of this request if it was applied, `EVICTED` if it is at or
        below its client's floor, None for a new request."""
        s = self.clients.get(src)
        return None if s is None else s.prior(msg_id, zlib.crc32(command))

    def touch(self, src: str) -> Session:
        """The client's session, now the most recently used (created, evicting the least recently
        used one beyond `CLIENTS_MAX`, if it had none). Called for every applied client request."""
        clients = self.clients
        s = clients.get(src)
        if s is None:
            if len(clients) >= CLIENTS_MAX:
                clients.popitem(last=False)
            s = clients[src] = Session()
        else:
            clients.move_to_end(src)
            if self.frozen is not None and self.frozen.get(src) is s:
                s = clients[src] = s.copy()
        return s

    def record(self, src: str, msg_id: int, command: bytes, code: int) -> None:
        """A new request was applied with result `code`; evict what the bounds say, here."""
        self.touch(src).add(msg_id, zlib.crc32(command), code)

    def decided(self, src: str, msg_id: int) -> bool:
        """Will a copy of any request of this identity never be applied again (one was applied, or
        it is below the floor)?"""
        s = self.clients.get(src)
        return s is not None and (msg_id in s.results or (s.floor is not None and msg_id <= s.floor))

    def __len__(self) -> int:
        return len(self.clients)

    # ------------------------------------------------------------------ snapshots

    def to_snapshot(self) -> bytes:
        """Deterministic JSON: the bounds and every session in LRU order, results in apply order."""
        return b"".join(snapshot_parts(self.clients, 1 << 62))

    def freeze(self) -> dict[str, Session]:
        """Start a snapshot of the table as it is: returns it (src -> Session, LRU order), which
        stays as it is (sessions are copied before they change) until `thaw`."""
        assert self.frozen is None, "one frozen table at a time"
        self.frozen = dict(self.clients)
        return self.frozen

    def thaw(self) -> None:
        self.frozen = None

    @classmethod
    def from_snapshot(cls, data: bytes) -> "SessionTable":
        """The table `to_snapshot` encoded. Bounds smaller than the snapshot's evict at once, in
        the same order on every replica."""
        doc: Any = orjson.loads(data)
        table = cls()
        clients = table.clients
        for src, floor, results in doc["clients"]:
            session = clients[src] = Session(floor)
            for msg_id, crc, code in results:
                session.add(msg_id, crc, code)
        while len(clients) > CLIENTS_MAX:
            clients.popitem(last=False)
        return table


_SNAPSHOT_HEAD = orjson.dumps({"window_max": WINDOW_MAX, "window_slack": WINDOW_SLACK,
                               "clients_max": CLIENTS_MAX})[:-1] + b',"clients":['


def snapshot_parts(clients: dict[str, Session], results_max: int) -> Iterator[bytes]:
    """`SessionTable.to_snapshot`'s bytes in parts of about `results_max` results each (whole
    sessions; a session holds at most WINDOW_MAX + WINDOW_SLACK). `clients` must not change
    meanwhile (a frozen table)."""
    dumps = orjson.dumps
    part: list[bytes] = []
    n = 0
    sep = b""
    for src, s in clients.items():
        part.append(dumps([src, s.floor, [[m, v >> 8, v & 0xFF] for m, v in s.results.items()]]))
        n += len(s.results) + 1
        if n >= results_max:
            yield (_SNAPSHOT_HEAD if not sep else sep) + b",".join(part)
            part, n, sep = [], 0, b","
    if part or not sep:
        yield (_SNAPSHOT_HEAD if not sep else sep) + b",".join(part) + b"]}"
    else:
        yield b"]}"
