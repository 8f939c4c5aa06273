#!/usr/bin/env python3
"""Soak: does anything grow with history? (A program that prints figures; `make soak`.)

Runs the runner (bin/maelstrom-py) against 3 bin/rast nodes with --data-dir, a saturation load
(--clients clients with no rate limit to speak of) and kill, pause and partition faults for
--minutes, and once a minute samples every node's resident memory (VmRSS of the pid its data
directory's LOCK names) and the size of its data directory. At the end it reads the run's
verdict, the final reads (no acknowledged write lost), the snapshots each node took and
installed (its log), the slowest restart (the runner's "answered init after its restart in N ms")
and the saturation throughput (ok ops per second of the history).

    .venv/bin/python bench/soak.py                      # 10 minutes, snapshots on (defaults)
    .venv/bin/python bench/soak.py --no-snapshots       # the same run without snapshots
    .venv/bin/python bench/soak.py --minutes 2 --json out.json

Bounds: the runner's own time limit plus --grace-s; every process is the runner's child and the
runner stops its nodes; the runner itself is stopped by PID if it overruns.
May not touch: the harness or the node (it reads their files and /proc only).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNNER = str(ROOT / "bin" / "maelstrom-py")
RAST = str(ROOT / "bin" / "rast")
SAMPLE_S = 60.0
SAMPLES_MAX = 120


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _sample(data: Path) -> dict:
    out = {}
    if not data.is_dir():
        return out
    for node_dir in sorted(data.iterdir()):
        size = sum(p.stat().st_size for p in node_dir.iterdir() if p.is_file())
        rss = None
        try:
            pid = int((node_dir / "LOCK").read_text().strip() or 0)
            rss = _rss_mb(pid) if pid else None
        except (OSError, ValueError):
            pass
        out[node_dir.name] = {"rss_mb": rss, "disk_mb": size / 1e6,
                              "files": len([p for p in node_dir.iterdir() if p.is_file()])}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=30)
    p.add_argument("--rate", type=float, default=100_000.0, help="runner --rate (saturation: high)")
    p.add_argument("--nemesis-interval", type=float, default=10.0)
    p.add_argument("--no-snapshots", action="store_true")
    p.add_argument("--seed", type=int, default=1,
                   help="the runner's seed: the same fault schedule for runs to compare")
    p.add_argument("--node-arg", action="append", default=[], help="extra bin/rast flag (repeatable)")
    p.add_argument("--store", help="keep the run here (default: a temp dir, kept and printed)")
    p.add_argument("--grace-s", type=float, default=900.0,
                   help="past the time limit (recovery, final reads, the check) before a kill")
    p.add_argument("--json", help="write the figures here too")
    a = p.parse_args()

    store = Path(a.store or tempfile.mkdtemp(prefix="rast-soak-"))
    store.mkdir(parents=True, exist_ok=True)
    seconds = int(a.minutes * 60)
    node_args = ["--data-dir", "{store}/data", "--log-level", "INFO", *a.node_arg]
    if a.no_snapshots:
        node_args.append("--no-snapshots")
    cmd = [RUNNER, "test", "-w", "lin-kv", "--bin", RAST, "--node-count", "3",
           "--concurrency", str(a.clients), "--rate", str(a.rate), "--time-limit", str(seconds),
           "--nemesis", "kill,pause,partition", "--nemesis-interval", str(a.nemesis_interval),
           "--recovery-s", "5", "--seed", str(a.seed), "--store", str(store), "--", *node_args]
    print("soak:", " ".join(cmd), flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=open(store / "runner.out", "wb"), stderr=subprocess.STDOUT)
    samples = []
    data = None
    for k in range(1, SAMPLES_MAX + 1):
        while time.monotonic() - t0 < k * SAMPLE_S:
            if proc.poll() is not None:
                break
            time.sleep(1.0)
        if proc.poll() is not None or time.monotonic() - t0 > seconds + a.grace_s:
            break
        if data is None:
            runs = sorted((store / "lin-kv").glob("2*"))
            data = runs[-1] / "data" if runs else None
        if data is not None and k * SAMPLE_S <= seconds + 1:
            s = _sample(data)
            samples.append({"minute": k, "nodes": s})
            print(f"minute {k}: " + "  ".join(
                f"{n} rss {v['rss_mb'] or 0:.0f} MB disk {v['disk_mb']:.1f} MB ({v['files']} files)"
                for n, v in s.items()), flush=True)
    try:
        proc.wait(timeout=max(1.0, seconds + a.grace_s - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    run_dir = (store / "lin-kv" / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").exists() else {}
    final = json.loads((run_dir / "final-reads.json").read_text()) if (run_dir / "final-reads.json").exists() else {}
    logs = {q.stem: q.read_text(errors="replace") for q in (run_dir / "node-logs").glob("n*.log")}
    taken = {n: len(re.findall(r"snapshot through \d+ taken", t)) for n, t in logs.items()}
    installed = {n: len(re.findall(r"installed the snapshot through", t)) for n, t in logs.items()}
    jlog = (run_dir / "jepsen.log").read_text(errors="replace") if (run_dir / "jepsen.log").exists() else ""
    restarts = [float(x) for x in re.findall(r"answered init after its restart in (\d+) ms", jlog)]
    recoveries = [float(x) for t in logs.values() for x in re.findall(r"storage recovered in (\d+) ms", t)]
    ok = writes = 0
    hist = run_dir / "history.jsonl"
    if hist.exists():
        for line in hist.open():
            op = json.loads(line)
            if op.get("type") == "ok" and op.get("process") != "nemesis":
                ok += 1
                writes += op.get("f") in ("write", "cas")
    fig = {
        "snapshots": not a.no_snapshots, "minutes": a.minutes, "clients": a.clients,
        "valid": results.get("valid?"), "runner_exit": proc.returncode,
        "final_reads": {k: final.get(k) for k in ("planned", "answered", "ok", "lost")},
        "ok_ops_per_s": ok / seconds if seconds else 0.0, "ok_writes": writes,
        "snapshots_taken": taken, "snapshots_installed": installed,
        "restarts": len(restarts), "slowest_restart_ms": max(restarts, default=None),
        "slowest_recovery_ms": max(recoveries, default=None),  # (inside the node: snapshot + WAL)
        "samples": samples, "store": str(run_dir),
    }
    print(json.dumps({k: v for k, v in fig.items() if k != "samples"}, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(fig, indent=1))
    return 0 if fig["valid"] is True else 1


if __name__ == "__main__":
    sys.exit(main())
