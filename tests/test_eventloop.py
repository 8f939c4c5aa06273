"""The runner's event loop (harness/eventloop.py) on real pipes: readiness, hang-ups, callbacks
replaced or removed during a pass, fd numbers reused, timers in deadline order."""
from __future__ import annotations

import os

from rast_maelstrom.harness.eventloop import Loop


def test_a_reader_runs_when_its_pipe_has_data_and_again_at_the_writers_hang_up():
    loop = Loop()
    r, w = os.pipe()
    got = []
    loop.set_fd(r, lambda: got.append(os.read(r, 100)), None)
    try:
        loop.run_once(10**6)
        assert got == []                      # nothing to read: the pass only waited
        os.write(w, b"hi")
        loop.run_once(10**9)
        assert got == [b"hi"]
        os.close(w)                           # the hang-up wakes the reader, which reads EOF
        loop.run_once(10**9)
        assert got == [b"hi", b""]
    finally:
        loop.set_fd(r, None, None)
        os.close(r)
        loop.close()


def test_a_writer_runs_while_its_pipe_takes_data_and_can_replace_itself():
    loop = Loop()
    r, w = os.pipe()
    calls = []

    def writer():
        calls.append("w")
        loop.set_fd(w, None, None)            # done: stop watching (no busy wake-ups)
    loop.set_fd(w, None, writer)
    try:
        loop.run_once(10**9)
        assert calls == ["w"] and loop.callbacks(w) is None
        loop.run_once(10**6)
        assert calls == ["w"]                 # removed: not called again
    finally:
        os.close(r)
        os.close(w)
        loop.close()


def test_a_callback_that_removes_another_fd_in_the_same_pass_stops_it_from_running():
    loop = Loop()
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    ran = []

    def first(fd, other):
        ran.append(fd)
        os.read(fd, 10)
        loop.set_fd(other, None, None)
    loop.set_fd(r1, lambda: first(r1, r2), None)
    loop.set_fd(r2, lambda: first(r2, r1), None)
    try:
        os.write(w1, b"x")
        os.write(w2, b"x")
        loop.run_once(10**9)                  # both ready: whichever runs first removes the other
        assert len(ran) == 1
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)
        loop.close()


def test_a_closed_fd_whose_number_comes_back_can_be_watched_again():
    loop = Loop()
    r, w = os.pipe()
    loop.set_fd(r, lambda: None, None)
    os.close(r)                               # closed without telling the loop
    os.close(w)
    r2, w2 = os.pipe()
    if r2 != r:                               # put the new pipe under the old number
        os.dup2(r2, r)
        os.close(r2)
        r2 = r
    got = []
    try:
        loop.set_fd(r2, lambda: got.append(os.read(r2, 10)), None)
        os.write(w2, b"ok")
        loop.run_once(10**9)
        assert got == [b"ok"]
    finally:
        loop.set_fd(r2, None, None)
        os.close(r2)
        os.close(w2)
        loop.close()


def test_timers_fire_in_deadline_then_creation_order_never_early_and_cancelled_ones_never():
    loop = Loop()
    fired = []
    now = loop.now_ns()

    def fire(name, deadline):
        fired.append((name, loop.now_ns() >= deadline))
    for name, ms in (("late", 2), ("early-1", 1), ("early-2", 1)):
        loop.call_at(now + ms * 1_000_000, fire, name, now + ms * 1_000_000)
    loop.call_at(now + 1_500_000, fire, "cancelled", 0).cancel()
    try:
        assert loop.run_until(lambda: len(fired) == 3, now + 10**9)
        loop.run_once(5_000_000)
        assert fired == [("early-1", True), ("early-2", True), ("late", True)]
    finally:
        loop.close()
