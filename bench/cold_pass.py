#!/usr/bin/env python3
"""What a sleep before it costs the same piece of Python: the machine's cold-wake-up factor.

Owns: one process, one thread. A fixed chunk of interpreter work (200 dict lookups and string
lengths over a 20,000-entry dict: about the memory a node's pass touches) is timed with the
thread's own CPU clock, `--chunks` times back to back, then with an epoll wait of 1 ms and of 10 ms
before each (the node's loop sleeps like that between passes at 1-2n clients). On an idle core
the three agree; on a shared one the chunk that follows a sleep pays for the caches, TLB and
branch history other processes took meanwhile. Figures, not assertions; bounded by --chunks.

    .venv/bin/python bench/cold_pass.py [--chunks 300] [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import selectors
import time

DICT_ENTRIES = 20_000
LOOKUPS = 200


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    sel = selectors.DefaultSelector()
    r, _w = os.pipe()
    sel.register(r, selectors.EVENT_READ)
    d = {i: str(i) for i in range(DICT_ENTRIES)}

    def work() -> int:
        s = 0
        for i in range(LOOKUPS):
            s += len(d[(i * 97) % DICT_ENTRIES])
        return s

    tt = time.thread_time_ns
    print(f"load average {os.getloadavg()[0]:.2f}")
    for rep in range(args.repeats):
        row = []
        for sleep_s in (0.0, 0.001, 0.01):
            total = 0
            for _ in range(args.chunks):
                if sleep_s:
                    sel.select(sleep_s)
                t0 = tt()
                work()
                total += tt() - t0
            row.append(f"{total / args.chunks / 1e3:6.1f} us after {'no sleep' if not sleep_s else f'{sleep_s * 1e3:.0f} ms'}")
        print(f"repeat {rep + 1}: the same chunk costs " + ", ".join(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
