"""The benchmark's cluster and closed-loop client driver, built on the runner's own engine.

Owns:
- `System`: how to start one kind of Maelstrom node (argv, how clients are routed to nodes).
- `Cluster`: n node processes driven through the runner's `Loop`, `Network` and `NodeProcess`
  (the same process hop, pipes and routing as `bin/maelstrom-py test`), started, sent `init`, and
  waited on until every node has served a write (so a leader exists and every node reaches it).
  It reads each node's CPU time (utime + stime, /proc/<pid>/stat) and peak RSS (VmHWM,
  /proc/<pid>/status), and stops every process by PID.
- `run_cell`: one measurement on a running cluster: N closed-loop clients (each one request in
  flight; the next op is sent the moment the previous one completes), a lin-kv-like mix (50% read,
  17% write, 33% cas; values 0-4), a warm-up, then a fixed window in which ok ops, latencies,
  network message counts and CPU are measured (costs are per completed op: ok, fail or info); then the in-flight ops drain and the whole history
  (contract format) is checked with `check_independent`, in a forked child while the loop keeps
  routing the cluster's own traffic: a runner that stopped for the seconds a check takes would
  starve the leader's check-quorum and start the next cell in an election (the error-11 storms of
  the first round were that, not load; so is a cyclic-GC pause of this process, which is why the
  collector is off while a cluster runs).
- where the clients run (`clients_in`): "loop" (the default), in the router's own loop, as
  `maelstrom-py test` runs its workload; or "process", in a client host (`driver.py
  --client-host`, harness/clienthost.py): the same client code (`_ClientHalf`) and spec, so the
  same ops per client, on another core, its messages routed by the cluster's network exactly as
  in-loop sends are (ids, zero latency, partitions, counts). The router takes its window
  snapshots (network counts, node CPU) at the host's window times (one monotonic clock for the
  machine); the host sends back its history and figures in a file. The driver's CPU is then the
  router's plus the host's (both reported). On 2 shared cores it was not faster (see
  bench/runner_ceiling.md), hence not the default.

Keys and routing: clients share a key in groups of 2n, as in lin-kv, but at most
`clients_per_key_max` (6) per key: at tens of thousands of ops/s, 10 clients on one key (2n at 5
nodes) make the linearizability search too slow to finish. Every cell uses fresh keys, so a cell's
history is complete for its keys. With "spread" routing each client sends op j to node (i + j) mod n: every
node serves clients and the single-client cell sees leader and followers alike, so a figure does
not depend on which node won the election. With "by-key" routing (the null node, whose nodes
share nothing) every op on key k goes to node k mod n.

Invariants: at most one op in flight per client; every op gets a completion (reply, or the
client timeout of `client_timeout_ms`); every loop is bounded in time; every process started is
killed in `Cluster.stop` (also on errors).
May not touch: the harness's internals (it composes the harness's public classes only), anything
outside its temp dir and its own processes.
"""
from __future__ import annotations

import collections
import functools
import gc
import logging
import multiprocessing
import operator
import os
import random
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rast_maelstrom.harness.clienthost import ClientHost, RemoteNetwork  # noqa: E402
from rast_maelstrom.harness.eventloop import Loop  # noqa: E402
from rast_maelstrom.harness.linearizability import check_independent  # noqa: E402
from rast_maelstrom.harness.network import Network  # noqa: E402
from rast_maelstrom.harness.process import NodeProcess, connect_to_network  # noqa: E402
from rast_maelstrom.harness.workload import complete_op  # noqa: E402

log = logging.getLogger("bench.driver")

client_timeout_ms = 1000          # as the runner's default: max(10 x latency, 1000)
init_timeout_s = 10.0
ready_timeout_s = 30.0
ready_retry_ms = 50
drain_slack_s = 2.0
deadline_slack_ms = 10          # a timed-out op completes at most this late (one timer, not one a pass)
check_slack_s = 30.0              # the forked check's bound beyond its own time limit
check_poll_ms = 5                 # how often the loop looks for the check's verdict
value_max = 4
clients_max = 4096
clients_per_key_max = 6           # = 2n at 3 nodes; more makes the checker's search explode
history_ops_max = 5_000_000       # a cell stops issuing (and says so) beyond this many records
port_search_tries_max = 200
CLIENTS_IN = "loop"               # where a cell's clients run by default: "loop" or "process"
client_host_exit_slack_s = 10.0   # the client host's bound beyond its cell's own time
CLK_TCK = os.sysconf("SC_CLK_TCK")

READ_SHARE = 0.50
WRITE_SHARE = 0.17                # cas takes the rest (0.33)


@dataclass
class System:
    name: str
    argv: list[str]                # "{base_port}" is replaced by a free loopback port base
    routing: str = "spread"        # "spread" | "by-key"
    notes: str = ""

    def command(self, base_port: int | None) -> list[str]:
        return [a.replace("{base_port}", str(base_port)) for a in self.argv]

    @property
    def needs_ports(self) -> bool:
        return any("{base_port}" in a for a in self.argv)


def free_port_base(count: int, rng: random.Random) -> int:
    """A base port p such that p .. p+count-1 are all bindable on 127.0.0.1 right now."""
    for _ in range(port_search_tries_max):
        base = rng.randrange(20000, 60000 - count)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {count} free consecutive loopback ports found")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def sched_ns(pid: int | str = "self") -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for a CPU) of a process's main thread, from
    /proc/<pid>/schedstat: the rest of the wall time it slept (blocked on IO or a timer)."""
    with open(f"/proc/{pid}/schedstat", "rb") as f:
        run, wait, _ = f.read().split()
    return int(run), int(wait)


def proc_hwm_kb(pid: int) -> int:
    """Peak resident set size (VmHWM) of a process, in kB."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1])
    return 0


class ClusterError(Exception):
    """The cluster could not be started or did not become ready."""


class Cluster:
    """n nodes of one system under the runner's loop, network and process layer."""

    def __init__(self, system: System, node_count: int, workdir: Path, seed: int = 0):
        self.system = system
        self.nodes = [f"n{i}" for i in range(node_count)]
        self.workdir = workdir
        self.rng = random.Random(f"{seed}:{system.name}:{node_count}")
        self.loop = Loop()
        self.network = Network(self.loop)
        self.procs: list[NodeProcess] = []
        self.next_client = 0
        self.base_port: int | None = None

    def client_id(self) -> str:
        self.next_client += 1
        return f"c{self.next_client}"

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> float:
        """Start, init and wait until every node served a write. Returns seconds to ready."""
        t0 = time.monotonic()
        # While a cluster runs, this process is its network: a cyclic-GC pass over a cell's history
        # (a full collection took 200-900 ms here under load) stops all routing for longer than an
        # election timeout, and the leader rightly loses its quorum. Nothing here needs the cycle
        # collector for the few minutes a cluster lives (histories are freed by reference counting),
        # so it runs between clusters only (`stop`).
        gc.disable()
        if self.system.needs_ports:
            self.base_port = free_port_base(len(self.nodes), self.rng)
        command = self.system.command(self.base_port)
        self.workdir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            proc = NodeProcess(self.loop, node, command, self.workdir / f"{node}.log")
            self.procs.append(proc)
        connect_to_network(self.loop, self.network, self.procs)
        for proc in self.procs:
            proc.start()
        self._init()
        self._wait_ready()
        return time.monotonic() - t0

    def _init(self) -> None:
        replies: dict[str, dict] = {}
        clients = []
        for node in self.nodes:
            cid = self.client_id()
            clients.append(cid)
            self.network.register_client(
                cid, lambda src, body, node=node: replies.setdefault(node, body))
            self.network.send_body(cid, node, {"type": "init", "msg_id": 1, "node_id": node,
                                               "node_ids": list(self.nodes)})
        self.loop.run_until(lambda: len(replies) == len(self.nodes) or self.any_exited(),
                            self.loop.now_ns() + int(init_timeout_s * 1e9))
        for cid in clients:
            self.network.unregister(cid)
        for node in self.nodes:
            body = replies.get(node)
            if body is None or body.get("type") != "init_ok":
                raise ClusterError(f"{self.system.name}: node {node} did not answer init "
                                   f"(got {body}); see {self.workdir}/{node}.log")

    def _wait_ready(self) -> None:
        """Every node must serve one write (through the leader) before measuring."""
        pending = set(self.nodes)
        state: dict[str, Any] = {}
        cid = self.client_id()
        msg_id = [0]
        awaiting: dict[int, str] = {}

        def send(node: str) -> None:
            msg_id[0] += 1
            awaiting[msg_id[0]] = node
            self.network.send_body(cid, node, {"type": "write", "msg_id": msg_id[0],
                                               "key": "bench-ready", "value": 0})
            self.loop.call_later(client_timeout_ms * 1_000_000, lambda m=msg_id[0]: retry(m))

        def retry(m: int) -> None:
            node = awaiting.pop(m, None)
            if node is not None and node in pending:
                send(node)

        def on_reply(src: str, body: dict) -> None:
            node = awaiting.pop(body.get("in_reply_to"), None)
            if node is None:
                return
            if body.get("type") == "write_ok":
                pending.discard(node)
            else:
                state["last_error"] = body
                self.loop.call_later(ready_retry_ms * 1_000_000, lambda: send(node))

        self.network.register_client(cid, on_reply)
        for node in self.nodes:
            send(node)
        ok = self.loop.run_until(lambda: not pending or self.any_exited(),
                                 self.loop.now_ns() + int(ready_timeout_s * 1e9))
        self.network.unregister(cid)
        if not ok or pending:
            raise ClusterError(f"{self.system.name}: nodes {sorted(pending)} did not serve a "
                               f"write within {ready_timeout_s:.0f} s (last error "
                               f"{state.get('last_error')}); logs in {self.workdir}")

    def any_exited(self) -> bool:
        return any(p.exit_status() is not None for p in self.procs)

    def exited(self) -> list[str]:
        return [p.node_id for p in self.procs if p.exit_status() is not None]

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def cpu_s(self) -> dict[str, float]:
        out = {}
        for p in self.procs:
            try:
                out[p.node_id] = proc_cpu_s(p.pid)
            except (OSError, ValueError):
                out[p.node_id] = float("nan")
        return out

    def hwm_mb(self) -> dict[str, float]:
        out = {}
        for p in self.procs:
            try:
                out[p.node_id] = proc_hwm_kb(p.pid) / 1024
            except OSError:
                out[p.node_id] = float("nan")
        return out

    def stop(self) -> None:
        """SIGKILL every node by PID and wait for it; close pipes and the loop."""
        for p in self.procs:
            try:
                p.kill()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("could not kill %s", p.node_id)
            p.drain_stderr()
            p.close()
        self.loop.close()
        gc.enable()
        gc.collect()


# -- one measurement ------------------------------------------------------------------------------
@dataclass(slots=True)
class _Client:
    index: int
    client_id: str
    key: Any
    process: int
    rng: random.Random
    ops: int = 0
    msg_id: int = 0
    awaiting: int | None = None
    op: tuple | None = None
    node: str = ""
    sent_ns: int = 0
    key_json: bytes = b""


@dataclass
class CellResult:
    clients: int
    duration_s: float
    ok: int = 0
    fail: int = 0
    info: int = 0
    ok_per_s: float = 0.0
    completed_per_s: float = 0.0
    latencies_ms: dict = field(default_factory=dict)
    server_msgs_per_op: float = 0.0
    all_msgs_per_op: float = 0.0
    node_cpu_s_per_kop: float = 0.0
    node_cpu_share: dict = field(default_factory=dict)
    driver_cpu_s_per_kop: float = 0.0     # router + clients
    router_cpu_s_per_kop: float = 0.0     # this process (the router; with the clients, in "loop")
    # shares of the window the router's thread spent on a CPU, waiting for one (runnable: the
    # machine was busy) and asleep (waiting for IO); and the nodes' summed wait for a CPU
    router_time_shares: dict = field(default_factory=dict)
    node_runqueue_share: float = 0.0
    clients_cpu_s_per_kop: float = 0.0    # the client host process ("process"; 0 in "loop")
    clients_in: str = ""
    peak_rss_mb: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    history_ops: int = 0
    keys: int = 0
    linearizable: Any = None
    check_s: float = 0.0
    failures: list = field(default_factory=list)
    explanation: str = ""
    history: list | None = None


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class _ClientHalf:
    """The client half of a cell: closed-loop clients, their history and the window's figures.

    Runs wherever `network` is: in the router's loop (`network` is the cluster's Network) or in a
    client host process (a RemoteNetwork, see `clients_in`); the same code and the same spec give
    the same op sequence per client. `spec` is JSON: clients as [index, id, key, process, seed],
    nodes, by_key, timeout_ms, warmup_s, duration_s; `t0_ns` is when the cell starts (the window
    is [t0 + warmup, t0 + warmup + duration]); `on_window(edge)` is called at "begin" and "end"."""

    def __init__(self, loop: Loop, network: Any, spec: dict, t0_ns: int,
                 on_window: Any = None):
        self.loop = loop
        self.network = network
        self.spec = spec
        self.t0_ns = t0_ns
        self.on_window = on_window
        # the records as flat tuples (see `history_dicts`): (type, time, process, f, value, node)
        # for an invoke, (type, time, process, f, value, node, error, exception) for a completion
        self.history: list[tuple] = []
        self.deadlines: collections.deque = collections.deque()
        self.head_timer: list = [None]
        self.lat_ns: list[int] = []
        self.errors: dict[str, int] = {}
        self.counts = {"ok": 0, "fail": 0, "info": 0}
        self.state = {"issuing": True, "measuring": False, "t_start": 0, "t_end": 0}
        self.cs = [_Client(index=i, client_id=cid, key=key, process=proc, rng=random.Random(s),
                           key_json=orjson.dumps(key))
                   for i, cid, key, proc, s in spec["clients"]]

    def start(self) -> None:
        loop, network, spec = self.loop, self.network, self.spec
        nodes = spec["nodes"]
        n = len(nodes)
        by_key = spec["by_key"]
        clients = len(self.cs)
        history = self.history
        state = self.state
        counts = self.counts
        errors = self.errors
        lat_ns = self.lat_ns
        timeout_ns = spec["timeout_ms"] * 1_000_000
        zero_ns = self.t0_ns
        now_ns = loop.now_ns
        send_json = getattr(network, "send_json", None)
        # The values: random.randint(0, value_max) without its three Python frames (the same
        # draws: randrange's rejection sampling of getrandbits, as in random._randbelow).
        value_span = value_max + 1
        value_bits = value_span.bit_length()
        # Client timeouts: every op's deadline is its send time + the same timeout, so the
        # deadlines arrive in order and one FIFO (with one loop timer, at its head's deadline)
        # replaces a timer per op. An entry is (deadline, client, msg_id); a completed op's entry
        # is skipped when it comes due. At most one entry per op issued in the last timeout
        # (bounded by `history_ops_max`, as the history is).
        deadlines: collections.deque = self.deadlines
        deadline_slack_ns = deadline_slack_ms * 1_000_000
        head_timer = self.head_timer

        def issue(c: _Client, now: int) -> None:
            if not state["issuing"] or len(history) >= history_ops_max:
                return
            rng = c.rng
            r = rng.random()
            node = nodes[c.key % n] if by_key else nodes[(c.index + c.ops) % n]
            c.ops += 1
            c.msg_id = msg_id = c.msg_id + 1
            c.awaiting = msg_id
            if r < READ_SHARE:
                f, value = "read", [c.key, None]
                body = b'{"type":"read","msg_id":%d,"key":%s}' % (msg_id, c.key_json)
            else:
                bits = rng.getrandbits
                v = bits(value_bits)
                while v >= value_span:
                    v = bits(value_bits)
                if r < READ_SHARE + WRITE_SHARE:
                    f, value = "write", [c.key, v]
                    body = b'{"type":"write","msg_id":%d,"key":%s,"value":%d}' % (
                        msg_id, c.key_json, v)
                else:
                    w = bits(value_bits)
                    while w >= value_span:
                        w = bits(value_bits)
                    f, value = "cas", [c.key, [v, w]]
                    body = b'{"type":"cas","msg_id":%d,"key":%s,"from":%d,"to":%d}' % (
                        msg_id, c.key_json, v, w)
            c.op = (f, value)
            c.node = node
            history.append(("invoke", now - zero_ns, c.process, f, value, node))
            c.sent_ns = now
            deadline = now + timeout_ns
            deadlines.append((deadline, c, msg_id))
            if head_timer[0] is None:
                head_timer[0] = loop.call_at(deadline, on_deadlines)
            if send_json is not None:
                send_json(c.client_id, node, body)
            else:   # a client host's RemoteNetwork
                network.send_body(c.client_id, node, orjson.loads(body))

        def on_reply(c: _Client, src: str | None, body: dict | None) -> None:
            """A reply for `c` (or, with body None, its op's timeout): complete the op, issue the
            next."""
            if c.op is None:
                return
            if body is not None:
                irt = body.get("in_reply_to") if type(body) is dict else None
                if irt is None or irt != c.awaiting:
                    return
            now = now_ns()
            f, value = c.op
            outcome = complete_op(f, value, body)
            kind = outcome["type"]
            history.append((kind, now - zero_ns, c.process, f, outcome["value"], c.node,
                            outcome.get("error"), outcome.get("exception")))
            if state["measuring"] and state["t_start"] <= now <= state["t_end"]:
                counts[kind] += 1
                if kind == "ok":
                    lat_ns.append(now - c.sent_ns)
                else:
                    err = outcome.get("error")
                    name = err[0] if isinstance(err, list) else str(err)
                    errors[name] = errors.get(name, 0) + 1
            if kind == "info":
                c.process += clients
            c.op = None
            c.awaiting = None
            issue(c, now)

        def on_deadlines() -> None:
            head_timer[0] = None
            now = now_ns()
            while deadlines and deadlines[0][0] <= now:
                _, c, msg_id = deadlines.popleft()
                if c.awaiting == msg_id:
                    on_reply(c, None, None)
            if deadlines and head_timer[0] is None:
                # at most one timer per `deadline_slack_ms`: ops complete long before their
                # deadline, so an exact re-arm fired (and found nothing due) about once a pass
                head_timer[0] = loop.call_at(max(deadlines[0][0], now + deadline_slack_ns),
                                             on_deadlines)

        for c in self.cs:
            network.register_client(c.client_id, functools.partial(on_reply, c))
        t0 = self.t0_ns
        loop.call_at(t0 + int(spec["warmup_s"] * 1e9), self.begin_window)
        loop.call_at(t0 + int((spec["warmup_s"] + spec["duration_s"]) * 1e9), self.end_window)
        now = now_ns()
        for c in self.cs:
            issue(c, now)

    def begin_window(self) -> None:
        st = self.state
        st["measuring"] = True
        st["t_start"] = self.loop.now_ns()
        st["t_end"] = st["t_start"] + int(self.spec["duration_s"] * 1e9)
        st["cpu"] = time.process_time()
        if self.on_window is not None:
            self.on_window("begin")

    def end_window(self) -> None:
        st = self.state
        st["t2"] = self.loop.now_ns()
        st["cpu2"] = time.process_time()
        st["issuing"] = False
        if self.on_window is not None:
            self.on_window("end")

    def ended(self) -> bool:
        return "t2" in self.state

    def idle(self) -> bool:
        return all(c.op is None for c in self.cs)

    def finish(self, stop: Any = lambda: False) -> dict:
        """Run until the window ended (or `stop()`), let in-flight ops complete; the figures."""
        loop, spec, st = self.loop, self.spec, self.state
        timeout_ns = spec["timeout_ms"] * 1_000_000
        end_ns = self.t0_ns + int((spec["warmup_s"] + spec["duration_s"]) * 1e9)
        loop.run_until(lambda: "t2" in st or stop(), end_ns + int(drain_slack_s * 1e9))
        if not self.ended():
            if "cpu" not in st:
                self.begin_window()
            self.end_window()
        loop.run_until(self.idle, loop.now_ns() + timeout_ns + int(drain_slack_s * 1e9))
        if self.head_timer[0] is not None:
            self.head_timer[0].cancel()
            self.head_timer[0] = None
        self.deadlines.clear()
        return {"history": self.history, "lat_ns": self.lat_ns, "errors": self.errors,
                **self.counts, "window_ns": st["t2"] - st["t_start"],
                "cpu_s": st["cpu2"] - st["cpu"]}


def client_host_main() -> int:
    """`driver.py --client-host`: one cell's client half in this process (see `clients_in`). Reads
    its spec (one JSON line) from stdin, runs the clients through a RemoteNetwork on stdin/stdout,
    writes the figures (JSON) to the spec's `result_path`, and exits."""
    gc.disable()   # as in the router: a collection over the history would stall every client
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return 2
        buf += chunk
    spec = orjson.loads(buf)
    loop = Loop()
    net = RemoteNetwork(loop)
    half = _ClientHalf(loop, net, spec, t0_ns=loop.now_ns())
    half.t0_ns = net.ready()
    half.start()
    out = half.finish(stop=lambda: net.closed)
    Path(spec["result_path"]).write_bytes(orjson.dumps(out))
    net.close()
    loop.close()
    return 0


def _sink(src: str, body: dict) -> None:
    """Replies to a client whose cell has ended: dropped."""


def run_cell(cluster: Cluster, clients: int, duration_s: float, *, warmup_s: float,
             key_base: int, seed: int, check_time_limit_s: float,
             keep_history: bool = False, clients_in: str | None = None) -> CellResult:
    """Drive `clients` closed-loop clients for warmup + duration; measure; check; see module doc.
    `clients_in` ("loop" or "process", default `CLIENTS_IN`): where the clients run."""
    assert 1 <= clients <= clients_max, clients
    clients_in = clients_in or CLIENTS_IN
    assert clients_in in ("loop", "process"), clients_in
    loop, network = cluster.loop, cluster.network
    nodes = cluster.nodes
    n = len(nodes)
    group = min(2 * n, clients_per_key_max)
    rng = random.Random(f"{seed}:{cluster.system.name}:{n}:{clients}:{key_base}")
    res = CellResult(clients=clients, duration_s=duration_s)
    timeout_ns = client_timeout_ms * 1_000_000
    spec = {"clients": [[i, cluster.client_id(), key_base + i // group, i, rng.random()]
                        for i in range(clients)],
            "nodes": list(nodes), "by_key": cluster.system.routing == "by-key",
            "timeout_ms": client_timeout_ms, "warmup_s": warmup_s, "duration_s": duration_s}
    ids = [c[1] for c in spec["clients"]]
    res.keys = len({c[2] for c in spec["clients"]})
    snap: dict[str, Any] = {}

    def on_window(edge: str) -> None:
        suffix = "" if edge == "begin" else "2"
        snap["cpu" + suffix] = cluster.cpu_s()
        snap["drv" + suffix] = time.process_time()
        snap["srv" + suffix] = network.send_all - network.send_clients
        snap["all" + suffix] = network.send_all
        snap["sched" + suffix] = sched_ns()
        snap["nsched" + suffix] = [sched_ns(p.pid) for p in cluster.procs]

    if clients_in == "loop":
        half = _ClientHalf(loop, network, spec, loop.now_ns(), on_window)
        half.start()
        # stdout EOF says a node ended (polling every pid in every pass cost the router 3%)
        closed = operator.attrgetter("stdout_closed")   # (C-level: this runs every pass)
        procs = cluster.procs
        out = half.finish(stop=lambda: any(map(closed, procs)))
        out["cpu_s"] = 0.0   # the router's own CPU (snap) is the clients' too
    else:
        out = _run_client_host(cluster, spec, on_window)
    for cid in ids:
        # A client's id stays registered (to a sink) for the cluster's life, as Maelstrom's clients
        # do for a test's: a node may still send as it later (a follower re-sending a forward it
        # never saw applied keeps the client as src), and the network reads a line from an
        # unknown src as a malformed line and stops reading that node, which would break every
        # later cell on this cluster. (ids are never reused: bounded by the plan's client count.)
        network.unregister(cid)
        network.register_client(cid, _sink)
    history = out["history"]
    lat_ns = out["lat_ns"]
    res.ok, res.fail, res.info = out["ok"], out["fail"], out["info"]
    window_s = out["window_ns"] / 1e9
    res.ok_per_s = res.ok / window_s if window_s > 0 else 0.0
    lat = sorted(x / 1e6 for x in lat_ns)
    res.latencies_ms = {"p50": _quantile(lat, 0.50), "p95": _quantile(lat, 0.95),
                        "p99": _quantile(lat, 0.99), "max": lat[-1] if lat else float("nan"),
                        "mean": sum(lat) / len(lat) if lat else float("nan")}
    completed = res.ok + res.fail + res.info
    res.completed_per_s = completed / window_s if window_s > 0 else 0.0
    ops = max(completed, 1)   # costs are per completed op: a failed cas is served work too
    res.server_msgs_per_op = (snap["srv2"] - snap["srv"]) / ops
    res.all_msgs_per_op = (snap["all2"] - snap["all"]) / ops
    node_cpu = {k: snap["cpu2"][k] - snap["cpu"][k] for k in snap["cpu"]}
    res.node_cpu_s_per_kop = sum(node_cpu.values()) / ops * 1000
    res.node_cpu_share = {k: round(v / window_s, 3) for k, v in node_cpu.items()}
    res.router_cpu_s_per_kop = (snap["drv2"] - snap["drv"]) / ops * 1000
    res.clients_cpu_s_per_kop = out["cpu_s"] / ops * 1000
    res.driver_cpu_s_per_kop = res.router_cpu_s_per_kop + res.clients_cpu_s_per_kop
    res.clients_in = clients_in
    if window_s > 0:
        (run0, wait0), (run1, wait1) = snap["sched"], snap["sched2"]
        on_cpu, queued = (run1 - run0) / 1e9 / window_s, (wait1 - wait0) / 1e9 / window_s
        res.router_time_shares = {"cpu": round(on_cpu, 3), "runqueue": round(queued, 3),
                                  "asleep": round(max(0.0, 1 - on_cpu - queued), 3)}
        res.node_runqueue_share = round(sum(b[1] - a[1] for a, b in zip(
            snap["nsched"], snap["nsched2"])) / 1e9 / window_s, 3)
    res.peak_rss_mb = {k: round(v, 1) for k, v in cluster.hwm_mb().items()}
    res.errors = out["errors"]
    res.history_ops = len(history)
    t_check = time.monotonic()
    verdict = check_while_serving(loop, history, check_time_limit_s)
    res.check_s = time.monotonic() - t_check
    res.linearizable = verdict.get("valid?")
    res.failures = list(verdict.get("failures", []))[:10]
    for key in res.failures[:1]:
        per_key = verdict["results"].get(key, {})
        res.explanation = per_key.get("explanation") or per_key.get("cause") or ""
    if keep_history or res.linearizable is not True:
        res.history = history_dicts(history)
    if cluster.any_exited():
        raise ClusterError(f"{cluster.system.name}: nodes {cluster.exited()} exited during "
                           f"the cell; logs in {cluster.workdir}")
    return res


def _run_client_host(cluster: Cluster, spec: dict, on_window: Any) -> dict:
    """The cell's client half in a client host process (`driver.py --client-host`), its messages
    routed by this process's network; the router takes its window snapshots at the same
    (machine-wide monotonic) times as the host. Returns the host's figures."""
    loop = cluster.loop
    result = cluster.workdir / f"clients-{spec['clients'][0][1]}.json"
    spec = dict(spec, result_path=str(result))
    host = ClientHost(loop, cluster.network, [sys.executable, str(Path(__file__).resolve()),
                                             "--client-host"],
                      cluster.workdir / "client-host.log", [c[1] for c in spec["clients"]])
    try:
        t0 = host.start(orjson.dumps(spec))
        t_begin = t0 + int(spec["warmup_s"] * 1e9)
        t_end = t_begin + int(spec["duration_s"] * 1e9)
        taken: list[str] = []

        def snapshot(edge: str) -> None:
            taken.append(edge)
            on_window(edge)
        begin_timer = loop.call_at(t_begin, snapshot, "begin")
        end_timer = loop.call_at(t_end, snapshot, "end")
        bound = t_end + int((client_timeout_ms / 1000 + 2 * drain_slack_s
                             + client_host_exit_slack_s) * 1e9)
        procs = [host.proc, *cluster.procs]
        loop.run_until(lambda: any(p.stdout_closed for p in procs), bound)
        for timer, edge in ((begin_timer, "begin"), (end_timer, "end")):
            if edge not in taken:   # ended early (a node exited): the figures up to now
                timer.cancel()
                snapshot(edge)
        if not host.wait_exit(bound) or not result.exists():
            host.proc.drain_stderr()
            raise ClusterError("the client host failed: " + b"\n".join(
                host.proc.stderr_lines).decode(errors="replace"))
        return orjson.loads(result.read_bytes())
    finally:
        host.stop()
        result.unlink(missing_ok=True)


def history_dicts(records: list) -> list[dict]:
    """A cell's history records (flat tuples, or lists after a client host's JSON) as the
    history's op dicts (contract format): index, time, type, process, f, value, node, and error
    and exception when set."""
    ops = []
    for index, rec in enumerate(records):
        op = {"index": index, "time": rec[1], "type": rec[0], "process": rec[2], "f": rec[3],
              "value": rec[4], "node": rec[5]}
        if len(rec) > 6:
            if rec[6] is not None:
                op["error"] = rec[6]
            if rec[7] is not None:
                op["exception"] = rec[7]
        ops.append(op)
    return ops


def _check_child(conn: Any, history: list, time_limit_s: float) -> None:
    try:
        if history and type(history[0]) is not dict:
            history = history_dicts(history)   # here, off the router's thread
        conn.send(check_independent(history, time_limit_s=time_limit_s))
    finally:
        conn.close()


def check_while_serving(loop: Loop, history: list, time_limit_s: float) -> dict:
    """`check_independent` in a forked child (it sees the history without copying) while `loop`
    keeps running, so heartbeats and acknowledgements between the nodes flow during the check as
    they do under Maelstrom, which checks only after the test. `history`: op dicts, or a cell's
    flat records (converted in the child). Bounded by the check's own limit plus
    `check_slack_s`; the child is killed by PID past that, and the verdict is unknown."""
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_check_child, args=(send, history, time_limit_s), daemon=True)
    child.start()
    send.close()

    waiting = [True]

    def poke() -> None:  # wakes the loop now and then to look at the pipe
        if waiting[0]:
            loop.call_later(check_poll_ms * 1_000_000, poke)

    poke()
    deadline = time.monotonic_ns() + int((time_limit_s + check_slack_s) * 1e9)
    got = loop.run_until(lambda: recv.poll() or not child.is_alive(), deadline)
    waiting[0] = False
    verdict = None
    if got and recv.poll():
        try:
            verdict = recv.recv()
        except EOFError:
            verdict = None
    if child.is_alive():
        os.kill(child.pid, signal.SIGKILL)
    child.join(5)
    recv.close()
    if verdict is None:
        return {"valid?": "unknown", "failures": [], "results": {},
                "error": "the check did not finish (child died or timed out)"}
    return verdict


if __name__ == "__main__":
    if sys.argv[1:] == ["--client-host"]:
        sys.exit(client_host_main())
    sys.exit(f"usage: {sys.argv[0]} --client-host (the driver is a module: see bench/run.py)")
