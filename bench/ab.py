#!/usr/bin/env python3
"""A/B: two or more node builds or flag sets, alternated cell by cell, so load drift cancels.

On a shared, noisy machine two configurations run one after the other see different loads, and
their ratio measures the machine as much as the node. This program runs round after round; in
each round every system gets one cell (a fresh cluster: bench/driver.py's Cluster and run_cell,
the same client mix, the same checks as `make bench`), in an order rotated every round. It reports
each system's median ok ops/s and, as the figure to quote, the median over rounds of each
system's ratio to the first one *within the same round* (paired, so a round that was slow for
everyone cancels out). Every cell's history is checked; a cell that is not linearizable is
reported as such and its ratio is not used.

With --parallel, each round's cells run at the same time instead (one forked child per system,
each its own network loop): both systems then see the same load and compete for the same cores,
so on a CPU-bound machine the ratio measures what each costs per op, whatever else is running.

    .venv/bin/python bench/ab.py --system rast=bin/rast \\
        --system nosnap='bin/rast --no-snapshots' --clients 64 --rounds 4
    .venv/bin/python bench/ab.py --system before=/work/wt/base/bin/rast --system after=bin/rast

A system is NAME=COMMAND (split like a shell line; relative paths are taken from the repository
root). Bounds: rounds x systems cells of warm-up + --duration-s each, a check time limit per cell,
and --deadline-s for the whole run (later cells are skipped and said so). Every cluster is stopped
by PID (Cluster.stop) before the next one starts.
May not touch: the node, the harness (composes bench/driver.py only).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import re
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driver import ROOT, Cluster, ClusterError, System, run_cell  # noqa: E402

ROUNDS_MAX = 20
CHECK_TIME_LIMIT_S = 60.0


def parse_system(spec: str) -> System:
    name, sep, command = spec.partition("=")
    if not sep or not name or not command.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=COMMAND, got {spec!r}")
    # (every word naming a file under the repository, not the program alone: nodes start in a
    # working directory of their own, so `python bench/x.py` must reach them as absolute paths)
    argv = [str(ROOT / w) if not Path(w).is_absolute() and (ROOT / w).is_file() else w
            for w in shlex.split(command)]
    return System(name, argv, notes=command)


def run_one(system: System, args, workdir: Path, key_base: int) -> dict:
    cluster = Cluster(system, args.nodes, workdir, seed=args.seed)
    try:
        cluster.start()
        res = run_cell(cluster, args.clients, args.duration_s, warmup_s=args.warmup_s,
                       key_base=key_base, seed=args.seed, check_time_limit_s=CHECK_TIME_LIMIT_S,
                       clients_in=args.clients_in)
    except (ClusterError, OSError) as exc:
        return {"system": system.name, "skipped": str(exc)}
    finally:
        cluster.stop()
    counted = None
    if args.count_log:  # e.g. how many snapshots the nodes took in this cell (needs INFO logs)
        pattern = re.compile(args.count_log)
        counted = sum(len(pattern.findall(p.read_text(errors="replace")))
                      for p in workdir.glob("*.log"))
    return {"system": system.name, "ok_per_s": res.ok_per_s, "log_count": counted,
            "p50_ms": res.latencies_ms["p50"], "driver_cpu_s_per_kop": res.driver_cpu_s_per_kop,

            "p99_ms": res.latencies_ms["p99"], "node_cpu_s_per_kop": res.node_cpu_s_per_kop,
            "server_msgs_per_op": res.server_msgs_per_op, "errors": res.errors,
            "linearizable": res.linearizable, "ops": res.history_ops}


def run_parallel(order: list[System], args, workdir: Path, r: int, key_base: int,
                 timeout_s: float) -> list[dict]:
    """One cell of every system at the same time, each in a forked child (its own network loop),
    so both see the same machine load and compete for the same cores: on a CPU-bound machine
    their ratio then measures their relative cost per op. A child that overruns is stopped."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = []
    for i, system in enumerate(order):
        def child(system=system, k=key_base + i * 100_000) -> None:
            results.put(run_one(system, args, workdir / f"r{r}-{system.name}", k))
        proc = ctx.Process(target=child)
        proc.start()
        procs.append(proc)
    cells = []
    deadline = time.monotonic() + timeout_s
    for system in order:
        try:
            cells.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
        except queue.Empty:
            break
    for proc in procs:
        proc.join(timeout=max(1.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()
    got = {c["system"] for c in cells}
    cells += [{"system": s.name, "skipped": "overran"} for s in order if s.name not in got]
    return cells


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", action="append", type=parse_system, required=True,
                    help="NAME=COMMAND (at least two; the first is the baseline of the ratios)")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--clients", type=int, default=64, help="closed-loop clients (6 = 2n at 3)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--clients-in", choices=("loop", "process"), default="loop",
                    help="the clients in the router's loop (default) or in a client host process")
    ap.add_argument("--duration-s", type=float, default=10.0, help="measured window per cell")
    ap.add_argument("--warmup-s", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--deadline-s", type=float, default=1200.0)
    ap.add_argument("--json", help="write every cell's figures here")
    ap.add_argument("--parallel", action="store_true",
                    help="run each round's cells at the same time (one forked child per system) "
                         "instead of one after the other")
    ap.add_argument("--count-log", metavar="REGEX",
                    help="count this pattern in each cell's node logs and print it, e.g. "
                         "'snapshot through \\d+ taken' with --log-level INFO in the commands")
    args = ap.parse_args(argv)
    systems: list[System] = args.system
    if len(systems) < 2 or len({s.name for s in systems}) != len(systems):
        ap.error("give at least two --system, with distinct names")
    if not 1 <= args.rounds <= ROUNDS_MAX:
        ap.error(f"--rounds must be in 1..{ROUNDS_MAX}")
    t_end = time.monotonic() + args.deadline_s
    cell_s = args.warmup_s + args.duration_s + 15.0  # start, drain, check, stop
    workdir = Path(tempfile.mkdtemp(prefix="rast-ab-"))
    rounds: list[list[dict]] = []
    key_base = 0
    for r in range(args.rounds):
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        cells: list[dict] = []
        if args.parallel:
            if time.monotonic() + cell_s > t_end:
                batch = [{"system": s.name, "skipped": "deadline"} for s in order]
            else:
                batch = run_parallel(order, args, workdir, r, key_base, 2 * cell_s)
            key_base += 100_000 * len(order)
        for system in order:
            if args.parallel:
                cell = next(c for c in batch if c["system"] == system.name)
            elif time.monotonic() + cell_s > t_end:
                cell = {"system": system.name, "skipped": "deadline"}
            else:
                key_base += 100_000
                cell = run_one(system, args, workdir / f"r{r}-{system.name}", key_base)
            cell["round"] = r
            cells.append(cell)
            if "skipped" in cell:
                print(f"round {r}  {system.name:<12} skipped: {cell['skipped']}", flush=True)
            else:
                print(f"round {r}  {system.name:<12} {cell['ok_per_s']:8.0f} ok/s  p50 "
                      f"{cell['p50_ms']:6.2f} ms  p99 {cell['p99_ms']:7.2f} ms  cpu/kop "
                      f"{cell['node_cpu_s_per_kop']:.3f} s  linearizable {cell['linearizable']}"
                      + (f"  log matches {cell['log_count']}" if args.count_log else ""),
                      flush=True)
        rounds.append(cells)
    base = systems[0].name
    print(f"\n{args.nodes} nodes, {args.clients} clients, {args.rounds} rounds of "
          f"{args.duration_s:g} s cells ("
          + ("run at the same time" if args.parallel else "order rotated each round")
          + "); ratio = paired, same round")
    print(f"{'system':<12} {'median ok/s':>12} {'cells':>6} {'ratio to ' + base:>16} "
          f"{'ratios per round':<30} linearizable")
    summary = {}
    for s in systems:
        mine = [c for cells in rounds for c in cells if c["system"] == s.name and "skipped" not in c]
        ratios = []
        for cells in rounds:
            by = {c["system"]: c for c in cells if "skipped" not in c and c["linearizable"] is True}
            if s.name in by and base in by and by[base]["ok_per_s"] > 0:
                ratios.append(by[s.name]["ok_per_s"] / by[base]["ok_per_s"])
        med = statistics.median(c["ok_per_s"] for c in mine) if mine else float("nan")
        ratio = statistics.median(ratios) if ratios else float("nan")
        valid = all(c["linearizable"] is True for c in mine) and bool(mine)
        summary[s.name] = {"median_ok_per_s": med, "paired_ratio": ratio, "ratios": ratios,
                           "all_linearizable": valid, "command": s.notes}
        print(f"{s.name:<12} {med:12.0f} {len(mine):6d} {ratio:16.3f} "
              f"{' '.join(f'{x:.3f}' for x in ratios):<30} {valid}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items()
                                                        if k != "system"},
                                               "summary": summary, "rounds": rounds}, indent=1))
    return 0 if all(v["all_linearizable"] for v in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
