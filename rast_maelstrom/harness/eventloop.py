"""The runner's single event loop: a selector for pipes plus a timer heap.

Owns: waiting for readable/writable file descriptors and firing timers in deadline order. Everything
the runner does at run time (routing messages, client state machines, the nemesis, progress output)
happens in callbacks of this one loop, on one thread.

Invariants:
- Time is `time.monotonic_ns()`; `now_ns()` is the only clock the loop's users should read.
- A timer fires at most once, never before its deadline, and in (deadline, creation order) order.
- Cancelled timers are deleted lazily: `Timer.cancel()` only marks the entry.
- Each pass fires only the timers that were due when the pass began, so a callback that schedules
  a zero-delay timer cannot starve IO; a pass fires at most `timers_per_pass_max` timers.

May not touch: processes, the network or the history; it knows nothing about Maelstrom.
"""
from __future__ import annotations

import heapq
import itertools
import selectors
import time
from typing import Callable

timers_per_pass_max = 100_000
select_timeout_max_s = 0.5


class Timer:
    """A handle to a scheduled callback; `cancel()` makes it a no-op."""

    __slots__ = ("deadline_ns", "callback", "args")

    def __init__(self, deadline_ns: int, callback: Callable, args: tuple):
        self.deadline_ns = deadline_ns
        self.callback: Callable | None = callback
        self.args = args

    def cancel(self) -> None:
        self.callback = None

    @property
    def active(self) -> bool:
        return self.callback is not None


class Loop:
    """A selector plus a timer heap. Readers/writers are callbacks taking no arguments."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._timers: list[tuple[int, int, Timer]] = []
        self._seq = itertools.count()
        self._after_pass: list[Callable[[], None]] = []

    # -- clock and timers -------------------------------------------------------------------------
    now_ns = staticmethod(time.monotonic_ns)   # the clock (a builtin: no Python frame per call)

    def call_at(self, deadline_ns: int, callback: Callable, *args) -> Timer:
        timer = Timer(deadline_ns, callback, args)
        heapq.heappush(self._timers, (deadline_ns, next(self._seq), timer))
        return timer

    def call_later(self, delay_ns: int, callback: Callable, *args) -> Timer:
        return self.call_at(time.monotonic_ns() + delay_ns, callback, *args)

    def add_after_pass(self, callback: Callable[[], None]) -> None:
        """Run `callback` at the end of every loop pass (e.g. to flush output buffers in one go)."""
        self._after_pass.append(callback)

    def remove_after_pass(self, callback: Callable[[], None]) -> None:
        if callback in self._after_pass:
            self._after_pass.remove(callback)

    # -- file descriptors -------------------------------------------------------------------------
    def set_fd(self, fd: int, reader: Callable | None, writer: Callable | None) -> None:
        """Install (or replace, or with both None remove) the callbacks for `fd`."""
        events = (selectors.EVENT_READ if reader else 0) | (selectors.EVENT_WRITE if writer else 0)
        try:
            key = self.selector.get_key(fd)
        except KeyError:
            key = None
        if events == 0:
            if key is not None:
                self.selector.unregister(fd)
            return
        if key is None:
            self.selector.register(fd, events, (reader, writer))
        else:
            self.selector.modify(fd, events, (reader, writer))

    # -- running ----------------------------------------------------------------------------------
    def run_once(self, max_wait_ns: int) -> None:
        """One pass: wait for IO or the next timer (at most `max_wait_ns`), then run what is due."""
        now = time.monotonic_ns()
        timers = self._timers
        while timers and timers[0][2].callback is None:
            heapq.heappop(timers)
        wait_ns = max_wait_ns
        if timers:
            wait_ns = min(wait_ns, timers[0][0] - now)
        wait_s = min(max(wait_ns, 0) / 1e9, select_timeout_max_s)
        if self.selector.get_map():
            events = self.selector.select(wait_s)
        else:
            time.sleep(wait_s)
            events = ()
        for key, mask in events:
            reader, writer = key.data
            if mask & selectors.EVENT_READ and reader is not None:
                reader()
            if mask & selectors.EVENT_WRITE and writer is not None:
                # The reader may have replaced the callbacks; re-read them.
                try:
                    current = self.selector.get_key(key.fd).data[1]
                except KeyError:
                    current = None
                if current is not None:
                    current()
        now = time.monotonic_ns()
        fired = 0
        while timers and timers[0][0] <= now and fired < timers_per_pass_max:
            _, _, timer = heapq.heappop(timers)
            callback = timer.callback
            if callback is None:
                continue
            timer.callback = None
            fired += 1
            callback(*timer.args)
        for callback in self._after_pass:
            callback()

    def run_until(self, done: Callable[[], bool], deadline_ns: int | None = None,
                  passes_max: int = 10**12) -> bool:
        """Run passes until `done()` is true (returns True) or `deadline_ns` passes (returns False)."""
        passes = 0
        while not done():
            now = time.monotonic_ns()
            if deadline_ns is not None and now >= deadline_ns:
                return False
            assert passes < passes_max, "event loop exceeded its pass bound"
            passes += 1
            wait_ns = (deadline_ns - now) if deadline_ns is not None else 10**9
            self.run_once(wait_ns)
        return True

    def close(self) -> None:
        self.selector.close()
