"""Benchmark of the linearizability checker on workload-shaped lin-kv histories.

What it owns: a generator of histories shaped like Maelstrom's lin-kv workload (spec §5.1-§5.6)
produced by simulating a real linearizable register with concurrent clients, and a program that
prints, side by side, the old search (breadth first, one budget for the whole history) and the
new one (the witness search, then breadth first, a budget per key): time to a verdict on the
slowest of a fixed set of info-heavy histories, on 100,000-op histories over 1 and 10 keys with
0%, 1% and 5% indeterminate ops, and the count of "unknown" answers on the whole fixed set.
Invariants: every generated history is linearizable by construction (each op takes effect at
one instant inside its interval, or for an indeterminate op at any instant after its invocation,
or never); a run is reproducible from its seed. It touches no files and starts no processes.

    .venv/bin/python bench/checker_bench.py                 # the side-by-side table (~15 min)
    .venv/bin/python bench/checker_bench.py --heavy-count 50 --big-ops 20000   # a quick look
    .venv/bin/python bench/checker_bench.py --no-compare --ops 20000 --rate 1000 --seed 7
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time

from rast_maelstrom.harness.linearizability import (CONFIG_MAX_DEFAULT, check_independent,
                                                    check_register)

NS_PER_S = 1_000_000_000
SIM_EVENTS_MAX = 10_000_000  # bound on the generator's main loop
INFO_HEAVY_OPS = 200  # ops in each info-heavy history
OLD_CONFIG_MAX = 500_000  # the breadth-first search's per-step bound before the witness search


def generate(ops: int, seed: int, *, node_count: int = 3, rate: float = 100.0,
             latency_ms: float = 1.0, timeout_p: float = 0.002, fail_p: float = 0.01,
             timeout_ms: float = 1000.0, partition_every_s: float = 30.0,
             partition_s: float = 10.0, keys: int = 1, retire: bool = True,
             all_groups_read: bool = False) -> list[dict]:
    """A lin-kv history of about ``ops`` client invocations (history records = 2 * ops).

    ``keys`` groups of 2n threads work on keys at once; only group 0 has readers unless
    ``all_groups_read`` (then threads 0..n-1 of every group read, as spec §0.1.5 says the jar
    does). ``retire=False`` keeps each group on one key for the whole history.
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
        if retire and sum(1 for c in infos_done[g] if c <= t) >= retire_after:
            group_key[g] = next_key
            next_key += 1
            infos_done[g] = [c for c in infos_done[g] if c > t]
        key = group_key[g]
        if (th % group if all_groups_read else th) < n:
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


def summarize(history: list[dict]) -> str:
    counts: dict = {}
    keys = set()
    for rec in history:
        if rec["type"] != "invoke":
            counts[rec["type"]] = counts.get(rec["type"], 0) + 1
        keys.add(rec["value"][0])
    return (f"{sum(counts.values())} ops on {len(keys)} keys "
            f"(ok {counts.get('ok', 0)}, fail {counts.get('fail', 0)}, info {counts.get('info', 0)})")


def info_heavy(seed: int, ops: int = INFO_HEAVY_OPS) -> list[dict]:
    """One key, ``ops`` ops, 40% of the timeouts-prone writes and cas indefinite: the shape of a
    fault run (kill, pause, partition) where the exhaustive search has to carry many pending
    indeterminate ops. Values already reduced to the register's (no key)."""
    h = generate(ops, seed, keys=1, retire=False, rate=50.0, latency_ms=5.0, timeout_p=0.4,
                 partition_every_s=0)
    return [dict(r, value=r["value"][1]) for r in h]


def by_key(history: list[dict]) -> dict:
    """A whole history split per key, values reduced (as check_independent does)."""
    out: dict = {}
    open_key: dict = {}
    for rec in history:
        if rec["type"] == "invoke":
            k = open_key[rec["process"]] = rec["value"][0]
        else:
            k = open_key.pop(rec["process"])
        out.setdefault(k, []).append(dict(rec, value=rec["value"][1]))
    return out


def check_keys(keys: dict, search: str, budget_s: float, *, total: bool) -> tuple:
    """(verdict, CPU seconds, configs, unknown keys, wall seconds). ``total``: the budget (wall
    clock, as the checker's) is shared by all keys in order (check_independent before the
    witness search), else it applies per key."""
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    verdicts, explored, unknown = [], 0, 0
    for k, ops in keys.items():
        left = budget_s - (time.perf_counter() - t0) if total else budget_s
        if left <= 0:
            verdicts.append("unknown")
            unknown += 1
            continue
        r = check_register(ops, time_limit_s=left, search=search, key=k,
                           config_max=OLD_CONFIG_MAX if search == "bfs" else CONFIG_MAX_DEFAULT)
        verdicts.append(r["valid?"])
        explored += r["configs-explored"]
        unknown += r["valid?"] == "unknown"
    verdict = False if False in verdicts else True if all(v is True for v in verdicts) else "unknown"
    return verdict, time.process_time() - cpu0, explored, unknown, time.perf_counter() - t0


def _ratio(old_verdict, old_s: float, new_s: float) -> str:
    text = f"{old_s / max(new_s, 1e-6):,.1f}x"
    return f"{'>=' if old_verdict == 'unknown' else '':>2}{text:>9}"


def _cell(verdict, seconds: float) -> str:
    return f"{str(verdict):>7} {seconds:8.2f} s"


def compare(args) -> None:
    """The side-by-side table: today's search (bfs, one budget for all keys) and the new one
    (competition: witness first, then bfs; a budget per key)."""
    old_s, new_s = args.old_budget_s, args.new_budget_s
    print(f"old = breadth-first search, {old_s:g} s for the whole history; new = witness search "
          f"then breadth-first, {new_s:g} s per key")
    print("times are CPU seconds of this process (the machine may be shared); the budgets and "
          "the wall times shown for the large cases are wall-clock")
    print(f"\n{'case':<44} {'old verdict, time':>18} {'new verdict, time':>18}  speed-up")
    # 1. Info-heavy single-key histories: the slowest ones for the old search.
    t0 = time.perf_counter()
    heavy = [info_heavy(seed) for seed in range(args.heavy_count)]
    gen_s = time.perf_counter() - t0
    rows = []
    old_unknown = new_unknown = 0
    old_total = new_total = 0.0
    for seed, h in enumerate(heavy):
        keys = {0: h}
        ov, ot, oc, _, _ = check_keys(keys, "bfs", old_s, total=True)
        nv, nt, nc, _, _ = check_keys(keys, "competition", new_s, total=False)
        assert ov == "unknown" or ov == nv, (seed, ov, nv)  # a history made valid; both agree
        old_unknown += ov == "unknown"
        new_unknown += nv == "unknown"
        old_total += ot
        new_total += nt
        n_info = sum(r["type"] == "info" for r in h)
        rows.append((ot, seed, n_info, ov, nv, nt, oc, nc))
    for ot, seed, n_info, ov, nv, nt, oc, nc in sorted(rows, reverse=True)[:args.heavy_show]:
        label = f"info-heavy #{seed}: {INFO_HEAVY_OPS} ops, {n_info} info"
        print(f"{label:<44} {_cell(ov, ot)} {_cell(nv, nt)}  {_ratio(ov, ot, nt)}"
              f"   configs {oc:,} -> {nc:,}")
    # 2. 100,000-op histories over 1 and 10 keys with 0%, 1%, 5% indefinite ops.
    for n_keys in (1, 10):
        for info_pct in (0, 1, 5):
            nonread = 0.5  # readers are threads 0..n-1 of each 2n-thread group
            hist = generate(args.big_ops, args.seed, keys=n_keys, retire=False, rate=1000.0,
                            latency_ms=5.0, timeout_p=info_pct / 100 / nonread, fail_p=0.01,
                            partition_every_s=0, all_groups_read=True)
            n_info = sum(r["type"] == "info" for r in hist)
            keys = by_key(hist)
            ov, ot, _, _, ow = check_keys(keys, "bfs", old_s, total=True)
            nv, nt, _, _, nw = check_keys(keys, "competition", new_s, total=False)
            label = (f"{args.big_ops:,} ops, {n_keys} key{'s' if n_keys > 1 else ''}, "
                     f"{info_pct}% info ({n_info:,})")
            print(f"{label:<44} {_cell(ov, ot)} {_cell(nv, nt)}  {_ratio(ov, ot, nt)}"
                  f"   wall {ow:.2f} -> {nw:.2f} s", flush=True)
    # 3. Unknown answers on the fixed set of info-heavy histories (every one has a witness).
    label = f"unknown answers on {len(heavy)} info-heavy histories"
    print(f"{label:<44} {old_unknown:>18} {new_unknown:>18}")
    label = "  time for all of them"
    print(f"{label:<44} {old_total:16.2f} s {new_total:16.2f} s  "
          f"{old_total / max(new_total, 1e-6):8,.0f}x")
    print("(speed-up: old time / new time; '>=' where the old search gave up, so the old time is "
          "only its budget)")
    print(f"(info-heavy histories: {INFO_HEAVY_OPS} ops each, seeds 0..{len(heavy) - 1}, "
          f"generated in {gen_s:.1f} s)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, nargs="*", default=[],
                    help="also time the default search on workload-shaped histories of these "
                         "sizes (the original benchmark; e.g. --ops 10000 100000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keys", type=int, default=1, help="groups of 2n threads (keys at once)")
    ap.add_argument("--node-count", type=int, default=3)
    ap.add_argument("--rate", type=float, default=100.0, help="invocations per second, all clients")
    ap.add_argument("--latency-ms", type=float, default=1.0)
    ap.add_argument("--timeout-p", type=float, default=0.002)
    ap.add_argument("--partition-every-s", type=float, default=30.0, help="0 for no partitions")
    ap.add_argument("--partition-s", type=float, default=10.0)
    ap.add_argument("--time-limit-s", type=float, default=120.0)
    ap.add_argument("--writers", type=int, default=0, help="concurrent writes, pathological key")
    ap.add_argument("--no-compare", action="store_true", help="skip the side-by-side table")
    ap.add_argument("--old-budget-s", type=float, default=60.0,
                    help="the old search's budget for a whole history (default 60, its old default)")
    ap.add_argument("--new-budget-s", type=float, default=60.0,
                    help="the new search's budget per key (default 60)")
    ap.add_argument("--big-ops", type=int, default=100_000, help="ops in the large histories")
    ap.add_argument("--heavy-count", type=int, default=500, help="info-heavy histories")
    ap.add_argument("--heavy-show", type=int, default=5, help="slowest info-heavy rows shown")
    args = ap.parse_args(argv)
    print(f"python {sys.version.split()[0]}, seed {args.seed}")
    if not args.no_compare:
        compare(args)
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
