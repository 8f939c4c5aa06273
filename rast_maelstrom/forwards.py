"""Retrying forwards: the writes and cas a follower passed to a leader, until they are applied.

Owns: per forwarded request (client `src`, `msg_id`), the request body as forwarded, the leader it
went to, when it was last sent, when it first arrived and how often it was sent. The node asks
`due` for what to re-send: everything sent to another leader than the one it knows now (a
leadership change), or sent more than `FORWARD_RETRY_AFTER_S` ago while nothing was applied here
meanwhile (nothing heard: a leader that is making progress has the request queued, and re-sending
it would only add load when the cluster is slow). A request is
forgotten once its session shows it decided (applied here, so the leader answered the client),
after `FORWARD_SENDS_MAX` sends, or `FORWARD_AGE_MAX_S` after it arrived (the client has given up:
the runner's and the jar's client timeout is 1 s). Re-sending is safe because the state machine
applies a request once however many copies reach the log (`sessions.py`).

Invariants: at most `FORWARDS_MAX` requests (the oldest is forgotten first); entries are kept in
the order they were last sent, so the scan for overdue ones stops at the first recent one.
May not touch: Raft, IO, the clock (times are passed in).
"""

from __future__ import annotations

from typing import Callable

FORWARDS_MAX = 100_000
FORWARD_RETRY_AFTER_S = 0.4  # re-send to the same leader when nothing was applied by then
FORWARD_AGE_MAX_S = 1.0  # a client's timeout: no point retrying after it gave up
FORWARD_SENDS_MAX = 3
FORWARD_CHECK_S = 0.1  # how often the node looks for overdue forwards while it has some


class Forwards:
    __slots__ = ("items",)

    def __init__(self) -> None:
        # (src, msg_id) -> [body bytes, leader sent to (None: not sent), last sent s, arrived s, sends]
        self.items: dict[tuple[str, int], list] = {}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, src: str, msg_id: int, body: bytes, leader: str | None, now: float,
            arrived: float | None = None) -> None:
        items = self.items
        key = (src, msg_id)
        old = items.pop(key, None)
        if old is not None:  # the client's own copy of a request we still hold: one entry
            arrived = old[3]
        elif len(items) >= FORWARDS_MAX:
            del items[next(iter(items))]
        items[key] = [body, leader, now, now if arrived is None else arrived, 1 if leader else 0]

    def discard(self, src: str, msg_id: int) -> None:
        self.items.pop((src, msg_id), None)

    def due(self, now: float, leader: str | None, leader_changed: bool,
            decided: Callable[[str, int], bool], stalled: bool = True) -> list[tuple[str, int, bytes]]:
        """(src, msg_id, body) to send to `leader` now, each marked sent; forgets what is done.
        With `leader_changed`, every request not sent to `leader`; else overdue ones, if `stalled`
        (nothing was applied since the last look)."""
        items = self.items
        overdue = now - FORWARD_RETRY_AFTER_S
        too_old = now - FORWARD_AGE_MAX_S
        resend = []
        for key, e in list(items.items()) if leader_changed else items.items():
            if e[2] > overdue and not (leader_changed and e[1] != leader):
                if leader_changed:
                    continue
                break  # kept in send order: the rest are recent
            if decided(key[0], key[1]) or e[3] <= too_old or e[4] >= FORWARD_SENDS_MAX:
                resend.append((key, None))
            elif leader is not None and (e[1] != leader or (stalled and e[2] <= overdue)):
                resend.append((key, e))
        out = []
        for key, e in resend:
            del items[key]
            if e is None:
                continue
            e[1] = leader
            e[2] = now
            e[4] += 1
            items[key] = e  # to the end: most recently sent
            out.append((key[0], key[1], e[0]))
        return out
