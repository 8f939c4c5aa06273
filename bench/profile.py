#!/usr/bin/env python3
"""Profile one Rast cell: py-spy samples every node while the benchmark driver loads the cluster.

Owns: one Rast cluster (bench/driver.py, the runner's network and process layer), one py-spy
`record` per node PID (raw collapsed stacks), and the report:
the share of samples blocked in system calls (select, condition waits, fdatasync: py-spy's own
idle detection does not drop them here, so they are classified by their leaf frame), then the top
functions by own time (the leaf frame of each running sample) aggregated over all nodes, the top
functions by total time (a function anywhere on a running stack), and each thread's share.
With --driver the benchmark process itself is profiled too (is the runner the limit?).

Bounds: py-spy runs for warm-up + duration + 2 s and is waited on for at most `pyspy_wait_s`
more, then killed by PID; the cluster is stopped by PID in every case.
May not touch: the node's code, the harness, other benchmark files' outputs.

    .venv/bin/python bench/profile.py [--nodes 3] [--clients 64] [--duration-s 5] [-- --no-fsync]
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driver import ROOT, Cluster, System, run_cell  # noqa: E402

log = logging.getLogger("bench.profile")
pyspy_wait_s = 20.0
sample_rate_hz = 200


def find_pyspy() -> str:
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    found = shutil.which("py-spy")
    if not found:
        sys.exit("py-spy not found: .venv/bin/pip install py-spy==0.4.3")
    return found


def parse_raw(path: Path) -> list[tuple[list[str], int]]:
    """py-spy raw output: one 'frame;frame;...;leaf count' per line."""
    stacks = []
    if not path.exists():
        return stacks
    for line in path.read_text(errors="replace").splitlines():
        head, _, count = line.rpartition(" ")
        if not head or not count.isdigit():
            continue
        stacks.append((head.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    """'func (path/to/file.py)' -> 'func (file.py)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    return f"{name} ({os.path.basename(where)})" if where else name


def waiting_kind(leaf: str) -> str | None:
    """Leaf frames that are a thread blocked in a system call (py-spy's idle detection does not
    catch them here), by kind; None for a frame that is running Python."""
    name = leaf.partition(" (")[0]
    if name.endswith("_datasync") or "fsync" in name:
        return "disk sync (fdatasync/fsync)"
    if name.endswith(".select") or name.endswith(".poll") or name in ("select", "poll"):
        return "waiting for IO (select/poll)"
    if name.endswith(".wait") or name.endswith("sleep") or name.endswith(".join"):
        return "waiting on a condition/event/sleep"
    return None


def summarize(per_process: dict[str, list[tuple[list[str], int]]], top: int) -> str:
    waits: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    samples = 0
    lines = []
    for name, stacks in per_process.items():
        n = sum(c for _, c in stacks)
        samples += n
        lines.append(f"  {name}: {n} samples")
        for frames, count in stacks:
            thread = frames[0] if frames and frames[0].startswith("thread") else "?"
            body = frames[1:] if thread != "?" else frames
            if not body:
                continue
            threads[f"{name} {thread}"] += count
            leaf = short(body[-1])
            kind = waiting_kind(leaf)
            if kind is not None:
                waits[kind] += count
                continue
            own[leaf] += count
            for f in {short(x) for x in body}:
                total[f] += count
    if samples == 0:
        return "no samples (is py-spy allowed to ptrace? run as root or set ptrace_scope)"
    running = samples - sum(waits.values())
    out = [f"{samples} samples at {sample_rate_hz} Hz, of which {running} running Python:"]
    out += lines + ["", "blocked in system calls (share of all samples):"]
    for kind, c in waits.most_common():
        out.append(f"  {100 * c / samples:6.1f}  {kind}")
    running = max(running, 1)
    out += ["", f"top {top} functions by OWN time (leaf frame), all processes together, as a "
            "share of the running samples:", f"  {'own %':>6} {'total %':>7}  function (file)"]
    for f, c in own.most_common(top):
        out.append(f"  {100 * c / running:6.1f} {100 * total[f] / running:7.1f}  {f}")
    out += ["", f"top {top} functions by TOTAL time (anywhere on a running stack):"]
    for f, c in total.most_common(top):
        out.append(f"  {100 * c / running:6.1f}  {f}")
    out += ["", "threads by share of samples:"]
    for t, c in threads.most_common(12):
        out.append(f"  {100 * c / samples:6.1f}  {t}")
    return "\n".join(out)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("maelstrom").setLevel(logging.WARNING)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--duration-s", type=float, default=5.0)
    ap.add_argument("--warmup-s", type=float, default=0.5)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--driver", action="store_true", help="also profile the benchmark process")
    ap.add_argument("--bin", default=str(ROOT / "bin" / "rast"), help="the node to profile")
    ap.add_argument("node_args", nargs="*", help="arguments for the node (after --)")
    a = ap.parse_args(argv)
    pyspy = find_pyspy()
    workdir = Path(tempfile.mkdtemp(prefix="rast-profile-"))
    system = System("rast", [a.bin, *a.node_args])
    cluster = Cluster(system, a.nodes, workdir / "nodes")
    spies: dict[str, tuple[subprocess.Popen, Path]] = {}
    try:
        cluster.start()
        targets = {p.node_id: p.pid for p in cluster.procs}
        if a.driver:
            targets["driver"] = os.getpid()
        seconds = int(a.warmup_s + a.duration_s + 2)
        for name, pid in targets.items():
            out = workdir / f"{name}.raw"
            cmd = [pyspy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out),
                   "--duration", str(seconds), "--rate", str(sample_rate_hz), "--nolineno",
                   "--threads"]
            spies[name] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE), out)
        res = run_cell(cluster, a.clients, a.duration_s, warmup_s=a.warmup_s, key_base=0,
                       seed=1, check_time_limit_s=30)
        lat = res.latencies_ms
        print(f"{' '.join(system.argv)} x{a.nodes}, {a.clients} clients, {a.duration_s:g} s: "
              f"{res.ok_per_s:,.0f} ok ops/s ({res.completed_per_s:,.0f} all), p50 "
              f"{lat['p50']:.2f} p99 {lat['p99']:.2f} ms; node CPU share {res.node_cpu_share}; "
              f"driver CPU {res.driver_cpu_s_per_kop:.3f} s/1k ops; linearizable: "
              f"{res.linearizable}")
        print("(py-spy pauses each node briefly per sample and uses CPU itself, so the throughput "
              "above is below an unprofiled run)\n")
    finally:
        for name, (proc, _) in spies.items():
            try:
                proc.wait(timeout=pyspy_wait_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
                log.warning("py-spy for %s did not finish; killed", name)
        cluster.stop()
    per_process = {}
    for name, (proc, out) in spies.items():
        per_process[name] = parse_raw(out)
        if not per_process[name] and proc.stderr is not None:
            print(f"py-spy {name}: {proc.stderr.read().decode(errors='replace')[-400:]}")
    print(summarize(per_process, a.top))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
