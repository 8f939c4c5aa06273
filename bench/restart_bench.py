#!/usr/bin/env python3
"""Does restart time grow with history? (A program that prints figures.)

One bin/rast node (a 1-node cluster) on a pipe with --data-dir takes --writes acknowledged writes
over --keys keys, pipelined --window at a time; it is then killed (SIGKILL) and restarted on the
same directory, and the time from process start to `init_ok` is measured (--restarts times, the
best and worst reported), with snapshots on (the defaults) and with --no-snapshots, side by side.
Also prints the data directory's size and files, and the node's own "storage recovered in N ms".

    .venv/bin/python bench/restart_bench.py [--writes 1000000] [--keys 1000]

Builds side by side: `--rast A --rast B` (each a bin/rast); each writes its own history (its own
files and their layout), then they restart in turn, interleaved (the same load for each). `--together 3` also
restarts three nodes at once (each on its own copy of the data directory), as after the nemesis
killed all three, `--busy K` with K processes spinning on the CPU meanwhile (a loaded machine).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
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
BUSY_S_MAX = 600.0  # bound on each --busy process (also stopped by PID when the restarts end)


def _spawn(rast: str, data: str, extra: list[str], log_path: Path) -> tuple[subprocess.Popen, float]:
    t0 = time.monotonic()
    p = subprocess.Popen([rast, "--data-dir", data, "--log-level", "INFO", *extra], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=open(log_path, "ab"))
    p.stdin.write(INIT)
    p.stdin.flush()
    return p, t0


def _init_ok(p: subprocess.Popen, t0: float) -> float:
    line = p.stdout.readline()
    assert b"init_ok" in line, line
    return time.monotonic() - t0


def _start(data: str, extra: list[str], log_path: Path, rast: str = RAST) -> tuple[subprocess.Popen, float]:
    p, t0 = _spawn(rast, data, extra, log_path)
    return p, _init_ok(p, t0)


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


def _kill(p: subprocess.Popen) -> float:
    """SIGKILL it and reap it; returns the CPU seconds it used (its start, as it is killed right
    after init_ok: a figure the machine's load changes far less than the wall time)."""
    p.send_signal(signal.SIGKILL)
    _, _, usage = os.wait4(p.pid, 0)
    p.returncode = -9
    return usage.ru_utime + usage.ru_stime


def _busy(k: int, seconds: float) -> list[subprocess.Popen]:
    """K processes spinning on the CPU for at most `seconds` (a loaded machine); stopped by PID."""
    spin = f"import time\nt = time.monotonic() + {seconds}\nwhile time.monotonic() < t: pass"
    return [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(k)]


def run(label: str, extra: list[str], a: argparse.Namespace, tmp: Path) -> None:
    datas = []
    for k, rast in enumerate(a.rast):  # each build writes its own history (its files, its layout)
        data = str(tmp / f"{label}-{k}")
        datas.append(data)
        p, _ = _start(data, extra, tmp / f"{label}-{k}.log", rast)
        rate = _load(p, a.writes, a.keys, a.window)
        _kill(p)
        node_dir = Path(data) / "n0"
        files = sorted(f.name for f in node_dir.iterdir())
        size = sum(f.stat().st_size for f in node_dir.iterdir()) / 1e6
        print(f"{label}: {a.writes} writes at {rate:,.0f}/s by {rast}; data dir {size:.1f} MB {files}",
              flush=True)
    times: dict[str, list[float]] = {r: [] for r in a.rast}
    cpus: dict[str, list[float]] = {r: [] for r in a.rast}
    for _ in range(a.restarts):
        for k, rast in enumerate(a.rast):  # interleaved: the same load for each build
            p, dt = _start(datas[k], extra, tmp / f"{label}-{k}.log", rast)
            times[rast].append(dt)
            cpus[rast].append(_kill(p))
    together: dict[str, list[float]] = {r: [] for r in a.rast}
    if a.together > 1:
        copies = [[str(tmp / f"{label}-{k}-copy{i}") for i in range(a.together)] for k in range(len(a.rast))]
        for k, cs in enumerate(copies):
            for c in cs:
                shutil.copytree(datas[k], c)
                (Path(c) / "n0" / "LOCK").unlink(missing_ok=True)
        busy = _busy(a.busy, BUSY_S_MAX) if a.busy else []
        try:
            time.sleep(0.5 if busy else 0)
            for _ in range(a.restarts):
                for k, rast in enumerate(a.rast):
                    started = [_spawn(rast, c, extra, tmp / f"{label}-{k}-together.log") for c in copies[k]]
                    together[rast].extend(_init_ok(p, t0) for p, t0 in started)
                    for p, _ in started:
                        cpus[rast].append(_kill(p))
        finally:
            for b in busy:
                b.kill()
                b.wait()
    for k, rast in enumerate(a.rast):
        ts = sorted(times[rast])
        rec = [int(x) for x in re.findall(r"storage recovered in (\d+) ms",
                                          (tmp / f"{label}-{k}.log").read_text())]
        rec = rec[-a.restarts:]  # (not the first start, on an empty directory)
        cs = sorted(cpus[rast])
        line = (f"  {rast}: restart to init_ok best {ts[0] * 1000:.0f} ms, median "
                f"{ts[len(ts) // 2] * 1000:.0f} ms, worst {ts[-1] * 1000:.0f} ms; CPU per start median "
                f"{cs[len(cs) // 2] * 1000:.0f} ms (max {cs[-1] * 1000:.0f}); recovery inside the node "
                f"{min(rec)}-{max(rec)} ms")
        if together[rast]:
            tt = sorted(together[rast])
            line += (f"; {a.together} at once (busy {a.busy}): median {tt[len(tt) // 2] * 1000:.0f} ms, "
                     f"worst {tt[-1] * 1000:.0f} ms")
        print(line, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writes", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--window", type=int, default=200, help="writes in flight (small: no pipe deadlock)")
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--rast", action="append", help="a bin/rast to restart (repeat to compare builds)")
    ap.add_argument("--together", type=int, default=1, help="also restart this many nodes at once")
    ap.add_argument("--busy", type=int, default=0, help="CPU-spinning processes during --together")
    ap.add_argument("--no-snapshots-run", action="store_true", help="also the --no-snapshots history")
    a = ap.parse_args()
    a.rast = a.rast or [RAST]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # (the busy processes are stopped on the way)
    with tempfile.TemporaryDirectory(prefix="rast-restart-") as d:
        for rast in a.rast:
            t0 = time.monotonic()
            subprocess.run([rast, "--version"], capture_output=True)
            print(f"interpreter start alone ({rast} --version): {(time.monotonic() - t0) * 1000:.0f} ms")
        run("snapshots", [], a, Path(d))
        if a.no_snapshots_run:
            run("no-snapshots", ["--no-snapshots"], a, Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
