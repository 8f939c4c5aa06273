#!/usr/bin/env python3
"""Does restart time grow with history? (A program that prints figures.)

One bin/rast node (a 1-node cluster) on a pipe with --data-dir takes --writes acknowledged writes
over --keys keys, pipelined --window at a time; it is then killed (SIGKILL) and restarted on the
same directory, and the time from process start to `init_ok` is measured (--restarts times, the
best and worst reported), with snapshots on (the defaults) and with --no-snapshots, side by side.
Also prints the data directory's size and files, and the node's own "storage recovered in N ms".

    .venv/bin/python bench/restart_bench.py [--writes 1000000] [--keys 1000]
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
RAST = str(ROOT / "bin" / "rast")
INIT = orjson.dumps({"src": "c0", "dest": "n0", "body": {"type": "init", "msg_id": 0, "node_id": "n0",
                                                          "node_ids": ["n0"]}}) + b"\n"
PHASE_S_MAX = 1800.0  # bound on the write phase


def _start(data: str, extra: list[str], log_path: Path) -> tuple[subprocess.Popen, float]:
    t0 = time.monotonic()
    p = subprocess.Popen([RAST, "--data-dir", data, "--log-level", "INFO", *extra], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=open(log_path, "ab"))
    p.stdin.write(INIT)
    p.stdin.flush()
    line = p.stdout.readline()
    assert b"init_ok" in line, line
    return p, time.monotonic() - t0


def _load(p: subprocess.Popen, writes: int, keys: int, window: int) -> float:
    out = p.stdout.fileno()
    os.set_blocking(out, False)
    sent = replied = acked = 0  # (a reply before the node elected itself is an error: sent again)
    buf = b""
    t0 = time.monotonic()
    while acked < writes:
        assert time.monotonic() - t0 < PHASE_S_MAX, f"only {acked} writes in {PHASE_S_MAX} s"
        if sent - replied < window:
            n = min(window - (sent - replied), writes - acked)
            p.stdin.write(b"".join(
                b'{"src":"c1","dest":"n0","body":{"type":"write","msg_id":%d,"key":%d,"value":%d}}\n'
                % (i, i % keys, i) for i in range(sent, sent + n)))
            p.stdin.flush()
            sent += n
        select.select([out], [], [], 1.0)
        try:
            chunk = os.read(out, 1 << 20)
        except BlockingIOError:
            continue
        assert chunk, "the node exited"
        *lines, buf = (buf + chunk).split(b"\n")
        replied += len(lines)
        acked += sum(1 for ln in lines if b'"write_ok"' in ln)
    os.set_blocking(out, True)
    return writes / (time.monotonic() - t0)


def run(label: str, extra: list[str], a: argparse.Namespace, tmp: Path) -> None:
    data = str(tmp / label)
    log_path = tmp / f"{label}.log"
    p, _ = _start(data, extra, log_path)
    rate = _load(p, a.writes, a.keys, a.window)
    p.send_signal(signal.SIGKILL)
    p.wait()
    times = []
    for _ in range(a.restarts):
        p, dt = _start(data, extra, log_path)
        times.append(dt)
        p.send_signal(signal.SIGKILL)
        p.wait()
    node_dir = Path(data) / "n0"
    files = sorted(f.name for f in node_dir.iterdir())
    size = sum(f.stat().st_size for f in node_dir.iterdir()) / 1e6
    rec = [int(x) for x in re.findall(r"storage recovered in (\d+) ms", log_path.read_text())]
    print(f"{label:<13} {a.writes} writes at {rate:,.0f}/s; restart to init_ok best {min(times) * 1000:.0f} ms, "
          f"worst {max(times) * 1000:.0f} ms; recovery inside the node {min(rec[-a.restarts:])}-"
          f"{max(rec[-a.restarts:])} ms; data dir {size:.1f} MB {files}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--window", type=int, default=200, help="writes in flight (small: no pipe deadlock)")
    ap.add_argument("--restarts", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rast-restart-") as d:
        t0 = time.monotonic()
        p = subprocess.run([RAST, "--version"], capture_output=True)
        print(f"interpreter start alone (bin/rast --version): {(time.monotonic() - t0) * 1000:.0f} ms")
        run("snapshots", [], a, Path(d))
        run("no-snapshots", ["--no-snapshots"], a, Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
