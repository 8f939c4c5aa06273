#!/usr/bin/env python3
"""The runner's ceiling, old next to new in one run: null-node ops/s and echo-node routed msgs/s.

Owns: the A/B comparison of the runner's engine (Loop + Network + NodeProcess, and the benchmark's
closed-loop clients of bench/driver.py) at two commits. The old side is `git archive REV` unpacked
in a temp dir (default REV: `BASE_REV`, the commit before the runner's speed work), the new side is
this checkout's working tree; both run under this venv's Python, each case in a child process whose
sys.path starts with its tree, so each side imports its own harness. Cases:
- null-1, null-2n, null-sat: bench/driver.py's `run_cell` on 3 null nodes (bench/null_node.py) with
  1, 6 (2n) and 64 clients: ok ops/s and the runner's CPU per completed op (µs);
- null-2n-proc, null-sat-proc: the same with the new tree's clients in a client host process
  (`run_cell(clients_in="process")`, harness/clienthost.py; the old tree has only its loop): CPU
  is the router's plus the client host's, the router's own beside it;
- echo: bench/router_bench.py's `run` on 1 echo node, 64 clients, journal on: routed msgs/s and the
  router's CPU per message (µs); echo-fast: the same with the fixture bench/echo_node.py (orjson,
  replies from byte templates: cheap enough that the router, not the node, is measured), the new
  tree's on both sides;
- runner-2n, runner-sat: the whole runner, `python -m rast_maelstrom.harness test -w lin-kv` (the
  tree's own), on 1 null node with --concurrency 2 (2n) and 32, --rate 1e6 (closed loop),
  --time-limit `--seconds` (at least 1): ok ops in history.jsonl per second of the time limit,
  and the runner process's own CPU per completed op over its main phase (read from /proc when its
  console says the nodes answered init and when it says the run is complete);
- route-cpu: no processes and no syscalls: the tree's Network routes `route_ops` client requests
  to a node stub and the stub's replies (one chunk of 64 lines at a time, as a pipe read hands
  them over) back to 64 clients, which complete them with the workload's `complete_op`: the CPU
  per op of the routing code alone (the rate column is ops per CPU-second).
Rounds alternate old and new case by case (old, new, old, new, ...), so machine load hits both
alike; the report gives the median and the best of the rounds per side, and new ÷ old of each.
On a shared machine the best of the rounds is the figure least disturbed by other load; CPU per
op is the figure least tied to it.

Output: the table on stdout, the raw figures (--json, default bench/results/runner_ceiling.json)
and, with --report (default bench/runner_ceiling.md), the markdown section "Runner ceiling" that
bench/run.py appends to BENCHMARKS.md; `--render JSON [--notes TEXT]` rewrites that section from
the raw figures, with a paragraph of reading.
Bounds: each child runs one case (warm-up + `--seconds`, plus its check) and is killed by PID
after `child_timeout_s`; the temp tree is removed at the end.
May not touch: the harness (composes its public classes through the two benchmark modules).

    .venv/bin/python bench/runner_ceiling.py [--rounds 3] [--seconds 3] [--old REV]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_REV = "715c676"          # main before the runner speed work (issue 14, item 3)
REPORT = ROOT / "bench" / "runner_ceiling.md"
RAW = ROOT / "bench" / "results" / "runner_ceiling.json"
child_timeout_s = 120.0
route_ops = 200_000
rounds_max = 20
CASES = {  # name -> (kind, clients)
    "null-1": ("null", 1),
    "null-2n": ("null", 6),
    "null-sat": ("null", 64),
    "null-2n-proc": ("null-process", 6),   # new: the clients in a client host (old: in the loop)
    "null-sat-proc": ("null-process", 64),
    "echo": ("echo", 64),
    "echo-fast": ("echo-fast", 64),   # the same with bench/echo_node.py (orjson), on both sides
    "runner-2n": ("runner", 2),     # bin/maelstrom-py test, 1 null node, --concurrency 2n
    "runner-sat": ("runner", 32),
    "route-cpu": ("route", 64),     # no processes: the routing and completion code alone
}
TARGETS = {"null-2n": ("ratio", 2.0), "null-sat": ("ratio", 2.0), "echo": ("abs", 150_000),
           "echo-fast": ("abs", 150_000),
           "null-2n-proc": ("ratio", 2.0), "null-sat-proc": ("ratio", 2.0),
           "runner-2n": ("ratio", 2.0), "runner-sat": ("ratio", 2.0)}


def child(tree: Path, case: str, seconds: float) -> dict:
    """Run one case against `tree`'s harness (this process imports only from it)."""
    sys.path.insert(0, str(tree / "bench"))
    sys.path.insert(0, str(tree))
    kind, clients = CASES[case]
    workdir = Path(tempfile.mkdtemp(prefix="rast-ceiling-"))
    try:
        if kind == "route":
            return run_route(clients)
        if kind == "runner":
            return run_runner(tree, clients, seconds, workdir)
        import inspect
        if kind in ("echo", "echo-fast"):
            import router_bench
            kw = {}
            if kind == "echo-fast":   # both sides: this (new) tree's fixture node
                fixture = str(ROOT / "bench" / "echo_node.py")
                router_bench.ECHO = fixture
                if "program" in inspect.signature(router_bench.run).parameters:
                    kw["program"] = fixture
            rate, cpu, _ = router_bench.run(seconds, clients, 1, "echo", True, workdir, **kw)
            return {"rate": rate, "cpu_us": cpu / rate * 1e6}
        from driver import Cluster, System, run_cell
        where = "process" if kind == "null-process" else None
        kw = ({"clients_in": where} if where and "clients_in" in
              inspect.signature(run_cell).parameters else {})
        system = System("null", [sys.executable, str(tree / "bench" / "null_node.py")],
                        routing="by-key")
        cluster = Cluster(system, 3, workdir / "nodes")
        try:
            cluster.start()
            res = run_cell(cluster, clients, seconds, warmup_s=0.3, key_base=0, seed=1,
                           check_time_limit_s=30, **kw)
        finally:
            cluster.stop()
        out = {"rate": res.ok_per_s, "cpu_us": res.driver_cpu_s_per_kop * 1000,
               "linearizable": res.linearizable}
        if getattr(res, "clients_in", "") == "process":   # the router's share of it
            out["router_us"] = res.router_cpu_s_per_kop * 1000
        if getattr(res, "router_time_shares", None):        # on a CPU / waiting for one / asleep
            out["router_time"] = res.router_time_shares
            out["node_runqueue"] = res.node_runqueue_share
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_route(clients: int) -> dict:
    """Route `route_ops` request/reply pairs through the imported tree's Network, no processes."""
    import time
    from rast_maelstrom.harness.eventloop import Loop
    from rast_maelstrom.harness.network import Network
    from rast_maelstrom.harness.workload import complete_op
    loop = Loop()
    net = Network(loop)
    inbox: list[bytes] = []
    net.register_node("n0", inbox.append)
    done = [0]

    def on_reply(src: str, body: dict) -> None:
        complete_op("read", [0, None], body)
        done[0] += 1
    for i in range(clients):
        net.register_client(f"c{i}", on_reply)
    batch = getattr(net, "on_node_lines", None)
    t0 = time.process_time()
    msg_id = 0
    names = [f"c{i}" for i in range(clients)]
    reply = [b'{"src":"n0","dest":"%s","body":{"type":"read_ok","value":1,"in_reply_to":' % c.encode()
             for c in names]
    while done[0] < route_ops:
        lines = []
        for i, client in enumerate(names):
            msg_id += 1
            net.send_body(client, "n0", {"type": "read", "msg_id": msg_id, "key": 0})
            lines.append(reply[i] + b"%d}}" % msg_id)   # what the node stub answers
        assert len(inbox) == clients
        inbox.clear()
        if batch is not None:
            batch("n0", lines)
        else:
            for line in lines:
                net.on_node_line("n0", line)
    cpu = time.process_time() - t0
    loop.close()
    return {"rate": done[0] / cpu, "cpu_us": cpu / done[0] * 1e6}


def run_runner(tree: Path, concurrency: int, seconds: float, workdir: Path) -> dict:
    """One `maelstrom-py test` of `tree` against 1 null node; ok ops per second of its time limit."""
    from driver import proc_cpu_s   # the tree's own (both trees have it)
    node = workdir / "null-node"
    node.write_text(f"#!/bin/sh\nexec {sys.executable} {tree / 'bench' / 'null_node.py'} \"$@\"\n")
    node.chmod(0o755)
    time_limit = max(1, round(seconds))
    cmd = [sys.executable, "-m", "rast_maelstrom.harness", "test", "-w", "lin-kv", "--bin",
           str(node), "--node-count", "1", "--concurrency", str(concurrency), "--rate",
           "1000000", "--time-limit", str(time_limit), "--store", str(workdir / "store")]
    # The runner's own CPU over its main phase: sampled when its console says the nodes answered
    # init (time zero follows at once) and when it says the run is complete (before analysis).
    proc = subprocess.Popen(cmd, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    watchdog = threading.Timer(child_timeout_s - 10, proc.kill)
    watchdog.start()
    marks: dict[str, float] = {}
    tail: list[str] = []
    try:
        for line in proc.stdout:
            tail = (tail + [line])[-5:]
            for mark, text in (("start", "nodes answered init"), ("end", "Run complete:")):
                if text in line and mark not in marks:
                    marks[mark] = proc_cpu_s(proc.pid)
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    history = workdir / "store" / "lin-kv" / "latest" / "history.jsonl"
    if not history.exists():
        raise SystemExit(f"runner exited {proc.returncode} without a history: {''.join(tail)}")
    ops = [json.loads(line) for line in history.read_bytes().splitlines()]
    ok = sum(1 for op in ops if op["type"] == "ok")
    completed = sum(1 for op in ops if op["type"] in ("ok", "fail", "info")
                    and op["process"] != "nemesis")
    out = {"rate": ok / time_limit, "exit": proc.returncode,
           "linearizable": True if proc.returncode == 0 else proc.returncode}
    if len(marks) == 2 and completed:
        out["cpu_us"] = (marks["end"] - marks["start"]) / completed * 1e6
    return out



def run_child(tree: Path, case: str, seconds: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(tree), case,
           "--seconds", str(seconds)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tree)
    try:
        out, err = proc.communicate(timeout=child_timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": f"timed out after {child_timeout_s:.0f} s"}
    if proc.returncode != 0:
        return {"error": err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"}
    return json.loads(out.strip().splitlines()[-1])


def export_tree(rev: str, dest: Path) -> str:
    """Unpack `rev` of this repository into dest; returns its full commit id."""
    commit = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    archive = subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait() != 0:
        raise SystemExit(f"git archive {rev} failed")
    return commit


def summarize(runs: dict, cases: list[str]) -> list[dict]:
    rows = []
    for case in cases:
        row = {"case": case}
        for side in ("old", "new"):
            rates = [r["rate"] for r in runs[side][case] if "rate" in r]
            cpus = [r["cpu_us"] for r in runs[side][case] if "cpu_us" in r]
            routers = [r["router_us"] for r in runs[side][case] if "router_us" in r]
            shares = [r["router_time"] for r in runs[side][case] if "router_time" in r]
            row[side] = {"best": max(rates) if rates else None,
                         "median": statistics.median(rates) if rates else None,
                         "cpu_us": statistics.median(cpus) if cpus else None,
                         "router_us": statistics.median(routers) if routers else None,
                         "router_cpu_share": (statistics.median(x["cpu"] for x in shares)
                                              if shares else None),
                         "router_queue_share": (statistics.median(x["runqueue"] for x in shares)
                                                if shares else None),
                         "errors": [r["error"] for r in runs[side][case] if "error" in r],
                         "not_linearizable": sum(1 for r in runs[side][case]
                                                 if r.get("linearizable") not in (None, True))}
        rows.append(row)
    return rows


def _ratio(new, old) -> str:
    return f"{new / old:.2f} ×" if new and old else "—"


def _fmt(x, unit="") -> str:
    return f"{x:,.0f}{unit}" if x is not None else "—"


def markdown(rows: list[dict], meta: dict) -> str:
    out = ["## Runner ceiling", "",
           f"`python bench/runner_ceiling.py --rounds {meta['rounds']} --seconds {meta['seconds']:g}`"
           f"{meta.get('runs_note', '')} on {meta['date']}: old = `{meta['old'][:10]}` (before the runner speed work), new = "
           f"`{meta['new'][:10]}`{' + uncommitted changes' if meta['dirty'] else ''}; "
           f"{meta['nproc']} CPUs, load average {meta['load'][0]:.2f} → {meta['load_end'][0]:.2f} "
           "(the machine is shared). Rounds alternate old and new case by case. null-*: 3 null "
           "nodes under bench/driver.py (ok ops/s); echo: bench/router_bench.py, 1 echo node, 64 "
           "clients, journal on (routed msgs/s; echo-fast: with the fixture bench/echo_node.py, "
           "orjson, on both sides); runner-*: `maelstrom-py test` itself on 1 null node "
           "(ok ops/s of the time limit, history and jepsen.log included). CPU is the runner process's CPU per completed "
           "op (null) or per routed message (echo), median of the rounds; with the clients in a "
           "client host (*-proc) the router's and the host's together, the router's alone in "
           "brackets. The router's time shares (/proc schedstat, median): on a CPU, and runnable "
           "but waiting for one (the machine was busy); the rest it slept, waiting for IO.", "",
           "| case | old best | new best | new ÷ old (best) | old median | new median | "
           "new ÷ old (median) | runner CPU old → new (µs) | router on a CPU / waiting for one (new) "
           "| target |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in rows:
        o, n = r["old"], r["new"]
        kind, want = TARGETS.get(r["case"], (None, None))
        if kind == "ratio":
            got = n["best"] / o["best"] if n["best"] and o["best"] else 0
            shown = f"{got:.2f}" if round(got, 2) < want else f"{got:.3f}"   # 1.995 is no 2.00
            target = f"≥ {want:g} × old: {'met' if got >= want else f'**missed** ({shown} ×)'}"
        elif kind == "abs":
            best = n["best"] or 0
            target = f"≥ {want:,} msgs/s: " + ("met" if best >= want else
                                                f"**missed** ({best / want:.0%} of it)")
        else:
            target = ""
        cpu = (f"{o['cpu_us']:.1f} → {n['cpu_us']:.1f}" if o["cpu_us"] and n["cpu_us"] else "—")
        if n.get("router_us"):
            cpu += f" ({n['router_us']:.1f} router)"
        share = (f"{n['router_cpu_share']:.0%} / {n['router_queue_share']:.0%}"
                 if n.get("router_cpu_share") is not None else "—")
        out.append(f"| {r['case']} | {_fmt(o['best'])} | {_fmt(n['best'])} | "
                   f"{_ratio(n['best'], o['best'])} | {_fmt(o['median'])} | {_fmt(n['median'])} | "
                   f"{_ratio(n['median'], o['median'])} | {cpu} | {share} | {target} |")
    problems = [f"{r['case']} {side}: {e}" for r in rows for side in ("old", "new")
                for e in r[side]["errors"]]
    problems += [f"{r['case']} {side}: {r[side]['not_linearizable']} cell(s) not linearizable"
                 for r in rows for side in ("old", "new") if r[side]["not_linearizable"]]
    if problems:
        out += ["", "Problems: " + "; ".join(problems)]
    if meta.get("notes"):
        out += ["", meta["notes"].strip()]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=2, metavar=("TREE", "CASE"), help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--old", default=BASE_REV, help=f"the old commit (default {BASE_REV})")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, from "
                                                             + ",".join(CASES))
    ap.add_argument("--report", default=str(REPORT), help="markdown output ('' for none)")
    ap.add_argument("--notes", default="", help="a paragraph appended to the report")
    ap.add_argument("--json", default=str(RAW), help="the raw figures ('' for none)")
    ap.add_argument("--render", metavar="JSON", help="run nothing: write the report from the raw "
                                                     "figures of an earlier run (with --notes)")
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(Path(a.child[0]), a.child[1], a.seconds)))
        return 0
    if a.render:
        data = json.loads(Path(a.render).read_text())
        if a.notes:
            data["meta"]["notes"] = a.notes
        text = markdown(summarize(data["runs"], data["cases"]), data["meta"])
        print(text)
        if a.report:
            Path(a.report).write_text(text)
        return 0
    assert 1 <= a.rounds <= rounds_max, a.rounds
    cases = a.cases.split(",")
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}")
    tmp = Path(tempfile.mkdtemp(prefix="rast-ceiling-old-"))
    try:
        old_commit = export_tree(a.old, tmp)
        new_commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=ROOT, capture_output=True, text=True).stdout.strip())
        meta = {"date": dt.datetime.now().astimezone().isoformat(timespec="minutes"),
                "old": old_commit, "new": new_commit, "dirty": dirty, "rounds": a.rounds,
                "seconds": a.seconds, "nproc": os.cpu_count(), "load": os.getloadavg(),
                "notes": a.notes}
        runs = {side: {c: [] for c in CASES} for side in ("old", "new")}
        for rnd in range(a.rounds):
            for case in cases:
                for side, tree in (("old", tmp), ("new", ROOT)):
                    r = run_child(tree, case, a.seconds)
                    runs[side][case].append(r)
                    print(f"round {rnd + 1} {case:8s} {side}: "
                          + (f"{r['rate']:,.0f}/s" if "rate" in r else r["error"])
                          + (f", {r['cpu_us']:.1f} µs CPU" if "cpu_us" in r else "")
                          + (f" ({r['router_us']:.1f} router)" if "router_us" in r else "")
                          + (" router on-cpu/runqueue/asleep {cpu}/{runqueue}/{asleep}".format(
                              **r["router_time"]) + f", nodes runqueue {r['node_runqueue']}"
                             if "router_time" in r else ""),
                          flush=True)
        meta["load_end"] = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"meta": meta, "cases": cases, "runs": runs},
                                           indent=1) + "\n")
    text = markdown(summarize(runs, cases), meta)
    print("\n" + text)
    if a.report:
        Path(a.report).write_text(text)
        print(f"report: {os.path.relpath(a.report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
