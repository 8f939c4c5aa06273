"""A small select-based event loop: readers on file descriptors, a timer heap, and one end-of-pass hook.

Owns: waiting for IO and time. Each pass (the trio shape): compute the timeout from the earliest
timer, wait for readable fds, run the callbacks of the fds that were ready when the wait returned,
fire the timers that have expired, then call `on_pass_end` once — the place where the node turns
everything the pass produced into one batch of output (one stdout write, one WAL submission).

Invariants: callbacks never block; a timer cancelled before it fires never runs (lazy deletion in the
heap); the loop never spins: with nothing ready it sleeps until the next deadline.

May not touch: Raft, the wire format, stdin/stdout contents. Raft-agnostic.
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import time
from typing import Callable

Callback = Callable[[], None]


class Timer:
    __slots__ = ("deadline", "callback", "cancelled")

    def __init__(self, deadline: float, callback: Callback) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class EventLoop:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._running = False
        self.on_pass_end: Callback | None = None
        self.passes = 0

    def add_reader(self, fd: int, callback: Callback) -> None:
        self._selector.register(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def call_at(self, deadline: float, callback: Callback) -> Timer:
        timer = Timer(deadline, callback)
        heapq.heappush(self._timers, (deadline, next(self._seq), timer))
        return timer

    def call_later(self, delay_s: float, callback: Callback) -> Timer:
        return self.call_at(self.clock() + delay_s, callback)

    def stop(self) -> None:
        self._running = False

    def run(self) -> None:
        self._running = True
        timers = self._timers
        select = self._selector.select
        while self._running:
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            if timers:
                timeout = max(0.0, timers[0][0] - self.clock())
            else:
                timeout = None
            for key, _ in select(timeout):
                key.data()
                if not self._running:
                    break
            now = self.clock()
            while timers and timers[0][0] <= now:
                _, _, timer = heapq.heappop(timers)
                if not timer.cancelled:
                    timer.callback()
            self.passes += 1
            if self.on_pass_end is not None:
                self.on_pass_end()

    def close(self) -> None:
        self._selector.close()
