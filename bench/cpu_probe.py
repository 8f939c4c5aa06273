#!/usr/bin/env python3
"""Where a node's CPU per op goes, per role and per thread, in a live cluster (issue 12).

Owns: one cluster of one system (bench/driver.py's Cluster and run_cell: the same router, clients
and checks as `make bench`), measured twice:
- idle: the cluster with no client at all for `--idle-s` (heartbeats and timers only): CPU per
  second per node and thread, wake-ups and syscalls per second;
- loaded: one cell of `--clients` closed-loop clients; over its measured window, per node (role
  from the node's INFO log) and per thread (loop = MainThread, WAL = wal-writer): utime and stime
  (/proc/PID/task/TID/stat), voluntary and involuntary context switches
  (/proc/PID/task/TID/status), and with `perf stat --per-thread` the syscalls by kind
  (syscalls:sys_enter_* tracepoints: counted in the kernel, so the node is not slowed as strace
  slows it), all per completed op.
Loop passes are the loop thread's epoll_wait calls (one per pass); WAL batches its pwrite64
calls, fsyncs its fdatasync calls; stdout writes and wake-pipe writes are told apart by fd
(a `--filter 'fd == 1'` on a second write counter).

Bounds: one cell (warm-up + `--duration-s`), idle `--idle-s`, perf stopped by PID (SIGINT) at the
window's end or killed after its bound; the cluster is stopped by PID (Cluster.stop).
May not touch: the node, the harness (composes bench/driver.py only).

    .venv/bin/python bench/cpu_probe.py --system 'bin/rast' --clients 6 --duration-s 5
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driver import ROOT, CLK_TCK, Cluster, System, run_cell  # noqa: E402

SYSCALLS = ("epoll_wait", "read", "write", "pwrite64", "fdatasync", "futex", "newfstatat",
            "clock_nanosleep", "getpid", "lseek", "select", "poll")
PERF_STOP_S = 5.0
CHECK_TIME_LIMIT_S = 60.0


def threads(pid: int) -> dict[int, dict]:
    """Per thread of `pid`: name, utime/stime in seconds, voluntary/involuntary switches."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{base}/stat", "rb") as f:
                stat = f.read()
            with open(f"{base}/status", "rb") as f:
                status = f.read().decode()
        except OSError:
            continue
        name = stat[stat.index(b"(") + 1:stat.rindex(b")")].decode()
        fields = stat[stat.rindex(b")") + 2:].split()
        vol = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        invol = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        out[int(tid)] = {"name": name, "utime": int(fields[11]) / CLK_TCK,
                         "stime": int(fields[12]) / CLK_TCK, "vol": vol, "invol": invol}
    return out


def thread_role(pid: int, tid: int) -> str:
    """The loop is the main thread (tid == pid); the node's only other thread is the WAL writer
    (Python 3.11 does not name OS threads, so /proc cannot tell them apart by name)."""
    return "loop" if tid == pid else "wal"


class Perf:
    """`perf stat --per-thread` of syscall tracepoints on a set of pids, for one window; with
    `record`, `perf record` (cpu-clock samples with call graphs) into that file instead."""

    def __init__(self, pids: list[int], outdir: Path, record: str | None = None) -> None:
        self.pids, self.outdir, self.record = pids, outdir, record
        self.procs: list[tuple[int, subprocess.Popen, Path]] = []
        self.t0 = self.t1 = 0.0

    def start(self) -> None:
        if not shutil.which("perf"):
            return
        if self.record:
            p = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-g",
                                  "-o", self.record, "-p", ",".join(map(str, self.pids))],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append((0, p, self.outdir / "none"))
            self.t0 = time.monotonic()
            return
        events = []
        for s in SYSCALLS:
            events += ["-e", f"syscalls:sys_enter_{s}"]
        events += ["-e", "syscalls:sys_enter_write", "--filter", "fd == 1"]
        events += ["-e", "context-switches", "-e", "cpu-migrations", "-e", "task-clock"]
        for pid in self.pids:
            out = self.outdir / f"perf-{pid}.csv"
            p = subprocess.Popen(["perf", "stat", "--per-thread", "-x", ";", "-o", str(out),
                                  *events, "-p", str(pid)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append((pid, p, out))
        self.t0 = time.monotonic()

    def stop(self) -> None:
        """End the window: SIGINT every perf (they print their counts as they exit). Waiting for
        them is `collect`'s job, outside the router's loop: perf takes a few hundred ms to exit,
        and a router that waits that long starves the cluster's heartbeats."""
        self.t1 = time.monotonic()
        for _, p, _ in self.procs:
            p.send_signal(signal.SIGINT)

    def running(self) -> bool:
        return any(p.poll() is None for _, p, _ in self.procs)

    def collect(self) -> dict[int, dict[int, dict[str, float]]]:
        result: dict[int, dict[int, dict[str, float]]] = {}
        for pid, p, out in self.procs:
            try:
                p.wait(PERF_STOP_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            per_tid: dict[int, dict[str, float]] = {}
            if not out.exists():
                continue
            for line in out.read_text().splitlines():
                parts = line.split(";")
                if len(parts) < 4 or not parts[0].strip():
                    continue
                m = re.match(r".*-(\d+)$", parts[0].strip())
                if not m:
                    continue
                tid = int(m.group(1))
                try:
                    value = float(parts[1])
                except ValueError:
                    continue
                event = parts[3].split(":")[-1].replace("sys_enter_", "")
                d = per_tid.setdefault(tid, {})
                if event == "write" and "write" in d:
                    event = "write_stdout"  # the second write counter is the filtered one
                d[event] = value
            result[pid] = per_tid
        return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="bin/rast", help="node command (default bin/rast)")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--duration-s", type=float, default=5.0)
    ap.add_argument("--warmup-s", type=float, default=0.5)
    ap.add_argument("--idle-s", type=float, default=5.0)
    ap.add_argument("--no-perf", action="store_true")
    ap.add_argument("--record", help="perf record the loaded window into this file (no perf stat)")
    ap.add_argument("--record-idle", help="perf record the idle window into this file (no perf stat)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the node logs")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    argv = shlex.split(args.system)
    if not Path(argv[0]).is_absolute() and (ROOT / argv[0]).exists():
        argv[0] = str(ROOT / argv[0])
    os.environ["RAST_LOG_LEVEL"] = "INFO"  # role changes in the logs
    work = Path(tempfile.mkdtemp(prefix="cpu_probe-"))
    system = System("probe", argv)
    marks: dict[str, object] = {}

    class ProbeCluster(Cluster):
        def cpu_s(self) -> dict[str, float]:  # called at the window's two edges by run_cell
            edge = "end" if "begin" in marks else "begin"
            marks[edge] = ({p.node_id: threads(p.pid) for p in self.procs}, time.monotonic())
            marks["roles_" + edge] = node_roles(work, self.nodes)
            if perf is not None:
                (perf.start if edge == "begin" else perf.stop)()
            return super().cpu_s()

    cluster = ProbeCluster(system, args.nodes, work, seed=args.seed)
    perf = None
    report: dict = {"system": args.system, "load_start": os.getloadavg()[0]}
    try:
        cluster.start()
        pids = {p.node_id: p.pid for p in cluster.procs}
        # -- idle: no clients at all
        idle_perf = None if args.no_perf else Perf(list(pids.values()), work, args.record_idle)
        t_a = {n: threads(pid) for n, pid in pids.items()}
        w0 = time.monotonic()
        if idle_perf:
            idle_perf.start()
        roles = node_roles(work, cluster.nodes)
        cluster.loop.run_until(lambda: False, cluster.loop.now_ns() + int(args.idle_s * 1e9))
        w1 = time.monotonic()
        t_b = {n: threads(pid) for n, pid in pids.items()}
        idle_counts = {}
        if idle_perf:
            idle_perf.stop()
            cluster.loop.run_until(lambda: not idle_perf.running(),
                                   cluster.loop.now_ns() + int(PERF_STOP_S * 1e9))
            idle_counts = idle_perf.collect()
        if node_roles(work, cluster.nodes) != roles:
            print(f"warning: roles changed while idle: {roles} -> {node_roles(work, cluster.nodes)}")
        report["idle"] = summarize(t_a, t_b, idle_counts, pids, roles, per=w1 - w0,
                                   perf_s=(idle_perf.t1 - idle_perf.t0) if idle_perf else 0)
        report["idle"]["seconds"] = w1 - w0
        # -- loaded: one cell
        perf = None if args.no_perf else Perf(list(pids.values()), work, args.record)
        res = run_cell(cluster, args.clients, args.duration_s, warmup_s=args.warmup_s,
                       key_base=1000, seed=args.seed, check_time_limit_s=CHECK_TIME_LIMIT_S,
                       keep_history=True)
        (t_a, w0), (t_b, w1) = marks["begin"], marks["end"]
        ops = res.ok + res.fail + res.info
        roles = marks["roles_begin"]
        if marks["roles_end"] != roles:
            print(f"warning: roles changed in the window: {roles} -> {marks['roles_end']}")
        report["load"] = summarize(t_a, t_b, perf.collect() if perf else {}, pids, roles, per=ops,
                                   perf_s=(perf.t1 - perf.t0) if perf else 0, window_s=w1 - w0)
        report["load"].update(ok_per_s=round(res.ok_per_s), ops=ops, p50_ms=res.latencies_ms["p50"],
                              node_cpu_s_per_kop=round(res.node_cpu_s_per_kop, 3),
                              srv_msgs_per_op=round(res.server_msgs_per_op, 2),
                              all_msgs_per_op=round(res.all_msgs_per_op, 2),
                              router_cpu_s_per_kop=round(res.router_cpu_s_per_kop, 3),
                              node_runqueue_share=res.node_runqueue_share,
                              linearizable=res.linearizable,
                              latency_split=latency_split(res.history or [], roles))
    finally:
        cluster.stop()
    report["load_end"] = os.getloadavg()[0]
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.keep:
        print(f"node logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def latency_split(history: list[dict], roles: dict[str, str]) -> dict[str, dict]:
    """Latency of completed ops by (op, role of the node the client sent it to), whole cell."""
    start: dict[int, dict] = {}
    groups: dict[str, list[float]] = {}
    for op in history:
        if op["type"] == "invoke":
            start[op["process"]] = op
            continue
        inv = start.pop(op["process"], None)
        if inv is None or op["type"] == "info":
            continue
        key = f"{inv['f']} at {roles.get(inv['node'], '?')}"
        groups.setdefault(key, []).append((op["time"] - inv["time"]) / 1e6)
    out = {}
    for key, lat in sorted(groups.items()):
        lat.sort()
        out[key] = {"n": len(lat), "p50_ms": round(lat[len(lat) // 2], 3),
                    "mean_ms": round(sum(lat) / len(lat), 3)}
    return out


def node_roles(work: Path, nodes: list[str]) -> dict[str, str]:
    roles = {}
    for n in nodes:
        text = (work / f"{n}.log").read_text(errors="replace") if (work / f"{n}.log").exists() else ""
        found = re.findall(r"(leader|follower|pre-candidate|candidate|learner) in term", text)
        roles[n] = found[-1] if found else "follower"
    return roles


def summarize(t_a, t_b, counts, pids, roles, *, per: float, perf_s: float,
              window_s: float | None = None) -> dict:
    """Per node and thread kind: the deltas divided by `per` (ops, or seconds when idle).
    perf's counts cover perf's own window (`perf_s`), scaled to the measured window."""
    out = {}
    for n, pid in pids.items():
        node = {"role": roles[n], "threads": {}}
        scale = ((window_s or per) / perf_s) if perf_s else 0.0
        pc = counts.get(pid, {})
        for tid, b in t_b[n].items():
            a = t_a[n].get(tid)
            if a is None:
                continue
            kind = thread_role(pid, tid)
            row = node["threads"].setdefault(kind, {k: 0.0 for k in ("user_ms", "sys_ms", "vol", "invol")})
            row["user_ms"] += (b["utime"] - a["utime"]) * 1e3 / per
            row["sys_ms"] += (b["stime"] - a["stime"]) * 1e3 / per
            row["vol"] += (b["vol"] - a["vol"]) / per
            row["invol"] += (b["invol"] - a["invol"]) / per
            for event, v in pc.get(tid, {}).items():
                row[event] = row.get(event, 0.0) + v * scale / per
        out[n] = node
    return out


def print_report(r: dict) -> None:
    print(f"system {r['system']}; load average {r['load_start']:.2f} at start, {r['load_end']:.2f} at end")
    for phase, unit in (("idle", "per second"), ("load", "per op")):
        if phase not in r:
            continue
        ph = r[phase]
        if phase == "load":
            print(f"\nloaded: {ph['ok_per_s']} ok ops/s, {ph['ops']} ops in the window, p50 {ph['p50_ms']:.2f} ms, "
                  f"node CPU {ph['node_cpu_s_per_kop']} s/1k ops, srv msgs/op {ph['srv_msgs_per_op']}, "
                  f"router CPU {ph['router_cpu_s_per_kop']} s/1k ops, nodes' runqueue share "
                  f"{ph['node_runqueue_share']}, linearizable {ph['linearizable']}  ({unit})")
        else:
            print(f"\nidle for {ph['seconds']:.1f} s, no clients ({unit})")
        for key, v in ph.get("latency_split", {}).items():
            print(f"  latency {key:>14}: n {v['n']:6d}  p50 {v['p50_ms']:.3f} ms  mean {v['mean_ms']:.3f} ms")
        keys = None
        for n, node in ph.items():
            if not isinstance(node, dict) or "threads" not in node:
                continue
            for kind, row in sorted(node["threads"].items()):
                if keys is None:
                    keys = ["user_ms", "sys_ms", "vol", "invol"] + [
                        k for k in ("task-clock", "context-switches", "cpu-migrations", "epoll_wait", "read", "write",
                                    "write_stdout", "pwrite64", "fdatasync", "futex", "newfstatat")]
                    print("node role thread " + " ".join(f"{k:>10}" for k in keys))
                vals = []
                for k in keys:
                    v = row.get(k, float("nan"))
                    vals.append(f"{v:10.4f}")
                print(f"{n} {node['role']:>8} {kind:>5} " + " ".join(vals))


if __name__ == "__main__":
    sys.exit(main())
