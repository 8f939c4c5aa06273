#!/usr/bin/env python3
"""A node launcher that splits the loop thread's CPU per pass by phase and by what woke the pass.

Owns: running this checkout's node (rast_maelstrom.node.main) with `EventLoop.run` replaced by a
copy that measures, with the thread's own CPU clock (time.thread_time_ns), each pass's select()
(the epoll_wait syscall and the wake-up charged to it), its fd callbacks, its timers and its
end-of-pass flush, and counts passes by what woke them (stdin, the WAL's wake pipe, both, or a timer
alone). Every half second it rewrites $PASS_SPLIT_DIR/stats_<pid>.json with the running totals
(the benchmark SIGKILLs nodes: no exit hook would run). `--report DIR` prints per-pass figures.
The loop body is the same as runtime/loop.py's, plus the clock reads.

    d=$(mktemp -d); PASS_SPLIT_DIR=$d .venv/bin/python bench/cpu_probe.py \\
        --system "$PWD/.venv/bin/python $PWD/bench/pass_split.py" --clients 6 --no-perf
    .venv/bin/python bench/pass_split.py --report $d
May not touch: the node's code (it wraps the loop's run method only).
"""
from __future__ import annotations

import heapq
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DUMP_S = 0.5


def run(self) -> None:  # EventLoop.run, measured
    self._running = True
    timers = self._timers
    select = self._selector.select
    tt = time.thread_time_ns
    st: dict[str, int] = {"passes": 0, "select_ns": 0, "callbacks_ns": 0, "timers_ns": 0, "flush_ns": 0}
    path = Path(os.environ.get("PASS_SPLIT_DIR", "/tmp")) / f"stats_{os.getpid()}.json"
    last_dump = time.monotonic()
    while self._running:
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        timeout = max(0.0, timers[0][0] - self.clock()) if timers else None
        t1 = tt()
        ready = select(timeout)
        t2 = tt()
        for key, _ in ready:
            key.data()
            if not self._running:
                break
        t3 = tt()
        now = self.clock()
        while timers and timers[0][0] <= now:
            _, _, timer = heapq.heappop(timers)
            if not timer.cancelled:
                timer.callback()
        t4 = tt()
        self.passes += 1
        if self.on_pass_end is not None:
            self.on_pass_end()
        t5 = tt()
        kind = "+".join(sorted("stdin" if k.fd == 0 else "wake" for k, _ in ready)) or "timer only"
        st["passes"] += 1
        st["select_ns"] += t2 - t1
        st["callbacks_ns"] += t3 - t2
        st["timers_ns"] += t4 - t3
        st["flush_ns"] += t5 - t4
        st["n " + kind] = st.get("n " + kind, 0) + 1
        st["ns " + kind] = st.get("ns " + kind, 0) + (t5 - t1)
        if time.monotonic() - last_dump > DUMP_S:
            last_dump = time.monotonic()
            path.write_text(json.dumps(st))


def report(directory: str) -> None:
    for f in sorted(Path(directory).glob("stats_*.json")):
        st = json.loads(f.read_text())
        p = st["passes"] or 1
        phases = ", ".join(f"{k[:-3]} {st[k] / p / 1e3:.0f}" for k in
                           ("select_ns", "callbacks_ns", "timers_ns", "flush_ns"))
        kinds = ", ".join(f"{k[2:]}: {st[k]} ({st['ns ' + k[2:]] / st[k] / 1e3:.0f} us)"
                          for k in sorted(st) if k.startswith("n "))
        print(f"{f.stem}: {st['passes']} passes; us of loop-thread CPU per pass: {phases}; "
              f"passes by what woke them (CPU per pass): {kinds}")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--report":
        report(sys.argv[2])
        return 0
    sys.path.insert(0, str(ROOT))
    from rast_maelstrom.runtime import loop
    from rast_maelstrom import node
    loop.EventLoop.run = run
    return node.main()


if __name__ == "__main__":
    sys.exit(main())
