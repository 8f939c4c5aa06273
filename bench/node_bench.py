#!/usr/bin/env python3
"""One node on a pipe, no runner: turnaround and CPU per message kind (issue 12, "measure the node
without the runner first").

Owns: one `bin/rast` process (or the null node, the floor), fed over its stdin by this program,
which plays every other party itself — the clients and the peers — and answers the node's peer
messages at once (votes granted, AppendEntries acknowledged, heartbeats echoed), so every figure is
the node's own time plus one pipe hop each way, without the router's scheduling or latency.

Scenarios (each a fresh node, fsync on unless --no-fsync, data dir on the machine's temp disk):
- `leader`: the node is n0 of three; it wins its election against our granted votes, then clients
  send writes and reads. Per op: client request -> first AppendEntries (or read-round heartbeat)
  carrying it out ("to peers"), our acknowledgement in -> client reply out ("ack to reply"),
  and the whole turnaround; at 1, 6 (Maelstrom's 2n for 3 nodes) and 64 ops in flight.
- `follower`: the node is n1; we are the leader n0 and send one AppendEntries of one entry at a
  time (1 in flight): AppendEntries in -> acknowledgement out, after a real fsync; and heartbeat
  in -> heartbeat response out.
- `null`: the null node (bench/null_node.py) under the same client load: the pipe's floor.
Figures: p50/p99 turnaround in ms, ok ops/s, node CPU ms per 1,000 ops (utime+stime from /proc),
node output lines per op.

Bounds: each measurement runs at most `--ops` operations and `--time-s` seconds; every wait for a
node line has a timeout (`reply_timeout_s`); the node is stopped by PID (SIGTERM, then SIGKILL).
May not touch: the node's code (it is driven only through its stdin/stdout), the harness.

    .venv/bin/python bench/node_bench.py [--ops 20000] [--time-s 10] [--only leader,follower,null]
"""
from __future__ import annotations

import argparse
import os
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
NULL = [sys.executable, str(ROOT / "bench" / "null_node.py")]
PEERS = ("n0", "n1", "n2")
reply_timeout_s = 5.0
election_wait_s = 5.0
read_chunk_bytes = 1 << 20
line_bytes_max = 1 << 24
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Pipe:
    """A node process and its JSON-lines stdout, read without blocking."""

    def __init__(self, command: list[str]):
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
        self.out_fd = self.proc.stdout.fileno()
        os.set_blocking(self.out_fd, False)
        self.buf = b""
        self.lines_out = 0

    def send(self, src: str, body: dict, dest: str) -> None:
        self.proc.stdin.write(orjson.dumps({"src": src, "dest": dest, "body": body}) + b"\n")
        self.proc.stdin.flush()

    def send_many(self, msgs: list[bytes]) -> None:
        if msgs:
            self.proc.stdin.write(b"".join(msgs))
            self.proc.stdin.flush()

    def poll(self, timeout_s: float) -> list[dict]:
        """Every complete line available within `timeout_s` (at least one, unless it times out)."""
        ready, _, _ = select.select([self.out_fd], [], [], timeout_s)
        if not ready:
            return []
        try:
            data = os.read(self.out_fd, read_chunk_bytes)
        except BlockingIOError:
            return []
        if not data:
            raise RuntimeError(f"node exited with {self.proc.wait()}")
        self.buf += data
        if len(self.buf) > line_bytes_max:
            raise RuntimeError("node line over the bound")
        *lines, self.buf = self.buf.split(b"\n")
        self.lines_out += len(lines)
        return [orjson.loads(line) for line in lines if line.strip()]

    def cpu_s(self) -> float:
        return proc_cpu_s(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def init(p: Pipe, node_id: str) -> None:
    p.send("c0", {"type": "init", "msg_id": 1, "node_id": node_id, "node_ids": list(PEERS)}, node_id)
    deadline = time.monotonic() + reply_timeout_s
    while time.monotonic() < deadline:
        for m in p.poll(0.1):
            if m["body"].get("type") == "init_ok":
                return
    raise RuntimeError("no init_ok")


class Peers:
    """Answers the node's peer messages at once, as two perfect, instant followers (or voters)."""

    def __init__(self, p: Pipe):
        self.p = p
        self.leader = False
        self.term = 0
        self.seen_ae_entries: list[tuple[float, list]] = []  # (time out, entries) per AppendEntries to n1

    def answer(self, msgs: list[dict], now: float) -> list[dict]:
        """Replies to peer traffic in `msgs`; returns the client replies among them."""
        out, clients = [], []
        for m in msgs:
            b, dest, src = m["body"], m["dest"], m["src"]
            t = b.get("type")
            if dest not in PEERS:
                clients.append(m)
                continue
            if t == "rv":
                self.term = max(self.term, b["term"])
                out.append({"src": dest, "dest": src, "body": {"type": "rvr", "term": b["term"], "g": True,
                                                               "pre": b["pre"]}})
            elif t == "ae":
                self.leader, self.term = True, b["term"]
                if dest == "n1" and b["e"]:
                    self.seen_ae_entries.append((now, b["e"]))
                out.append({"src": dest, "dest": src, "body": {"type": "aer", "term": b["term"], "ok": True,
                                                               "m": b["pi"] + len(b["e"])}})
            elif t == "hb":
                self.leader, self.term = True, b["term"]
                out.append({"src": dest, "dest": src, "body": {"type": "hbr", "term": b["term"], "rs": b["rs"]}})
        self.p.send_many([orjson.dumps(m) + b"\n" for m in out])
        return clients


def _q(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def client_load(p: Pipe, peers: Peers | None, dest: str, in_flight: int, ops_max: int, time_s: float,
                read_share: float) -> dict:
    """Keep `in_flight` ops outstanding (writes of unique values, and reads) until `ops_max` or
    `time_s`; returns the figures."""
    sent: dict[int, tuple[float, str]] = {}
    lat: dict[str, list[float]] = {"write": [], "read": []}
    errors = 0
    next_id = 100
    done = 0
    issued = 0
    lines0 = p.lines_out
    cpu0, t0 = p.cpu_s(), time.perf_counter()
    deadline = t0 + time_s

    def issue(n: int) -> None:
        nonlocal next_id, issued
        batch = []
        for _ in range(n):
            if issued >= ops_max:
                break
            next_id += 1
            issued += 1
            kind = "read" if (next_id % 100) < read_share * 100 else "write"
            body = ({"type": "read", "msg_id": next_id, "key": next_id % 16} if kind == "read" else
                    {"type": "write", "msg_id": next_id, "key": next_id % 16, "value": next_id})
            sent[next_id] = (time.perf_counter(), kind)
            batch.append(orjson.dumps({"src": f"c{next_id % in_flight + 10}", "dest": dest, "body": body}) + b"\n")
        p.send_many(batch)

    issue(in_flight)
    while sent and time.perf_counter() < deadline:
        msgs = p.poll(reply_timeout_s)
        now = time.perf_counter()
        if not msgs and p.buf == b"":
            raise RuntimeError(f"no output for {reply_timeout_s} s with {len(sent)} ops in flight")
        replies = peers.answer(msgs, now) if peers else msgs
        finished = 0
        for m in replies:
            b = m["body"]
            started = sent.pop(b.get("in_reply_to"), None)
            if started is None:
                continue
            finished += 1
            if b["type"] == "error":
                errors += 1
            else:
                lat[started[1]].append(now - started[0])
        done += finished
        issue(finished)
    wall = time.perf_counter() - t0
    cpu = p.cpu_s() - cpu0
    ok = len(lat["write"]) + len(lat["read"])
    return {"ops": done, "ok": ok, "errors": errors, "ok_per_s": ok / wall if wall else 0.0,
            "cpu_ms_per_1k": 1e6 * cpu / max(1, done), "lines_per_op": (p.lines_out - lines0) / max(1, done),
            "write_p50_ms": 1e3 * _q(lat["write"], 0.5), "write_p99_ms": 1e3 * _q(lat["write"], 0.99),
            "read_p50_ms": 1e3 * _q(lat["read"], 0.5), "read_p99_ms": 1e3 * _q(lat["read"], 0.99)}


def phases_at_one(p: Pipe, peers: Peers, ops_max: int, time_s: float) -> dict:
    """One op at a time, split into its two halves: request -> first message to peers carrying it,
    and our instant acknowledgement -> the client's reply."""
    to_peers = {"write": [], "read": []}
    ack_to_reply = {"write": [], "read": []}
    deadline = time.perf_counter() + time_s
    for i in range(ops_max):
        if time.perf_counter() > deadline:
            break
        kind = "read" if i % 2 else "write"
        msg_id = 10_000_000 + i
        body = ({"type": "read", "msg_id": msg_id, "key": 1} if kind == "read" else
                {"type": "write", "msg_id": msg_id, "key": 1, "value": msg_id})
        t_req = time.perf_counter()
        p.send("c1", body, "n0")
        t_peers = t_ack = None
        while True:
            msgs = p.poll(reply_timeout_s)
            now = time.perf_counter()
            if not msgs and p.buf == b"":
                raise RuntimeError("timed out waiting for the node")
            for m in msgs:
                b = m["body"]
                if t_peers is None and m["dest"] == "n1" and (
                        (kind == "write" and b.get("type") == "ae" and b["e"]) or
                        (kind == "read" and b.get("type") == "hb")):
                    t_peers = now
            replies = peers.answer(msgs, now)
            if t_peers is not None and t_ack is None:
                t_ack = time.perf_counter()  # our answers to that message were just written
            if any(m["body"].get("in_reply_to") == msg_id for m in replies):
                break
        to_peers[kind].append(t_peers - t_req)
        ack_to_reply[kind].append(now - t_ack)
    return {f"{k}_to_peers_p50_ms": 1e3 * _q(v, 0.5) for k, v in to_peers.items()} | \
           {f"{k}_ack_to_reply_p50_ms": 1e3 * _q(v, 0.5) for k, v in ack_to_reply.items()}


def leader_scenario(args: argparse.Namespace, node_args: list[str]) -> dict:
    data = tempfile.mkdtemp(prefix="rast-nodebench-")
    p = Pipe([RAST, "--data-dir", data, *node_args])
    try:
        init(p, "n0")
        peers = Peers(p)
        deadline = time.monotonic() + election_wait_s
        while not peers.leader:
            if time.monotonic() > deadline:
                raise RuntimeError("the node did not become leader")
            peers.answer(p.poll(0.05), time.perf_counter())
        # Settle: the noop committed, both followers matched.
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            peers.answer(p.poll(0.02), time.perf_counter())
        out = {"phases": phases_at_one(p, peers, min(args.ops, 1000), args.time_s)}
        for in_flight in (1, 6, 64):
            out[f"load_{in_flight}"] = client_load(p, peers, "n0", in_flight, args.ops, args.time_s, 0.5)
        return out
    finally:
        p.stop()
        shutil.rmtree(data, ignore_errors=True)


def await_type(p: Pipe, type_: str) -> float:
    """Seconds until the node writes a message of `type_` (just after a send)."""
    t0 = time.perf_counter()
    while True:
        msgs = p.poll(reply_timeout_s)
        if not msgs and p.buf == b"":
            raise RuntimeError(f"no {type_} from the node within {reply_timeout_s} s")
        if any(m["body"].get("type") == type_ for m in msgs):
            return time.perf_counter() - t0


def follower_scenario(args: argparse.Namespace, node_args: list[str]) -> dict:
    data = tempfile.mkdtemp(prefix="rast-nodebench-")
    p = Pipe([RAST, "--data-dir", data, *node_args])
    try:
        init(p, "n1")
        ae_lat, hb_lat = [], []
        cpu0 = p.cpu_s()
        deadline = time.perf_counter() + args.time_s
        index = 0
        n = 0
        for i in range(args.ops):
            if time.perf_counter() > deadline:
                break
            entry = orjson.Fragment(b'[1,["w",%d,%d]]' % (i % 16, i))
            p.send("n0", {"type": "ae", "term": 1, "pi": index, "pt": 1 if index else 0, "c": index,
                          "e": [entry]}, "n1")
            ae_lat.append(await_type(p, "aer"))
            index += 1
            p.send("n0", {"type": "hb", "term": 1, "c": index, "rs": i + 1}, "n1")
            hb_lat.append(await_type(p, "hbr"))
            n += 2
        cpu = p.cpu_s() - cpu0
        return {"messages": n, "ae_to_ack_p50_ms": 1e3 * _q(ae_lat, 0.5), "ae_to_ack_p99_ms": 1e3 * _q(ae_lat, 0.99),
                "hb_to_hbr_p50_ms": 1e3 * _q(hb_lat, 0.5), "hb_to_hbr_p99_ms": 1e3 * _q(hb_lat, 0.99),
                "cpu_ms_per_1k_msgs": 1e6 * cpu / max(1, n)}
    finally:
        p.stop()
        shutil.rmtree(data, ignore_errors=True)


def null_scenario(args: argparse.Namespace) -> dict:
    p = Pipe(NULL)
    try:
        init(p, "n0")
        return {f"load_{k}": client_load(p, None, "n0", k, args.ops, args.time_s, 0.5) for k in (1, 6, 64)}
    finally:
        p.stop()


def _fmt(v: float) -> str:
    return f"{v:,.3f}" if v < 10 else f"{v:,.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=20000, help="operations per measurement (bound)")
    ap.add_argument("--time-s", type=float, default=10.0, help="seconds per measurement (bound)")
    ap.add_argument("--only", default="null,leader,follower")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--rast", help="the node launcher to measure (default: this "
                                                 "checkout's bin/rast; another build for an A/B)")
    ap.add_argument("node_args", nargs="*", help="extra arguments for bin/rast (after --)")
    args = ap.parse_args()
    global RAST
    RAST = args.rast or RAST
    only = set(args.only.split(","))
    results: dict[str, dict] = {}
    print(f"node_bench {time.strftime('%Y-%m-%d %H:%M:%S')} on {os.cpu_count()} cores; node args {args.node_args}")
    if "null" in only:
        results["null"] = null_scenario(args)
    if "leader" in only:
        results["leader"] = leader_scenario(args, args.node_args)
    if "follower" in only:
        results["follower"] = follower_scenario(args, args.node_args)

    loads = [k for k in ("load_1", "load_6", "load_64")]
    cols = ("ok_per_s", "write_p50_ms", "write_p99_ms", "read_p50_ms", "read_p99_ms", "cpu_ms_per_1k", "lines_per_op")
    print("\nclient load (50% reads), one node on a pipe, peers answering at once:")
    print(f"{'system':8} {'in flight':>9} " + " ".join(f"{c:>14}" for c in cols))
    for system in ("null", "leader"):
        for load in loads:
            r = results.get(system, {}).get(load)
            if r:
                print(f"{system:8} {load[5:]:>9} " + " ".join(f"{_fmt(r[c]):>14}" for c in cols))
    if "null" in results and "leader" in results:
        print("\nrast leader / null at the same load:")
        for load in loads:
            a, b = results["leader"][load], results["null"][load]
            # /proc counts CPU in clock ticks: a figure under ~3 ticks per run is not a ratio's base.
            cpu = (f"x{a['cpu_ms_per_1k'] / b['cpu_ms_per_1k']:.1f}"
                   if b["cpu_ms_per_1k"] * b["ops"] / 1e6 >= 3 / CLK_TCK else "n/a (null under 3 ticks)")
            print(f"  {load[5:]:>3} in flight: ok ops/s x{a['ok_per_s'] / b['ok_per_s']:.2f}, "
                  f"write p50 x{a['write_p50_ms'] / b['write_p50_ms']:.1f}, CPU per op {cpu}")
    if "leader" in results:
        ph = results["leader"]["phases"]
        print("\nleader, one op at a time (p50 ms): write request -> AppendEntries out "
              f"{_fmt(ph['write_to_peers_p50_ms'])}, ack -> write_ok {_fmt(ph['write_ack_to_reply_p50_ms'])}; "
              f"read request -> heartbeat out {_fmt(ph['read_to_peers_p50_ms'])}, "
              f"ack -> read_ok {_fmt(ph['read_ack_to_reply_p50_ms'])}")
    if "follower" in results:
        f = results["follower"]
        print(f"follower (p50/p99 ms): AppendEntries(1 entry) -> ack, after fsync {_fmt(f['ae_to_ack_p50_ms'])}"
              f"/{_fmt(f['ae_to_ack_p99_ms'])}; heartbeat -> response {_fmt(f['hb_to_hbr_p50_ms'])}"
              f"/{_fmt(f['hb_to_hbr_p99_ms'])}; CPU {_fmt(f['cpu_ms_per_1k_msgs'])} ms per 1,000 messages")
    if args.json:
        Path(args.json).write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
