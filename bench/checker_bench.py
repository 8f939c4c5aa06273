"""Benchmark of the linearizability checker on workload-shaped lin-kv histories.

What it owns: a generator of histories shaped like Maelstrom's lin-kv workload (spec §5.1-§5.6)
produced by simulating a real linearizable register with concurrent clients, and a program that
times ``check_independent`` on them and on one pathological key, then prints the figures.
Invariants: every generated history is linearizable by construction (each op takes effect at
one instant inside its interval, or for an indeterminate op at any instant after its invocation,
or never); a run is reproducible from its seed. It touches no files and starts no processes.

    .venv/bin/python bench/checker_bench.py                 # 10k and 100k ops + pathological
    .venv/bin/python bench/checker_bench.py --ops 20000 --rate 1000 --seed 7
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time

from rast_maelstrom.harness.linearizability import check_independent, check_register

NS_PER_S = 1_000_000_000
SIM_EVENTS_MAX = 10_000_000  # bound on the generator's main loop


def generate(ops: int, seed: int, *, node_count: int = 3, rate: float = 100.0,
             latency_ms: float = 1.0, timeout_p: float = 0.002, fail_p: float = 0.01,
             timeout_ms: float = 1000.0, partition_every_s: float = 30.0,
             partition_s: float = 10.0, keys: int = 1) -> list[dict]:
    """A lin-kv history of about ``ops`` client invocations (history records = 2 * ops).

    ``keys`` groups of 2n threads work on keys at once; only group 0 has readers (spec §5.1).
    During a partition one node is isolated and every op sent to it times out.
    """
    rng = random.Random(seed)
    n = node_count
    group = 2 * n
    conc = group * keys
    retire_after = 21 - group  # info completions on a key before it retires
    proc = list(range(conc))
    free_at = [0.0] * conc  # seconds
    group_key = list(range(keys))
    next_key = keys
    infos_done: list[list[float]] = [[] for _ in range(keys)]  # per group: info completion times
    made = []  # (key, process, f, value, t_inv, t_comp, outcome, t_effect or None)
    t = 0.0
    for _ in range(min(ops, SIM_EVENTS_MAX)):
        t += rng.uniform(0.0, 2.0 / rate)
        idle = [i for i in range(conc) if free_at[i] <= t]
        if not idle:
            t = min(free_at)
            idle = [i for i in range(conc) if free_at[i] <= t]
        th = rng.choice(idle)
        g = th // group
        if sum(1 for c in infos_done[g] if c <= t) >= retire_after:
            group_key[g] = next_key
            next_key += 1
            infos_done[g] = [c for c in infos_done[g] if c > t]
        key = group_key[g]
        if th < n:
            f, value = "read", None
        elif rng.random() < 1 / 3:
            f, value = "write", rng.randint(0, 4)
        else:
            f, value = "cas", [rng.randint(0, 4), rng.randint(0, 4)]
        node = th % n
        cycle = t % partition_every_s if partition_every_s > 0 else partition_s
        isolated = (int(t // partition_every_s) % n) if partition_every_s > 0 else -1
        partitioned = partition_every_s > 0 and cycle < partition_s and node == isolated
        lat = latency_ms / 1000.0 * rng.lognormvariate(0.0, 0.5)
        if partitioned or rng.random() < timeout_p:
            t_comp = t + timeout_ms / 1000.0
            outcome = "timeout"
            if f != "read" and not partitioned and rng.random() < 0.5:
                t_eff = t + rng.uniform(0.0, 1.5 * timeout_ms / 1000.0)
            else:
                t_eff = None
        elif rng.random() < fail_p:
            t_comp, outcome, t_eff = t + lat, "error", None
        else:
            t_comp, outcome = t + lat, "done"
            t_eff = rng.uniform(t, t_comp)
        p = proc[th]
        if outcome == "timeout" and f != "read":
            infos_done[g].append(t_comp)
            proc[th] += conc  # an info completion gives the thread a new process (spec §5.2)
        free_at[th] = t_comp
        made.append([key, p, f, value, t, t_comp, outcome, t_eff])
    # Take effect in order of effect time; decide each op's reply.
    register: dict = {}
    for op in sorted((m for m in made if m[7] is not None), key=lambda m: m[7]):
        key, f, value = op[0], op[2], op[3]
        cur = register.get(key)
        if f == "read":
            op[3] = cur
        elif f == "write":
            register[key] = value
        elif cur == value[0]:
            register[key] = value[1]
        else:
            op[6] = "precondition" if op[6] == "done" else op[6]
    records = []
    for seq, (key, p, f, value, t_inv, t_comp, outcome, _) in enumerate(made):
        inv_value = [key, None] if f == "read" else [key, value]
        records.append((int(t_inv * NS_PER_S), 1, seq, {"process": p, "type": "invoke", "f": f,
                                                         "value": inv_value}))
        if outcome == "done":
            rec = {"process": p, "type": "ok", "f": f, "value": [key, value]}
        elif outcome == "timeout":
            rec = {"process": p, "type": "fail" if f == "read" else "info", "f": f,
                   "value": inv_value, "error": "net-timeout"}
        elif outcome == "precondition":
            rec = {"process": p, "type": "fail", "f": f, "value": inv_value,
                   "error": ["precondition-failed", "cas mismatch"]}
        else:
            rec = {"process": p, "type": "fail", "f": f, "value": inv_value,
                   "error": ["temporarily-unavailable", "not leader"]}
        records.append((int(t_comp * NS_PER_S), 0, seq, rec))
    heapq.heapify(records)
    history = []
    while records:
        t_ns, _, _, rec = heapq.heappop(records)
        rec["index"] = len(history)
        rec["time"] = t_ns
        history.append(rec)
    return history


def pathological(writers: int) -> list[dict]:
    """One key: ``writers`` writes of distinct values all concurrent, then a read of one of them.

    Valid, but the frontier of possible configurations doubles with each pending write.
    """
    hist = []
    for p in range(writers):
        hist.append({"process": p, "type": "invoke", "f": "write", "value": p})
    for p in range(writers):
        hist.append({"process": p, "type": "ok", "f": "write", "value": p})
    hist.append({"process": writers, "type": "invoke", "f": "read", "value": None})
    hist.append({"process": writers, "type": "ok", "f": "read", "value": 0})
    for i, rec in enumerate(hist):
        rec["index"] = i
        rec["time"] = i * 1000
    return hist


def summarize(history: list[dict]) -> str:
    counts: dict = {}
    keys = set()
    for rec in history:
        if rec["type"] != "invoke":
            counts[rec["type"]] = counts.get(rec["type"], 0) + 1
        keys.add(rec["value"][0])
    return (f"{sum(counts.values())} ops on {len(keys)} keys "
            f"(ok {counts.get('ok', 0)}, fail {counts.get('fail', 0)}, info {counts.get('info', 0)})")


def run_one(label: str, history: list[dict], time_limit_s: float) -> None:
    t0 = time.perf_counter()
    res = check_independent(history, time_limit_s=time_limit_s)
    dt = time.perf_counter() - t0
    n_ops = sum(1 for r in history if r["type"] == "invoke")
    explored = sum(r.get("configs-explored", 0) for r in res["results"].values())
    frontier = max((r.get("frontier-max", 0) for r in res["results"].values()), default=0)
    print(f"{label:>10}: {summarize(history)}")
    print(f"{'':>10}  valid?={res['valid?']} failures={res['failures'][:5]} "
          f"time={dt:.2f} s  {n_ops / dt:,.0f} ops/s  searched configs={explored:,} "
          f"largest frontier={frontier}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, nargs="*", default=[10_000, 100_000],
                    help="history sizes in client ops (default: 10000 100000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keys", type=int, default=1, help="groups of 2n threads (keys at once)")
    ap.add_argument("--node-count", type=int, default=3)
    ap.add_argument("--rate", type=float, default=100.0, help="invocations per second, all clients")
    ap.add_argument("--latency-ms", type=float, default=1.0)
    ap.add_argument("--timeout-p", type=float, default=0.002)
    ap.add_argument("--partition-every-s", type=float, default=30.0, help="0 for no partitions")
    ap.add_argument("--partition-s", type=float, default=10.0)
    ap.add_argument("--time-limit-s", type=float, default=120.0)
    ap.add_argument("--writers", type=int, default=24, help="concurrent writes, pathological key")
    args = ap.parse_args(argv)
    print(f"python {sys.version.split()[0]}, seed {args.seed}, rate {args.rate}/s, "
          f"latency {args.latency_ms} ms, {args.node_count} nodes, {args.keys} key group(s)")
    for n in args.ops:
        t0 = time.perf_counter()
        hist = generate(n, args.seed, node_count=args.node_count, rate=args.rate,
                        latency_ms=args.latency_ms, timeout_p=args.timeout_p,
                        partition_every_s=args.partition_every_s, partition_s=args.partition_s,
                        keys=args.keys)
        gen_s = time.perf_counter() - t0
        print(f"(generated in {gen_s:.1f} s)")
        run_one(f"{n} ops", hist, args.time_limit_s)
    if args.writers < 2:
        return 0
    hist = pathological(args.writers)
    t0 = time.perf_counter()
    res = check_register(hist, time_limit_s=args.time_limit_s)
    dt = time.perf_counter() - t0
    print(f"pathological: {args.writers} concurrent writes -> valid?={res['valid?']} "
          f"cause={res.get('cause')} limit={res.get('limit')} after {dt:.2f} s, "
          f"{res['configs-explored']:,} configs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
