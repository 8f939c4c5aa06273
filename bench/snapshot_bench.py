"""How long does taking a snapshot stall the node's loop? (A program that prints figures.)

With N keys in the store (default 1,000,000), compares:
  in-loop      serialize the sections in the loop and write the file (what we must not do)
  thread       a writer thread serializing a shallow copy of the map (the copy is in the loop)
  slices       the node's way (state.SnapshotJob): freeze the map and the session table, later
               writes to an overlay, one bounded slice serialized per loop pass and handed to a
               writer thread (framing, writes, fsync), then the overlay folded back per pass
  fork         --snapshot-fork: os.fork, the child serializes its copy-on-write image and writes
  none         the baseline: the same loop for --baseline-s with no snapshot at all (what the
               machine's own scheduling costs a pass; on a shared 2-core machine it is not 0)

For each, the loop's worst pass while the snapshot is being taken: the loop keeps applying writes
to the store (touching pages the child shares, so copy-on-write faults are paid) in passes of
--batch writes, and the longest pass (including the call that starts the snapshot) is reported, with the 99th
percentile pass, the worst pass less the time the loop's thread waited, runnable, for a CPU
(/proc schedstat: what the machine's other work took from it; waits the method itself causes, on
the disk or the GIL, stay in), and the most CPU time the loop's thread spent in one pass (what the
method costs a pass, without the machine's preemptions: on a shared machine those dominate the
worst pass).

    .venv/bin/python bench/snapshot_bench.py [--keys 1000000] [--batch 100]
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from rast_maelstrom import kv  # noqa: E402
from rast_maelstrom.runtime.snapshot import SnapshotStore  # noqa: E402
from rast_maelstrom.state import SnapshotJob, StateMachine  # noqa: E402

PASSES_MAX = 1_000_000  # bound on loop passes per measurement


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


P99: list[float] = []  # the 99th percentile pass of each _loop_until, in order
CPU_MAX: list[float] = []  # the most CPU one pass of it took (the loop thread's own: no preemption)
OWN_MAX: list[float] = []  # its worst pass less the time it waited for a CPU (running or blocked)
_SCHEDSTAT = f"/proc/self/task/{threading.get_native_id()}/schedstat"  # (this thread's: run, runqueue ns)


def _runqueue_s() -> float:
    """How long this thread has waited, runnable, for a CPU (the machine's other work)."""
    try:
        with open(_SCHEDSTAT) as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _timed(fn):
    """fn()'s result, and its wall, CPU and own (wall less waiting for a CPU) seconds."""
    q0, t0, c0 = _runqueue_s(), time.perf_counter(), time.thread_time()
    r = fn()
    wall = time.perf_counter() - t0
    return r, wall, time.thread_time() - c0, wall - (_runqueue_s() - q0)


def _loop_until(done, store: kv.KVStore, batch: int, keys: int) -> tuple[float, int]:
    """Run 'passes' of `batch` writes until done(); return (worst pass s, passes)."""
    worst = 0.0
    n = 0
    passes = []
    k = 0
    cpu_max = own_max = 0.0
    while n < PASSES_MAX:
        q0 = _runqueue_s()
        t0 = time.perf_counter()
        c0 = time.thread_time()
        data = store.data  # (an overlay while a sliced snapshot is being taken)
        for _ in range(batch):
            data[k % keys] = b'"v%d"' % k
            k += 7919
        fin = done()
        dt = time.perf_counter() - t0
        cpu_max = max(cpu_max, time.thread_time() - c0)
        own_max = max(own_max, dt - (_runqueue_s() - q0))
        worst = max(worst, dt)
        passes.append(dt)
        n += 1
        if fin:
            break
        time.sleep(0.0005)
    passes.sort()
    P99.append(passes[min(len(passes) - 1, len(passes) * 99 // 100)])
    CPU_MAX.append(cpu_max)
    OWN_MAX.append(own_max)
    return worst, n


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=100, help="writes applied per loop pass")
    p.add_argument("--baseline-s", type=float, default=3.0, help="how long the 'none' loop runs")
    p.add_argument("--methods", default="none,fork,slices,none,thread,in-loop",
                   help="which to run, in this order (fork first: the others grow the heap it copies)")
    a = p.parse_args()
    store = kv.KVStore()
    store.data = {i: b'{"value":%d,"pad":"xxxxxxxxxxxxxxxx"}' % i for i in range(a.keys)}
    sm = StateMachine(store)
    print(f"{a.keys} keys, RSS {_rss_mb():.0f} MB")
    with tempfile.TemporaryDirectory() as d:
        ss = SnapshotStore(d)
        results = {}
        for method in a.methods.split(","):
            if method == "none":
                t_end = time.perf_counter() + a.baseline_s
                worst, n = _loop_until(lambda: time.perf_counter() >= t_end, store, a.batch, a.keys)
                name = "none" if "none" not in results else "none #2"
                results[name] = (worst, n, 0.0, P99[-1], CPU_MAX[-1], OWN_MAX[-1])
            elif method == "slices":
                for k in range(3):
                    t0 = time.perf_counter()
                    job, start_s, start_cpu, start_own = _timed(lambda: SnapshotJob(sm, ss.begin(4 + k, 1, ("n1",))))
                    state = {"passes": 0, "serialized": 0}

                    def step() -> bool:
                        state["passes"] += 1
                        more = job.step()
                        if job.serializing:
                            state["serialized"] = state["passes"]
                        return not more and bool(select.select([job.writer.fd], [], [], 0)[0])

                    worst, n = _loop_until(step, store, a.batch, a.keys)
                    snap = ss.taken()
                    results[f"slices #{k + 1}"] = (max(worst, start_s), n, time.perf_counter() - t0, P99[-1],
                                                   max(CPU_MAX[-1], start_cpu), max(OWN_MAX[-1], start_own))
                    print(f"slices #{k + 1}: freezing {start_s * 1000:.2f} ms, worst pass {worst * 1000:.1f} ms; "
                          f"{state['serialized']} passes serializing, {n} in all (folding included); "
                          f"file {snap.size / 1e6:.1f} MB; RSS {_rss_mb():.0f} MB")
            elif method == "in-loop":
                t0 = time.perf_counter()
                ss._write_file(1, 1, ("n1",), sm.sections())
                dt = time.perf_counter() - t0
                results["in-loop"] = (dt, 1, dt, dt, dt, dt)
            elif method == "thread":  # over a shallow copy (the copy itself is a pass in the loop)
                frozen = kv.KVStore()
                frozen.data, copy_s, _, copy_own = _timed(lambda: dict(store.data))
                th = threading.Thread(target=ss._write_file,
                                      args=(2, 1, ("n1",), StateMachine(frozen).sections()))
                t1 = time.perf_counter()
                th.start()
                worst, n = _loop_until(lambda: not th.is_alive(), store, a.batch, a.keys)
                results["thread"] = (max(worst, copy_s), n, time.perf_counter() - t1 + copy_s, P99[-1],
                                     max(CPU_MAX[-1], copy_s), max(OWN_MAX[-1], copy_own))
            else:
                for k in range(3):
                    t0 = time.perf_counter()
                    fd, fork_s, fork_cpu, fork_own = _timed(lambda: ss.take(3, 1, ("n1",), sm.sections))
                    worst, n = _loop_until(lambda: bool(select.select([fd], [], [], 0)[0]), store,
                                           a.batch, a.keys)
                    snap = ss.taken()
                    results[f"fork #{k + 1}"] = (max(worst, fork_s), n, time.perf_counter() - t0, P99[-1],
                                                 max(CPU_MAX[-1], fork_cpu), max(OWN_MAX[-1], fork_own))
                    print(f"fork #{k + 1}: the fork() call {fork_s * 1000:.1f} ms, worst other pass "
                          f"{worst * 1000:.1f} ms; file {snap.size / 1e6:.1f} MB; RSS {_rss_mb():.0f} MB")
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("(own: a pass's wall time less the time its thread waited, runnable, for a CPU that other work held)")
    print(f"{'method':<10} {'worst pass ms':>14} {'worst own ms':>13} {'p99 pass ms':>12} {'most CPU in a pass ms':>22} "
          f"{'passes':>8} {'snapshot s':>11}")
    for k, (worst, n, total, p99, cpu, own) in results.items():
        print(f"{k:<10} {worst * 1000:>14.1f} {own * 1000:>13.1f} {p99 * 1000:>12.1f} {cpu * 1000:>22.1f} {n:>8} "
              f"{total:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
