"""Command line for the simulator: run seeds, print one line of figures per run and a summary.

    python -m rast_maelstrom.sim --seeds 1-200 --steps 20000 [--nodes 3|5] [--time-budget-s T]
    python -m rast_maelstrom.sim --seed 17 --steps 5000 --bug vote-ignores-log
    python -m rast_maelstrom.sim --seeds 1-1000 --steps 6000 --nodes 3,5 --jobs 2 --require-all-faults -q

`--jobs N` runs seeds in N worker processes (results are the same as with one: each seed is its own
deterministic run; the summary adds them up). `--require-all-faults` fails the sweep unless every
fault class of the simulator (`cluster.FAULT_COUNTERS`) happened at least once.

A failing seed prints its report (invariant, trace tail, replay command); the exit status is 1 if
any run failed. Owns only argument parsing and printing (this is a program, so it prints).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
import time
from collections import Counter
from typing import Any

from .cluster import BUGS
from ..core import raft as raft_mod
from .cluster import FAULT_COUNTERS, FaultMix, SimConfig, SimFailure, run_seed

FAILURES_SHOWN_MAX = 10
JOBS_MAX = 64


def parse_seeds(text: str) -> list[int]:
    """"1-200", "5", "1,4,10-12"."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        a, sep, b = part.partition("-")
        if sep:
            lo, hi = int(a), int(b)
            if hi < lo:
                raise argparse.ArgumentTypeError(f"empty seed range {part!r}")
            seeds.extend(range(lo, hi + 1))
        else:
            seeds.append(int(part))
    return seeds


def parse_bug(text: str) -> str:
    by_name = {n[4:].lower().replace("_", "-"): getattr(raft_mod, n)
               for n in dir(raft_mod) if n.startswith("BUG_")}
    key = text.lower().removeprefix("bug_").replace("_", "-")
    if key in BUGS:
        return key
    if key in by_name:
        return by_name[key]
    raise argparse.ArgumentTypeError(f"unknown bug {text!r}; known: {', '.join(sorted(BUGS))}")


def parse_nodes(text: str) -> list[int]:
    """"3" or "3,5" (the cluster size cycles with the seed)."""
    sizes = [int(x) for x in text.split(",") if x.strip()]
    if not sizes or any(not 1 <= n <= 9 for n in sizes):
        raise argparse.ArgumentTypeError(f"cluster sizes must be 1-9: {text!r}")
    return sizes


def _run_one(job: tuple[SimConfig, float]) -> tuple[SimConfig, Any]:
    """One seed, in whichever process: (cfg, RunResult or SimFailure, or None past the deadline)."""
    cfg, deadline = job
    if time.monotonic() > deadline:
        return cfg, None
    try:
        return cfg, run_seed(cfg)
    except SimFailure as f:
        return cfg, f


def _quiet_worker() -> None:
    logging.disable(logging.CRITICAL)  # a node's exit-70 line is an expected event here


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rast_maelstrom.sim",
                                description="Deterministic simulation of a Rast cluster.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--seed", type=int, help="run this one seed")
    g.add_argument("--seeds", type=parse_seeds, help='seeds to run: "1-200", "3,7,10-12" (default 1-20)')
    p.add_argument("--steps", type=int, default=20_000, help="steps of the fault phase (default 20000)")
    p.add_argument("--nodes", type=parse_nodes, default=[3],
                   help='cluster size (default 3); "3,5" alternates sizes by seed')
    p.add_argument("--bug", type=parse_bug, action="append", default=[],
                   help=f"plant a test-only bug in the core or the state machine ({', '.join(sorted(BUGS))})")
    p.add_argument("--faults", type=FaultMix.parse,
                   help='fix the fault mix, e.g. "crash,partition,torn,drop=0.05,interval=0.3" '
                        "(default: each seed draws its own)")
    p.add_argument("--node-args", default="", help='extra node flags, e.g. "--append-entries-max 1"')
    p.add_argument("--client-timeout-s", type=float, default=SimConfig.client_timeout_s,
                   help=f"a client gives up on an op after this (default {SimConfig.client_timeout_s:g})")
    p.add_argument("--time-budget-s", type=float, help="start no new seed after this many wall seconds")
    p.add_argument("--no-lin", action="store_true", help="skip the linearizability check")
    p.add_argument("--stop-on-failure", action="store_true", help="stop at the first failing seed")
    p.add_argument("-q", "--quiet", action="store_true", help="summary only")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--require-all-faults", action="store_true",
                   help="fail unless every fault class of the simulator happened at least once")
    args = p.parse_args(argv)
    if not 1 <= args.jobs <= JOBS_MAX:
        p.error(f"--jobs must be 1-{JOBS_MAX}")
    logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)
    _quiet_worker()

    seeds = [args.seed] if args.seed is not None else (args.seeds or list(range(1, 21)))
    t0 = time.monotonic()
    runs = 0
    failures: list[SimFailure] = []
    by_invariant: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    steps = 0
    sim_s = 0.0
    unknown = 0
    deadline = t0 + args.time_budget_s if args.time_budget_s is not None else float("inf")
    jobs = [(SimConfig(seed=seed, steps=args.steps, nodes=args.nodes[seed % len(args.nodes)],
                       bugs=tuple(args.bug), faults=args.faults, node_argv=tuple(args.node_args.split()),
                       client_timeout_s=args.client_timeout_s, check_lin=not args.no_lin), deadline) for seed in seeds]
    pool = multiprocessing.Pool(args.jobs, initializer=_quiet_worker) if args.jobs > 1 else None
    results = pool.imap(_run_one, jobs) if pool is not None else map(_run_one, jobs)
    for cfg, r in results:
        if r is None:  # the time budget ran out before this seed started
            continue
        seed = cfg.seed
        runs += 1
        if isinstance(r, SimFailure):
            f = r
            failures.append(f)
            by_invariant[f.invariant] += 1
            if not args.quiet or len(failures) <= FAILURES_SHOWN_MAX:
                print(f"seed {seed}: FAILED ({f.invariant})\n{f}\n", flush=True)
            if args.stop_on_failure:
                break
            continue
        steps += r.steps
        sim_s += r.sim_s
        faults.update(r.faults)
        ops.update(r.ops)
        unknown += r.lin == "unknown"
        if not args.quiet:
            fl = " ".join(f"{k}={v}" for k, v in sorted(r.faults.items())) or "none"
            print(f"seed {seed}: ok  sim {r.sim_s:6.1f}s  steps {r.steps}  faults {fl}  "
                  f"ops ok/fail/info {r.ops['ok']}/{r.ops['fail']}/{r.ops['info']}  "
                  f"terms {r.extra['leader_terms']} (max {r.max_term})  committed {r.committed}  "
                  f"heal {r.heal_s:.2f}s  lin {r.lin}  wall {r.wall_s:.2f}s  trace {r.trace_hash[:12]}",
                  flush=True)
    if pool is not None:
        pool.terminate()
        pool.join()
    wall = time.monotonic() - t0
    print(f"summary: {runs} runs, {runs - len(failures)} passed, {len(failures)} failed"
          + (f" ({', '.join(f'{k}: {v}' for k, v in by_invariant.most_common())})" if failures else "")
          + f"; {steps} steps, {sim_s:.0f} simulated s in {wall:.1f} wall s "
          f"({steps / wall if wall else 0:.0f} steps/s)")
    print(f"summary: ops ok/fail/info {ops['ok']}/{ops['fail']}/{ops['info']}; lin unknown {unknown}; "
          f"faults " + (" ".join(f"{k}={v}" for k, v in sorted(faults.items())) or "none"))
    for f in failures[:FAILURES_SHOWN_MAX]:
        print(f"replay: {f.replay}")
    missing = [k for k in FAULT_COUNTERS if not faults[k]]
    if args.require_all_faults and missing:
        print(f"summary: FAILED: these fault classes never happened: {', '.join(missing)}")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
