#!/usr/bin/env python3
"""Rast's benchmark: every system side by side in one run, through the runner's network.

Owns the benchmark's plan, its bounds and its reports. For each node count and each system it
starts one cluster (bench/driver.py: the runner's Loop + Network + NodeProcess, so clients pay the
same process hop as under Maelstrom), runs each load on fresh keys, and stops the cluster by PID:
- loads: `1` (one client, one op in flight), `2n` (lin-kv's default concurrency), `sat`
  (saturation: a sweep of client counts, reported at the one with the most ok ops/s);
- figures per cell: ok ops/s, p50/p95/p99 latency of ok ops, server messages per completed op
  (the runner network's counts; messages between PySyncObj replicas go over their own TCP and
  are not seen), node CPU-seconds per 1,000 completed ops (utime+stime of every node), peak RSS
  per node (VmHWM, since the node started), and the linearizability verdict of the cell's whole
  history (check_independent): every benchmark run must also be correct.
Outputs: the tables on stdout; for a full run (no filters) BENCHMARKS.md and
bench/results/latest.json; for --quick bench/results/quick.json; for a filtered run
bench/results/partial.json (and BENCHMARKS.md only if --report is given). The ops of the first
invalid key of each non-linearizable cell, and the node logs, are kept under the run's temp dir
(path printed) when a Rast cell was not linearizable or a cell was skipped. `--render JSON`
re-writes the report from a run's raw figures. The report ends with bench/techniques.md (the
speed work's before/after measurements, made by hand in A/B runs) and bench/snapshots.md (the
soak, restart and snapshot-pause figures of bench/soak.py, restart_bench.py, snapshot_bench.py)
and bench/runner_ceiling.md (the runner's old and new ceiling, bench/runner_ceiling.py) and
bench/checker.md (the linearizability checker's old and new search, bench/checker_bench.py) when
they exist.

Bounds: each cell runs warm-up + a fixed window (5 s full, 2 s --quick), then drains in-flight ops
(at most the client timeout); each check has a time limit; the whole run has a hard deadline
(--deadline-s) after which remaining cells are skipped and reported as skipped.
May not touch: the harness (composes its public classes), the node's code, anyone else's files.

    .venv/bin/python bench/run.py                       # full suite (~8 min)
    .venv/bin/python bench/run.py --quick               # ~2 min
    .venv/bin/python bench/run.py --only rast,null --nodes 3 --loads 1,2n
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driver import ROOT, Cluster, ClusterError, System, run_cell  # noqa: E402

log = logging.getLogger("bench")

PY = sys.executable
RAST = str(ROOT / "bin" / "rast")
RESULTS = ROOT / "bench" / "results"
TECHNIQUES = ROOT / "bench" / "techniques.md"  # the speed work's A/B figures, ending the report
# Figures of other benchmark programs (soak, restart, snapshot pause, the runner ceiling, the
# checker: bench/checker_bench.py), kept by hand beside them.
APPENDICES = (TECHNIQUES, ROOT / "bench" / "snapshots.md", ROOT / "bench" / "runner_ceiling.md",
              ROOT / "bench" / "checker.md")
SAT_CLIENTS_FULL = (32, 64, 128, 256)
SAT_CLIENTS_QUICK = (64,)
check_time_limit_s_max = 30.0
cell_overhead_s = 3.0          # start-up share, drain and check slack assumed per cell
profile_timeout_s = 90.0       # the py-spy profile appended to a full report

# The targets (3 nodes, fsync on, no faults).
TARGET_P50_1_MS = 1.0
TARGET_P99_1_MS = 5.0
TARGET_2N_OPS = 5000.0
TARGET_SAT_OPS = 30000.0
TARGET_SAT_P99_MS = 50.0
TARGET_VS_NULL = 0.5
TARGET_5_VS_3 = 0.7
# Issue 12 (speed, round two): the same run's ratios.
TARGET_VS_PYSYNCOBJ = 1.0            # Rast ok ops/s ÷ PySyncObj's, at 3 and 5 nodes, every load
TARGET_2N_VS_NULL = 0.3
TARGET_SAT_VS_NULL = 0.65
TARGET_P50_1_VS_NULL = 3.0           # 1 in flight: Rast p50 ≤ 3 × null's p50
TARGET_CPU_2N_S_PER_KOP = 0.14       # half of the 0.28 s per 1,000 ops measured on 2026-12-01
TARGET_5_VS_3_R2 = 0.8
TARGET_UNAVAILABLE_SHARE_MAX = 0.001  # "no error-11 storms": at most 0.1% of a saturation cell


def rast_unbatched_args() -> list[str]:
    """Ask the node how to switch batching and pipelining off (a --no-batching flag wins)."""
    try:
        help_text = subprocess.run([RAST, "--help"], capture_output=True, text=True,
                                   timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        help_text = ""
    if "--no-batching" in help_text:
        return ["--no-batching"]
    return ["--inflight-max", "1", "--append-entries-max", "1"]


def all_systems() -> dict[str, System]:
    null = str(ROOT / "bench" / "null_node.py")
    pso = str(ROOT / "bench" / "pysyncobj_node.py")
    return {
        "null": System("null", [PY, null], routing="by-key",
                       notes="local dict, no replication (the runner's ceiling); each key lives "
                             "on one node"),
        "rast": System("rast", [RAST], notes="bin/rast defaults (fsync on)"),
        "rast-unbatched": System("rast-unbatched", [RAST, *rast_unbatched_args()],
                                 notes="bin/rast with batching and pipelining off"),
        "pysyncobj": System("pysyncobj", [PY, pso, "--base-port", "{base_port}", "--no-batch"],
                            notes="PySyncObj 0.3.17, appendEntriesUseBatch=False (its faster "
                                  "config here), in-memory log (no disk writes), LOCAL reads "
                                  "(may be stale)"),
        "rast-nofsync": System("rast-nofsync", [RAST, "--no-fsync"],
                               notes="bin/rast --no-fsync (unsafe; the like-for-like comparison "
                                     "with PySyncObj, which never syncs)"),
        "rast-readindex": System("rast-readindex", [RAST, "--no-lease-reads"],
                                 notes="bin/rast --no-lease-reads (a heartbeat round per batch of "
                                       "reads instead of the default leader lease)"),
        # Not in the default suite; ask for it with --only.
        "pysyncobj-default": System("pysyncobj-default",
                                    [PY, pso, "--base-port", "{base_port}"],
                                    notes="PySyncObj 0.3.17 library defaults (batched "
                                          "AppendEntries every 100 ms), LOCAL reads"),
    }


DEFAULT_SYSTEMS = ("null", "rast", "rast-readindex", "rast-unbatched", "rast-nofsync", "pysyncobj")


def machine_info() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        pysyncobj_version = __import__("pysyncobj.version", fromlist=["VERSION"]).VERSION
    except ImportError:
        pysyncobj_version = None
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version(), "loadavg_start": os.getloadavg(),
            "pysyncobj": pysyncobj_version}


def git_head() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def load_clients(load: str, n: int, sat: tuple[int, ...]) -> tuple[int, ...]:
    if load == "1":
        return (1,)
    if load == "2n":
        return (2 * n,)
    if load == "sat":
        return sat
    raise ValueError(load)


# -- running --------------------------------------------------------------------------------------
class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def run_system(system: System, n: int, loads: list[str], sat: tuple[int, ...], args,
               deadline: Deadline, workdir: Path, key_base: list[int]) -> list[dict]:
    """Start one cluster, run every load on it, stop it. Returns one record per load."""
    cells: list[dict] = []
    cell_s = args.warmup_s + args.duration_s + cell_overhead_s
    planned = [(load, c) for load in loads for c in load_clients(load, n, sat)]
    base = {"system": system.name, "nodes": n}
    if deadline.left() < cell_s + 5:
        return [dict(base, load=load, skipped="deadline") for load in loads]
    if system.name.startswith("pysyncobj") and machine_info().get("pysyncobj") is None:
        why = "pysyncobj is not installed: .venv/bin/pip install pysyncobj==0.3.17"
        log.error("%s", why)
        return [dict(base, load=load, skipped=why) for load in loads]
    cluster = Cluster(system, n, workdir / f"{system.name}-n{n}", seed=args.seed)
    points: dict[str, list[dict]] = {load: [] for load in loads}
    try:
        try:
            ready_s = cluster.start()
        except (ClusterError, OSError) as exc:
            log.error("%s", exc)
            return [dict(base, load=load, skipped=f"cluster did not start: {exc}")
                    for load in loads]
        log.info("%s n=%d ready in %.1f s (pids %s)", system.name, n, ready_s, cluster.pids())
        for load, clients in planned:
            if deadline.left() < cell_s:
                points[load].append({"clients": clients, "skipped": "deadline"})
                continue
            key_base[0] += 10_000
            try:
                res = run_cell(cluster, clients, args.duration_s, warmup_s=args.warmup_s,
                               key_base=key_base[0], seed=args.seed,
                               check_time_limit_s=min(check_time_limit_s_max,
                                                      max(1.0, deadline.left() - cell_s)),
                               clients_in=args.clients_in)
            except ClusterError as exc:
                log.error("%s", exc)
                points[load].append({"clients": clients, "skipped": f"node exited: {exc}"})
                break
            rec = dataclasses.asdict(res)
            history = rec.pop("history")
            if res.linearizable is not True and history and res.failures:
                rec["failed_key_ops"] = save_failed_key(history, res.failures[0], workdir,
                                                        f"{system.name}-n{n}-c{clients}")
            rec["ready_s"] = round(ready_s, 2)
            points[load].append(rec)
            log.info("%-17s n=%d %-3s c=%-3d %8.0f ok/s  p50 %7.2f  p99 %7.2f ms  %s%s",
                     system.name, n, load, clients, res.ok_per_s, res.latencies_ms["p50"],
                     res.latencies_ms["p99"], verdict_text(res.linearizable),
                     f" ({res.explanation[:200]})" if res.linearizable is not True else "")
    finally:
        cluster.stop()
    for load in loads:
        pts = [p for p in points[load] if "skipped" not in p]
        if not pts:
            why = points[load][0]["skipped"] if points[load] else "not run"
            cells.append(dict(base, load=load, skipped=why))
            continue
        best = max(pts, key=lambda p: p["ok_per_s"])
        cell = dict(base, load=load, **best)
        if load == "sat":
            cell["sweep"] = [{"clients": p["clients"], "ok_per_s": round(p["ok_per_s"]),
                              "p99_ms": round(p["latencies_ms"]["p99"], 2),
                              "linearizable": p["linearizable"]} for p in pts]
            # every point of the sweep must be correct, not only the fastest
            cell["linearizable"] = merge_valid(p["linearizable"] for p in pts)
        cells.append(cell)
    return cells


def save_failed_key(history: list[dict], key, workdir: Path, name: str) -> str:
    out = workdir / "invalid" / f"{name}-key{key}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as f:
        for op in history:
            v = op.get("value")
            if isinstance(v, list) and v and v[0] == key:
                f.write(json.dumps(op) + "\n")
    return str(out)


def merge_valid(values) -> object:
    values = list(values)
    if any(v is False for v in values):
        return False
    if all(v is True for v in values):
        return True
    return "unknown"


def verdict_text(v) -> str:
    if v is True:
        return "linearizable"
    if v is False:
        return "NOT linearizable"
    return "unknown" if v == "unknown" else f"unknown ({v})"


def fail_text(c) -> str:
    unavailable = c["errors"].get("temporarily-unavailable", 0)
    timeouts = c["errors"].get("net-timeout", 0)
    extra = []
    if unavailable:
        extra.append(f"{unavailable} unavailable")
    if timeouts:
        extra.append(f"{timeouts} timed out")
    return f"{c['fail']} / {c['info']}" + (f" ({', '.join(extra)})" if extra else "")


# -- reporting ------------------------------------------------------------------------------------
def fmt(x, digits=0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def find(cells, system, n, load):
    for c in cells:
        if c["system"] == system and c["nodes"] == n and c["load"] == load and "skipped" not in c:
            return c
    return None


def ratio(a, b, key="ok_per_s") -> float | None:
    if a is None or b is None or not b.get(key):
        return None
    return a[key] / b[key]


def targets(cells) -> list[dict]:
    """The issue's targets, each with the measured figure and met/missed (None: not measured)."""
    out = []

    def add(what, figure, met):
        out.append({"target": what, "measured": figure, "met": met})
    r1 = find(cells, "rast", 3, "1")
    r2 = find(cells, "rast", 3, "2n")
    rs = find(cells, "rast", 3, "sat")
    if r1:
        add(f"3 nodes, 1 in flight: p50 ≤ {TARGET_P50_1_MS:g} ms",
            f"{r1['latencies_ms']['p50']:.2f} ms", r1["latencies_ms"]["p50"] <= TARGET_P50_1_MS)
        add(f"3 nodes, 1 in flight: p99 ≤ {TARGET_P99_1_MS:g} ms",
            f"{r1['latencies_ms']['p99']:.2f} ms", r1["latencies_ms"]["p99"] <= TARGET_P99_1_MS)
    if r2:
        add(f"3 nodes, 2n clients: ≥ {TARGET_2N_OPS:,.0f} ok ops/s",
            f"{r2['ok_per_s']:,.0f} ok ops/s", r2["ok_per_s"] >= TARGET_2N_OPS)
    if rs:
        add(f"3 nodes, saturation: ≥ {TARGET_SAT_OPS:,.0f} ok ops/s",
            f"{rs['ok_per_s']:,.0f} ok ops/s ({rs['clients']} clients)",
            rs["ok_per_s"] >= TARGET_SAT_OPS)
        add(f"3 nodes, saturation: p99 ≤ {TARGET_SAT_P99_MS:g} ms",
            f"{rs['latencies_ms']['p99']:.1f} ms", rs["latencies_ms"]["p99"] <= TARGET_SAT_P99_MS)
    for load in ("1", "2n", "sat"):
        r = ratio(find(cells, "rast", 3, load), find(cells, "null", 3, load))
        if r is not None:
            add(f"3 nodes, load {load}: Rast ≥ {TARGET_VS_NULL:g} × null (ok ops/s)",
                f"{r:.2f} ×", r >= TARGET_VS_NULL)
    for load in ("1", "2n", "sat"):
        r = ratio(find(cells, "rast", 5, load), find(cells, "rast", 3, load))
        if r is not None:
            add(f"load {load}: Rast 5 nodes ≥ {TARGET_5_VS_3:g} × 3 nodes (ok ops/s)",
                f"{r:.2f} ×", r >= TARGET_5_VS_3)
    for n in (3, 5):
        for load in ("1", "2n", "sat"):
            r = ratio(find(cells, "rast", n, load), find(cells, "pysyncobj", n, load))
            if r is not None:
                add(f"issue 12: {n} nodes, load {load}: Rast ≥ PySyncObj (ok ops/s)",
                    f"{r:.2f} ×", r >= TARGET_VS_PYSYNCOBJ)
    for load, want in (("2n", TARGET_2N_VS_NULL), ("sat", TARGET_SAT_VS_NULL)):
        r = ratio(find(cells, "rast", 3, load), find(cells, "null", 3, load))
        if r is not None:
            add(f"issue 12: 3 nodes, load {load}: Rast ≥ {want:g} × null (ok ops/s)",
                f"{r:.2f} ×", r >= want)
    n1 = find(cells, "null", 3, "1")
    if r1 and n1:
        r = r1["latencies_ms"]["p50"] / n1["latencies_ms"]["p50"]
        add(f"issue 12: 3 nodes, 1 in flight: p50 ≤ {TARGET_P50_1_VS_NULL:g} × null's",
            f"{r:.2f} × ({r1['latencies_ms']['p50']:.2f} vs {n1['latencies_ms']['p50']:.2f} ms)",
            r <= TARGET_P50_1_VS_NULL)
    if r2:
        add(f"issue 12: 3 nodes, 2n: node CPU ≤ {TARGET_CPU_2N_S_PER_KOP:g} s per 1,000 ops",
            f"{r2['node_cpu_s_per_kop']:.3f} s",
            r2["node_cpu_s_per_kop"] <= TARGET_CPU_2N_S_PER_KOP)
    for load in ("1", "2n", "sat"):
        r = ratio(find(cells, "rast", 5, load), find(cells, "rast", 3, load))
        if r is not None:
            add(f"issue 12: load {load}: Rast 5 nodes ≥ {TARGET_5_VS_3_R2:g} × 3 nodes "
                "(ok ops/s)",
                f"{r:.2f} ×", r >= TARGET_5_VS_3_R2)
    for system in ("rast", "rast-readindex"):
        for n in (3, 5):
            c = find(cells, system, n, "sat")
            if c:
                un = c["errors"].get("temporarily-unavailable", 0)
                done = max(1.0, c["completed_per_s"] * c["duration_s"])
                add(f"issue 12: {system} {n} nodes, saturation: no error-11 storm "
                    f"(≤ {TARGET_UNAVAILABLE_SHARE_MAX:.1%} of ops)",
                    f"{un} unavailable", un / done <= TARGET_UNAVAILABLE_SHARE_MAX)
    for c in cells:
        if c["system"].startswith("rast") and "skipped" not in c and c["linearizable"] is not True:
            add(f"{c['system']} n={c['nodes']} load {c['load']}: linearizable",
                verdict_text(c["linearizable"]), False)
    return out


def cell_target(c) -> str:
    if c["system"] != "rast" or "skipped" in c:
        return ""
    lat = c["latencies_ms"]
    if c["nodes"] == 3:
        if c["load"] == "1":
            ok = lat["p50"] <= TARGET_P50_1_MS and lat["p99"] <= TARGET_P99_1_MS
            return f"p50 ≤ 1, p99 ≤ 5 ms: {'met' if ok else 'MISSED'}"
        if c["load"] == "2n":
            return f"≥ 5,000/s: {'met' if c['ok_per_s'] >= TARGET_2N_OPS else 'MISSED'}"
        if c["load"] == "sat":
            ok = c["ok_per_s"] >= TARGET_SAT_OPS and lat["p99"] <= TARGET_SAT_P99_MS
            return f"≥ 30,000/s, p99 ≤ 50 ms: {'met' if ok else 'MISSED'}"
    return ""


def table(cells, n) -> list[str]:
    rows = ["| system | load | clients | ok ops/s | all ops/s | p50 ms | p95 ms | p99 ms | "
            "srv msgs/op | node CPU-s/1k ops | peak RSS/node MB | fail / info | linearizable | "
            "target |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"]
    for c in cells:
        if c["nodes"] != n:
            continue
        if "skipped" in c:
            rows.append(f"| {c['system']} | {c['load']} | | skipped: {c['skipped'][:80]} "
                        f"| | | | | | | | | | |")
            continue
        lat = c["latencies_ms"]
        srv = "n/a (TCP)" if c["system"].startswith("pysyncobj") else fmt(c["server_msgs_per_op"], 2)
        rss = max(c["peak_rss_mb"].values()) if c["peak_rss_mb"] else None
        lin = verdict_text(c["linearizable"])
        if c["linearizable"] is False:
            lin = "**NO** (stale read)" if c["system"].startswith("pysyncobj") else "**NO**"
        rows.append(
            f"| {c['system']} | {c['load']} | {c['clients']} | {fmt(c['ok_per_s'])} | "
            f"{fmt(c['completed_per_s'])} | {fmt(lat['p50'], 2)} | {fmt(lat['p95'], 2)} | "
            f"{fmt(lat['p99'], 2)} | {srv} | {fmt(c['node_cpu_s_per_kop'], 3)} | "
            f"{fmt(rss, 1)} | {fail_text(c)} | {lin} | {cell_target(c)} |")
    return rows


def ratio_table(cells, n) -> list[str]:
    rows = ["| load | Rast ÷ null | Rast ÷ PySyncObj | Rast ÷ rast-unbatched |",
            "|---|---|---|---|"]
    for load in ("1", "2n", "sat"):
        rast = find(cells, "rast", n, load)
        if rast is None:
            continue
        parts = []
        for other in ("null", "pysyncobj", "rast-unbatched"):
            o = find(cells, other, n, load)
            r = ratio(rast, o)
            if r is None:
                parts.append("–")
                continue
            p50 = o["latencies_ms"]["p50"] and rast["latencies_ms"]["p50"] / o["latencies_ms"]["p50"]
            parts.append(f"{r:.2f} × ops/s, {p50:.2f} × p50")
        rows.append(f"| {load} | " + " | ".join(parts) + " |")
    return rows


def sweep_lines(cells, n) -> list[str]:
    out = []
    for c in cells:
        if c["nodes"] == n and c.get("sweep"):
            pts = ", ".join(f"{p['clients']} clients → {p['ok_per_s']:,} ok/s (p99 {p['p99_ms']} ms)"
                            for p in c["sweep"])
            out.append(f"- {c['system']}: {pts}")
    return out


def report(data: dict) -> str:
    m = data["machine"]
    cells = data["cells"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/run.py`; do not edit by hand. Every figure below comes from one run of",
        "that program, with the baselines measured in the same run on the same machine.",
        "",
        f"- date: {data['date']} (commit {data['commit']})",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}, Python {m['python']}, "
        f"load average {m['loadavg_start'][0]:.2f} at start and {m['loadavg_end'][0]:.2f} at end "
        "(the machine is shared: figures move with other work)",
        f"- command: `{data['command']}`",
        f"- each cell: {data['config']['warmup_s']:g} s warm-up, then a "
        f"{data['config']['duration_s']:g} s measured window; closed-loop clients (one op in "
        "flight each), 50% read / 17% write / 33% cas, values 0–4, min(2n, 6) clients per key, "
        "fresh keys per cell; client timeout 1 s",
        f"- saturation: the client count among {data['config']['sat_clients']} with the most ok "
        "ops/s (the sweep is listed under each table)",
        f"- total run time: {data['elapsed_s']:.0f} s",
        "",
        "Systems:",
        "",
    ]
    for name, s in data["systems"].items():
        lines.append(f"- **{name}**: {s['notes']} — `{' '.join(s['argv_display'])}`")
    lines += [
        "",
        "Columns: *ok ops/s* counts ok completions in the window; *all ops/s* adds definite "
        "failures (mostly cas precondition-failed, which is the workload's nature) and "
        "timeouts (*fail / info* counts them; *unavailable* is error 11). Latencies are of ok ops, send to reply, as the client sees them. *srv "
        "msgs/op* is the runner network's server-to-server messages per completed op (a "
        "follower forwarding a client request keeps the client as `src`, so that hop counts as "
        "client traffic; PySyncObj's replicas talk over their own TCP, invisible here). *node "
        "CPU-s/1k ops* sums utime+stime of all nodes in the window. *peak RSS/node* is the "
        "largest VmHWM of any node since it started. *linearizable* is check_independent's "
        "verdict on the cell's whole history (for saturation: on every point of the sweep).",
        "",
        "## Targets (issue 4, then issue 12; fsync on, no faults, ratios from this run)",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    for t in data["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'met' if t['met'] else '**missed**'} |")
    for n in data["config"]["nodes"]:
        lines += ["", f"## {n} nodes", ""] + table(cells, n)
        sw = sweep_lines(cells, n)
        if sw:
            lines += ["", "Saturation sweep:", ""] + sw
        lines += ["", f"Ratios at {n} nodes (ok ops/s; p50 latency: below 1 is faster):", ""]
        lines += ratio_table(cells, n)
    inval = [c for c in cells if "skipped" not in c and c["linearizable"] is not True]
    lines += ["", "## Correctness", ""]
    if not inval:
        lines.append("Every cell's history was linearizable.")
    for c in inval:
        lines.append(f"- {c['system']} n={c['nodes']} load {c['load']}: "
                     f"{verdict_text(c['linearizable'])}; keys {c['failures'][:5]}. "
                     f"{c.get('explanation', '')}")
    if any(c["system"].startswith("pysyncobj") for c in inval):
        lines += ["", "PySyncObj serves reads from the local replica (it has no linearizable "
                  "read), so a follower, or a leader that has been deposed, returns values "
                  "other replicas have already overwritten: the checker finds stale reads. That "
                  "is a property of the system measured, not of the benchmark."]
    if data.get("profile"):
        lines += [
            "",
            "## Where Rast's time goes",
            "",
            "`python bench/profile.py --clients 64 --duration-s 3 --top 15`, run at the end of this",
            "benchmark (py-spy on every node of a 3-node cluster at 64 clients):",
            "",
            "```",
            data["profile"].rstrip(),
            "```",
        ]
        lines += limit_paragraph(data)
    for appendix in APPENDICES:  # measured by other programs or A/B runs, kept beside the figures
        if appendix.exists():
            lines += ["", appendix.read_text().rstrip()]
    lines.append("")
    return "\n".join(lines)


def print_tables(data: dict) -> None:
    cells = data["cells"]
    for n in data["config"]["nodes"]:
        print(f"\n{n} nodes")
        print("\n".join(table(cells, n)))
        sw = sweep_lines(cells, n)
        if sw:
            print("saturation sweep:\n" + "\n".join(sw))
        print("\n".join(ratio_table(cells, n)))
    print("\ntargets:")
    for t in data["targets"]:
        print(f"  {'met   ' if t['met'] else 'MISSED'}  {t['target']}: {t['measured']}")


# -- main -----------------------------------------------------------------------------------------
def parse_args(argv=None):
    systems = all_systems()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="2 s cells, saturation at 64 clients only (about 2 minutes)")
    ap.add_argument("--only", help=f"systems, comma-separated, from {','.join(systems)} "
                                   f"(default {','.join(DEFAULT_SYSTEMS)})")
    ap.add_argument("--nodes", default="3,5", help="node counts (default 3,5)")
    ap.add_argument("--loads", default="1,2n,sat", help="loads from 1,2n,sat (default all)")
    ap.add_argument("--sat-clients", help="client counts tried for saturation "
                                          "(default 32,64,128,256; 64 with --quick)")
    ap.add_argument("--duration-s", type=float, help="measured window per cell (5; 2 quick)")
    ap.add_argument("--warmup-s", type=float, help="warm-up per cell (0.5; 0.3 quick)")
    ap.add_argument("--deadline-s", type=float,
                    help="hard deadline for the whole run (720; 170 quick)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clients-in", choices=("loop", "process"), default="loop",
                    help="the clients in the router's loop (default) or in a client host process "
                         "(bench/driver.py, harness/clienthost.py)")
    ap.add_argument("--report", help="write the markdown report here (default: BENCHMARKS.md "
                                     "for a full run only)")
    ap.add_argument("--json", help="write the raw figures here (default: see the docstring)")
    ap.add_argument("--render", metavar="JSON",
                    help="run nothing: write the report (--report, default BENCHMARKS.md) from "
                         "the raw figures of an earlier run, e.g. bench/results/latest.json")
    ap.add_argument("--keep-workdir", action="store_true",
                    help="keep node logs even when every cell was linearizable")
    a = ap.parse_args(argv)
    a.filtered = bool(a.only) or a.nodes != "3,5" or a.loads != "1,2n,sat" or bool(a.sat_clients)
    a.systems = (a.only.split(",") if a.only else list(DEFAULT_SYSTEMS))
    for s in a.systems:
        if s not in systems:
            ap.error(f"unknown system {s!r}; choose from {','.join(systems)}")
    a.node_counts = [int(x) for x in a.nodes.split(",")]
    a.load_list = a.loads.split(",")
    for load in a.load_list:
        if load not in ("1", "2n", "sat"):
            ap.error(f"unknown load {load!r}; choose from 1,2n,sat")
    a.sat = (tuple(int(x) for x in a.sat_clients.split(",")) if a.sat_clients else
             SAT_CLIENTS_QUICK if a.quick else SAT_CLIENTS_FULL)
    a.duration_s = a.duration_s or (2.0 if a.quick else 5.0)
    a.warmup_s = a.warmup_s if a.warmup_s is not None else (0.3 if a.quick else 0.5)
    a.deadline_s = a.deadline_s or (170.0 if a.quick else 720.0)
    return a


def limit_paragraph(data: dict) -> list[str]:
    """What the figures say limits Rast on this machine (numbers from this run's cells)."""
    best = {}
    for c in data["cells"]:
        if "skipped" in c or c["nodes"] != 3 or c["load"] != "sat":
            continue
        if c["system"] not in best or c["ok_per_s"] > best[c["system"]]["ok_per_s"]:
            best[c["system"]] = c
    rast, null = best.get("rast"), best.get("null")
    if not rast or not null:
        return []
    share = sum(rast["node_cpu_share"].values())
    driver = rast["driver_cpu_s_per_kop"] * rast["ok_per_s"] / 1000 * (
        rast["completed_per_s"] / max(rast["ok_per_s"], 1e-9))
    return [
        "",
        f"Reading it: at saturation the three Rast nodes used {share:.2f} of a core and the runner about",
        f"{driver:.2f}, of {data['machine']['nproc']} cores, so the machine is nearly full. Per completed op "
        f"the nodes spent {rast['node_cpu_s_per_kop']:.3f} ms of CPU",
        f"where the null node spends {null['node_cpu_s_per_kop']:.3f}: each op makes four or five hops through "
        "the runner (client → node →",
        "leader → followers → leader → client), each a pipe write, a process wake-up and a read at both",
        "ends, plus an fsync on the leader and on a follower. At one client in flight the same chain, not",
        "CPU, sets the latency (the nodes sit blocked in select, the WAL thread's wait and fdatasync).",
        "py-spy counts the WAL thread's blocking waits (fdatasync, and `WalWriter._run` waiting",
        "on its queue) as running; of the loop thread's own time the stdout write is the largest",
        "item (a pipe write that wakes the reader, on a full machine often preempted by it).",
    ]


def run_profile() -> str:
    """The top of a py-spy profile of one Rast cell, for the report (empty if py-spy is missing)."""
    cmd = [sys.executable, str(ROOT / "bench" / "profile.py"), "--clients", "64", "--duration-s", "3",
           "--top", "15"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=profile_timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("profile run timed out after %.0f s", profile_timeout_s)
        return ""
    if proc.returncode != 0:
        log.warning("profile run failed: %s", proc.stderr[-400:])
        return ""
    return proc.stdout


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("maelstrom").setLevel(logging.WARNING)
    args = parse_args(argv)
    if args.render:
        md_path = Path(args.report) if args.report else ROOT / "BENCHMARKS.md"
        md_path.write_text(report(json.loads(Path(args.render).read_text())))
        print(f"report: {os.path.relpath(md_path)} (from {args.render})")
        return 0
    command = " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])])

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    systems = all_systems()
    started = time.monotonic()
    deadline = Deadline(args.deadline_s)
    workdir = Path(tempfile.mkdtemp(prefix="rast-bench-"))
    machine = machine_info()
    log.info("bench: systems %s, nodes %s, loads %s (sat %s), %g s cells; workdir %s",
             args.systems, args.node_counts, args.load_list, args.sat, args.duration_s, workdir)
    cells: list[dict] = []
    key_base = [0]
    try:
        for n in args.node_counts:
            for name in args.systems:
                cells += run_system(systems[name], n, args.load_list, args.sat, args, deadline,
                                    workdir, key_base)
    except KeyboardInterrupt:
        log.error("interrupted; the clusters were stopped; reporting what was measured")
    machine["loadavg_end"] = os.getloadavg()
    data = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": git_head(),
        "machine": machine,
        "command": command,
        "elapsed_s": time.monotonic() - started,
        "config": {"duration_s": args.duration_s, "warmup_s": args.warmup_s,
                   "nodes": args.node_counts, "loads": args.load_list,
                   "sat_clients": list(args.sat), "seed": args.seed, "quick": args.quick},
        "systems": {name: {"argv": systems[name].argv, "notes": systems[name].notes,
                           "argv_display": [os.path.relpath(a, ROOT) if a.startswith(str(ROOT))
                                            else "<free port>" if a == "{base_port}"
                                            else a
                                            for a in systems[name].argv]}
                    for name in args.systems},
        "cells": cells,
    }
    data["targets"] = targets(cells)
    print_tables(data)
    full = not args.filtered and not args.quick
    if full or args.report:
        data["profile"] = run_profile()
    json_path = Path(args.json) if args.json else RESULTS / (
        "latest.json" if full else "quick.json" if args.quick else "partial.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    print(f"\nraw figures: {os.path.relpath(json_path)}")
    md_path = Path(args.report) if args.report else (ROOT / "BENCHMARKS.md" if full else None)
    if md_path is not None:
        md_path.write_text(report(data))
        print(f"report: {os.path.relpath(md_path)}")
    # PySyncObj's stale reads are expected (and explained in the report): only a Rast failure or
    # a skipped cell keeps the node logs and the failing keys' ops.
    keep = args.keep_workdir or any("skipped" in c for c in cells) or any(
        c["system"].startswith("rast") and c["linearizable"] is not True
        for c in cells if "skipped" not in c)
    if keep:
        print(f"node logs and invalid keys' ops: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"total {time.monotonic() - started:.0f} s")
    bad = [c for c in cells if c["system"].startswith("rast") and "skipped" not in c
           and c["linearizable"] is not True]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
