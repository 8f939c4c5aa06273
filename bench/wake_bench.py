"""Wake pipe or eventfd for the WAL thread's "batch durable" signal? (A program that prints figures.)

The WAL writer thread tells the loop that a batch is durable by writing a byte to a pipe the loop
polls (runtime/wal.py, `_wake` and `drain_wake`). Issue 12 asked whether an eventfd would be
cheaper. This measures one wake both ways, as the node does it: a second thread writes the signal
when told to, the loop waits in epoll, then drains. It reports the loop thread's CPU per wake (its
own clock: what a wake costs the loop) and the wall time of each round trip, alternating the two
kinds for --rounds rounds.

    .venv/bin/python bench/wake_bench.py [--wakes 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import select
import threading
import time


def _signal(kind: str):
    """(fd the loop polls, wake(), drain(), close())."""
    if kind == "pipe":
        r, w = os.pipe()
        os.set_blocking(r, False)

        def drain() -> None:
            while len(os.read(r, 4096)) >= 4096:
                pass
        return r, lambda: os.write(w, b"\x01"), drain, lambda: (os.close(r), os.close(w))
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    return fd, lambda: os.eventfd_write(fd, 1), lambda: os.eventfd_read(fd), lambda: os.close(fd)


def one_round(kind: str, wakes: int) -> tuple[float, float]:
    """Loop CPU per wake and wall time per round trip, in µs."""
    fd, wake, drain, close = _signal(kind)
    ep = select.epoll()
    ep.register(fd, select.EPOLLIN)
    go = threading.Semaphore(0)

    def writer() -> None:
        for _ in range(wakes):
            go.acquire()
            wake()
    th = threading.Thread(target=writer)
    th.start()
    c0, t0 = time.thread_time(), time.perf_counter()
    for _ in range(wakes):
        go.release()
        while not ep.poll(1.0):
            pass
        drain()
    cpu, wall = time.thread_time() - c0, time.perf_counter() - t0
    th.join()
    ep.close()
    close()
    return cpu / wakes * 1e6, wall / wakes * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--wakes", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    got: dict[str, list[tuple[float, float]]] = {"pipe": [], "eventfd": []}
    for _ in range(a.rounds):
        for kind in got:
            got[kind].append(one_round(kind, a.wakes))
    for kind, rounds in got.items():
        print(f"{kind:8} loop CPU per wake (µs): {' '.join(f'{c:.1f}' for c, _ in rounds)}   "
              f"round trip (µs): {' '.join(f'{w:.1f}' for _, w in rounds)}")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
