"""WAL benchmark: prints append+sync throughput and fsync latency on the disk under --dir.

Run:  .venv/bin/python bench/wal_bench.py [--dir PATH] [--seconds 1.0] [--entry-bytes 100]

Cases (one line each, side by side):
  * append+sync at batch sizes 1, 16, 256 entries per sync, fsync on and off: records/s, MB/s
  * WalWriter with 1-entry submits from one thread (group commit): batches/s and fsyncs/s
  * fdatasync latency p50/p99 for a 1-record append (the floor of one commit round)
A program that prints figures, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import statistics
import sys
import tempfile
import time

from rast_maelstrom.runtime.wal import WalWriter, WriteAheadLog

iterations_max = 1_000_000  # bound on every timed loop, besides its time budget


def fresh(base: str, name: str, fsync: bool) -> WriteAheadLog:
    path = os.path.join(base, name)
    shutil.rmtree(path, ignore_errors=True)
    wal = WriteAheadLog(path, fsync=fsync)
    wal.recover()
    wal.append((1, None), None, [])
    wal.sync()
    return wal


def bench_append_sync(base: str, batch: int, fsync: bool, seconds: float, payload: bytes) -> tuple[float, float]:
    wal = fresh(base, f"append-{batch}-{fsync}", fsync)
    entries = [(1, payload)] * batch
    index = 1
    start = time.perf_counter()
    deadline = start + seconds
    for _ in range(iterations_max):
        wal.append(None, index, entries)
        wal.sync()
        index += batch
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    records = index - 1
    file_bytes = wal.file_bytes
    wal.close()
    return records / elapsed, file_bytes / elapsed / 1e6


def bench_writer(base: str, seconds: float, payload: bytes) -> tuple[float, float, float]:
    wal = fresh(base, "writer", True)
    writer = WalWriter(wal, pending_batches_max=1024)
    index = 1
    start = time.perf_counter()
    deadline = start + seconds
    for _ in range(iterations_max):
        writer.submit(None, index, [(1, payload)])
        index += 1
        if select.select([writer.wake_fd], [], [], 0)[0]:
            writer.drain_wake()
        if time.perf_counter() >= deadline:
            break
    writer.close()
    elapsed = time.perf_counter() - start
    fsyncs = writer.fsync_count
    wal.close()
    return (index - 1) / elapsed, fsyncs / elapsed, (index - 1) / max(fsyncs, 1)


def bench_fsync_latency(base: str, seconds: float, payload: bytes) -> tuple[float, float, int]:
    wal = fresh(base, "latency", True)
    samples_ms = []
    index = 1
    deadline = time.perf_counter() + seconds
    for _ in range(iterations_max):
        wal.append(None, index, [(1, payload)])
        wal._flush()  # time the fdatasync alone
        t0 = time.perf_counter()
        wal.sync()
        samples_ms.append((time.perf_counter() - t0) * 1e3)
        index += 1
        if time.perf_counter() >= deadline:
            break
    wal.close()
    q = statistics.quantiles(samples_ms, n=100)
    return q[49], q[98], len(samples_ms)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir)")
    ap.add_argument("--seconds", type=float, default=1.0, help="time budget per case")
    ap.add_argument("--entry-bytes", type=int, default=100, help="bytes of data per entry")
    args = ap.parse_args(argv)
    base = tempfile.mkdtemp(prefix="wal-bench-", dir=args.dir)
    payload = b"x" * args.entry_bytes
    try:
        print(f"dir {base}, {args.entry_bytes}-byte entries, {args.seconds:.1f}s per case")
        print(f"{'case':<34}{'records/s':>12}{'MB/s':>9}")
        for fsync in (True, False):
            for batch in (1, 16, 256):
                rps, mbps = bench_append_sync(base, batch, fsync, args.seconds, payload)
                name = f"append+sync batch={batch:<3} fsync={'on' if fsync else 'off'}"
                print(f"{name:<34}{rps:>12,.0f}{mbps:>9.1f}")
        bps, fps, per = bench_writer(base, args.seconds, payload)
        print(f"WalWriter 1-entry submits: {bps:,.0f} batches/s, {fps:,.0f} fsyncs/s, {per:.1f} batches per fsync")
        p50, p99, n = bench_fsync_latency(base, args.seconds, payload)
        print(f"fdatasync latency (1-record append, n={n}): p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
