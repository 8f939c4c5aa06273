"""Orchestration of one lin-kv test: store, processes, init, workload, nemesis, teardown, analysis.

Owns the order of a run (maelstrom-spec §2, §5.4): create the store directory and symlinks; write
test.json; start the jar's services (lin-kv, seq-kv, lww-kv, lin-tso: `services.start`); start
every node and send each `init` from a fresh client c<k> (msg_id 1) in parallel,
requiring init_ok within `init_timeout_s`; check --concurrency (a bad value crashes here, after the
nodes started, as under the jar); mark time zero; run the workload and the nemesis until the time
limit, then let in-flight ops finish (up to the client timeout); heal (unrecorded); SIGKILL the
nodes; write net-stats.json; call `analysis.analyze` unless a node crashed, and append the results
and the verdict to jepsen.log (`log_results`). jepsen.log uses the jar's layout
(`JarLogFormatter`: `LEVEL [date] thread - logger message`; ops come from `jepsen worker N`).

A `RunCrash` is the jar's "crash" outcome: exit 255, no results. Crashes are: a node that cannot be
started, fails init or dies during the test (reported at teardown with its exit status and last
stderr lines), a bad --concurrency, and network overload.

[extension] Node arguments may contain the token `{store}`, replaced by the run's absolute store
directory (`substitute_store`), so `-- --data-dir {store}/data` keeps node data for the whole run
and across restarts; with the kill nemesis and no `{store}`, a WARNING says restarted nodes come
back empty. The runner is the nemesis's `NodeControl`: a node it kills is expected dead (messages
to it vanish; teardown does not call it a crash), and a restarted node gets `init` again from a
fresh client id (c<2n+concurrency+k>, one more with the member nemesis), with init_ok required
within `init_timeout_s` (else crash). A paused node's messages vanish too, until it is resumed.
When any extension fault is enabled (kill, pause, loss, dup, member) the run ends with a recovery
phase: at the time limit, once in-flight ops are done, the active fault is stopped (a recorded stop op),
restarted nodes must answer init, the runner waits `--recovery-s`, then each node's reader client
reads every key used (recorded, so the checker judges them). The figures go to the console,
jepsen.log and `final-reads.json` (including "lost-keys": keys with an acknowledged write that a
final read says do not exist); restarts are counted in jepsen.log. Without extensions nothing
of this happens and the run is the jar-compatible one.
[extension] Membership (membership.py): with --initial-members K every `init` names the first K
nodes as `members`. The member nemesis runs beside the fault nemesis on its own schedule, as a
client of its own (c<2n+concurrency>); the runner runs one nemesis op at a time, so a fault op due
while a change is in flight waits for it (`_nemesis_step`). Its wipes go through `wipe_node`
(kill, delete the --wipe-path, restart, `init` naming the configuration the nemesis last read).
At the time limit it starts no change; in the recovery phase, before the final heal, a change in
flight gets `settle_s` and is then cut short (unknown); after the recovery wait it reads the
configuration once more. Its counts go to jepsen.log and the console, and membership.json.

With --leave-db-running, as under the jar, nodes are neither killed nor checked: a node that died
during the run is not reported and the analysis runs.

Invariants: one thread; every node started is killed (unless --leave-db-running) even on errors;
the run is bounded in time by time_limit + client timeout + `teardown_slack_s`, plus, with
extensions, `init_timeout_s` + recovery_s + `final_reads_s_max` + client timeout + slack (and,
with the member nemesis, `settle_s` and one configuration read).
May not touch: checker and analysis internals (only `analysis.analyze`).
"""
from __future__ import annotations

import datetime as dt
import io
import logging
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from . import services
from .eventloop import Loop
from .membership import (DEFAULT_WIPE_PATH, NODE_TOKEN, MemberNemesis, MemberPlan, init_body,
                         settle_s)
from .nemesis import EXTENSION_KINDS, MEMBER_KIND, Nemesis, NodeControl, make_fault_kinds
from .network import Network, NetworkOverload
from .process import NodeProcess, connect_to_network
from .workload import History, Workload, client_timeout_ms, final_reads_s_max

log = logging.getLogger("maelstrom.runner")

init_timeout_s = 10.0
teardown_slack_s = 2.0
progress_tty_interval_s = 0.5
progress_plain_interval_s = 5.0
journal_buffer_bytes = 1 << 20
log_flush_interval_s = 0.5  # jepsen.log is flushed at most this often (and at the end)
STORE_TOKEN = "{store}"


class RunCrash(Exception):
    """The test crashed (jar exit code 255); the message says why."""


@dataclass
class TestOptions:
    bin: str
    args: list[str] = field(default_factory=list)
    workload: str = "lin-kv"
    nodes: list[str] = field(default_factory=lambda: [f"n{i}" for i in range(1, 6)])
    time_limit: int = 60
    rate: float = 5.0
    concurrency: int = 5
    latency: int = 0
    latency_dist: str = "constant"
    nemesis: list[str] = field(default_factory=list)
    nemesis_interval: float = 10.0
    log_stderr: bool = False
    log_net_send: bool = False
    log_net_recv: bool = False
    availability: Any = None
    leave_db_running: bool = False
    seed: int = 0
    store: str = "store"
    p_loss: float = 0.0        # [extension] with "loss" in nemesis
    p_dup: float = 0.0         # [extension] with "dup" in nemesis
    recovery_s: float = 5.0    # [extension] wait before the final reads
    svg_events: int = 10_000   # [extension] messages.svg draws at most this many network events
    svg_window: tuple[float, float] | None = None   # [extension] ... in this window (history s)
    lin_time_limit_s: float = 60.0     # [extension] the linearizability checker's budget per key
    lin_config_max: int = 1_000_000    # [extension] configurations one key's search may hold
    absent_reads: bool | None = None   # [extension] strict key-does-not-exist reads; None: with extensions
    dup_requests: float = 0.0  # [extension] chance each client request is sent again (same msg_id)
    dup_delay_ms: int = 200    # [extension] ... up to this much later
    dup_target: str = "any"    # [extension] ... to the same node, another one, or any
    initial_members: int | None = None   # [extension] init names the first K nodes as members
    wipe_path: str = DEFAULT_WIPE_PATH   # [extension] what a member-nemesis wipe deletes
    wipe: bool = True          # [extension] the member nemesis sometimes wipes a removed node

    def initial_member_list(self) -> list[str] | None:
        return None if self.initial_members is None else self.nodes[:self.initial_members]

    @property
    def extensions(self) -> list[str]:
        """The enabled nemesis faults the jar does not have."""
        return [k for k in self.nemesis if k in EXTENSION_KINDS]


@dataclass
class RunOutcome:
    exit_code: int
    store_dir: Path | None
    results: dict | None = None
    message: str = ""
    final_reads: dict | None = None     # [extension] figures of the recovery phase
    membership: str | None = None       # [extension] the member nemesis's summary line


def substitute_store(args: list[str], store_dir: Path) -> list[str]:
    """Node arguments with every `{store}` replaced by the absolute store directory."""
    root = str(Path(store_dir).resolve())
    return [a.replace(STORE_TOKEN, root) for a in args]


# -- store ----------------------------------------------------------------------------------------
def timestamp(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now().astimezone()
    offset = now.strftime("%z")
    suffix = "Z" if offset in ("+0000", "") else offset
    return now.strftime("%Y%m%dT%H%M%S.") + f"{now.microsecond // 1000:03d}" + suffix


def _symlink(target: str, link: Path) -> None:
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


def make_store_dir(store_root: Path, name: str) -> Path:
    base = store_root / name
    base.mkdir(parents=True, exist_ok=True)
    for attempt in range(100):
        ts = timestamp()
        path = base / ts
        try:
            path.mkdir()
            break
        except FileExistsError:
            time.sleep(0.002)
    else:
        raise RunCrash(f"could not create a fresh store directory under {base}")
    (path / "node-logs").mkdir()
    _symlink(ts, base / "latest")
    _symlink(f"{name}/{ts}", store_root / "latest")
    _symlink(f"{name}/{ts}", store_root / "current")
    return path


# -- progress -------------------------------------------------------------------------------------
class Progress:
    """A one-line status on stderr: in place on a tty, a plain line every few seconds otherwise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval_s = progress_tty_interval_s if self.tty else progress_plain_interval_s
        self.shown = False

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.tty and self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


class JarLogFormatter(logging.Formatter):
    """The jar's log layout, `LEVEL [date] thread - logger message`: a record's thread is its
    `jthread` (an op's worker, e.g. `jepsen worker 3`), else the test runner's."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s [%(asctime)s] %(jthread)s - %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "jthread"):
            record.jthread = "jepsen test runner"
        return super().format(record)


def log_results(store_dir: Path, results_edn: str, verdict: str) -> None:
    """Append the results and the verdict to the run's jepsen.log, as the jar logs them at the
    end (analysis runs after the run's own logging has closed)."""
    record = logging.LogRecord("jepsen.core", logging.INFO, __file__, 0,
                               "\n\n%s\n\n%s", (results_edn.rstrip(), verdict), None)
    with open(store_dir / "jepsen.log", "a", encoding="utf-8") as f:
        f.write(JarLogFormatter().format(record) + "\n")


class BufferedFileHandler(logging.FileHandler):
    """jepsen.log gets a line per op: flushing each one cost the router a third of its time at a few
    thousand ops/s. This handler flushes at most every `log_flush_interval_s` (and on close)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self._flushed_at = time.monotonic()

    def flush(self) -> None:
        now = time.monotonic()
        if now - self._flushed_at >= log_flush_interval_s:
            self._flushed_at = now
            super().flush()

    def close(self) -> None:
        self._flushed_at = float("-inf")
        self.flush()
        super().close()


# -- the run --------------------------------------------------------------------------------------
class TestRun(NodeControl):
    def __init__(self, opts: TestOptions, progress: Progress | None = None):
        self.opts = opts
        self.progress = progress
        self.loop = Loop()
        self.procs: list[NodeProcess] = []
        self.store_dir: Path | None = None
        self.network: Network | None = None
        self.history: History | None = None
        self.workload: Workload | None = None
        self.nemesis: Nemesis | None = None
        self.nemesis_timer = None
        self.member: MemberNemesis | None = None   # [extension] the member nemesis
        self.end_ns = 0
        self.files: list[io.IOBase] = []
        self.log_handler: logging.Handler | None = None
        self.timeout_ms = client_timeout_ms(opts.latency)
        self.by_node: dict[str, NodeProcess] = {}
        self.next_client_index = 0
        self.pending_inits: dict[str, tuple[str, Any]] = {}   # node -> (client id, timer)
        self.unexpected_deaths: list[str] = []
        self.final_reads: dict | None = None

    def _rng(self, purpose: str) -> random.Random:
        return random.Random(f"{self.opts.seed}:{purpose}")

    def test_json(self, start_time: str) -> dict:
        o = self.opts
        return {"name": o.workload, "workload": o.workload, "bin": o.bin, "args": o.args,
                "nodes": o.nodes, "node_count": len(o.nodes), "concurrency": o.concurrency,
                "rate": float(o.rate), "time_limit": o.time_limit, "latency": o.latency,
                "latency_dist": o.latency_dist, "nemesis": o.nemesis,
                "nemesis_interval": float(o.nemesis_interval), "availability": o.availability,
                "seed": o.seed, "start_time": start_time, "client_timeout_ms": self.timeout_ms,
                "leave_db_running": o.leave_db_running,
                "messages_svg": {"events_max": o.svg_events,
                                 "window_s": list(o.svg_window) if o.svg_window else None},
                "lin_time_limit_s": o.lin_time_limit_s, "lin_config_max": o.lin_config_max,
                "absent_reads": o.absent_reads if o.absent_reads is not None else bool(o.extensions),
                **({"p_loss": o.p_loss, "p_dup": o.p_dup, "recovery_s": o.recovery_s}
                   if o.extensions else {}),
                **({"dup_requests": o.dup_requests, "dup_delay_ms": o.dup_delay_ms,
                    "dup_target": o.dup_target} if o.dup_requests else {}),
                **({"initial_members": o.initial_members} if o.initial_members is not None else {}),
                **({"wipe": o.wipe, "wipe_path": o.wipe_path} if MEMBER_KIND in o.nemesis else {})}

    def run(self) -> RunOutcome:
        o = self.opts
        self.store_dir = make_store_dir(Path(o.store), o.workload)
        self.log_handler = BufferedFileHandler(self.store_dir / "jepsen.log")
        self.log_handler.setFormatter(JarLogFormatter())
        logging.getLogger().addHandler(self.log_handler)
        try:
            return self._run()
        finally:
            logging.getLogger().removeHandler(self.log_handler)
            self.log_handler.close()

    def _run(self) -> RunOutcome:
        o = self.opts
        start_time = dt.datetime.now().astimezone().isoformat(timespec="milliseconds")
        log.info("Running test %s with seed %d (repeat it with --seed %d); store %s",
                 o.workload, o.seed, o.seed, self.store_dir)
        (self.store_dir / "test.json").write_bytes(
            orjson.dumps(self.test_json(start_time), option=orjson.OPT_INDENT_2))
        journal = open(self.store_dir / "messages.jsonl", "wb", buffering=journal_buffer_bytes)
        history_out = open(self.store_dir / "history.jsonl", "wb", buffering=journal_buffer_bytes)
        self.files += [journal, history_out]
        crash: RunCrash | None = None
        crashed_nodes: list[str] = []
        try:
            self.network = Network(self.loop, latency_ms=o.latency, latency_dist=o.latency_dist,
                                   rng=self._rng("latency"), journal=journal,
                                   log_send=o.log_net_send, log_recv=o.log_net_recv,
                                   fault_rng=self._rng("net-faults"))
            self.history = History(self.loop, history_out, threads=o.concurrency)
            self.history.write_ops_to(self.log_handler)   # same lines, without a LogRecord each
            services.start(self.network, self._rng("services"))
            self._start_nodes()
            self._init_nodes()
            self._check_concurrency()
            self._main_phase()
        except RunCrash as exc:
            crash = exc
        except NetworkOverload as exc:
            crash = RunCrash(f"network overload: {exc}")
        finally:
            if self.progress:
                self.progress.clear()
            crashed_nodes = self._teardown_nodes()
            for f in self.files:
                f.close()
        if self.network is not None:
            (self.store_dir / "net-stats.json").write_bytes(
                orjson.dumps(self.network.stats(), option=orjson.OPT_INDENT_2))
        if not o.leave_db_running:
            crashed_nodes = self.unexpected_deaths + crashed_nodes
        if crash is None and crashed_nodes:
            crash = RunCrash("\n\n".join(crashed_nodes))
        if crash is not None:
            log.error("Test crashed: %s", crash)
            return RunOutcome(255, self.store_dir, None, str(crash))
        return RunOutcome(0, self.store_dir, None, "", self.final_reads,
                          self.member.summary() if self.member is not None else None)

    # -- phases -----------------------------------------------------------------------------------
    def _start_nodes(self) -> None:
        o = self.opts
        command = [o.bin, *substitute_store(o.args, self.store_dir)]
        if "kill" in o.nemesis and not any(STORE_TOKEN in a for a in o.args):
            log.warning("WARNING: the kill nemesis restarts nodes, but no node argument contains "
                        "%s, so restarted nodes come back with whatever the node keeps on its own "
                        "(probably empty). To keep data across restarts pass e.g. "
                        "`-- --data-dir %s/data`.", STORE_TOKEN, STORE_TOKEN)
        for node in o.nodes:
            proc = NodeProcess(self.loop, node, command, self.store_dir / "node-logs" / f"{node}.log",
                               log_stderr=o.log_stderr)
            self.procs.append(proc)
            self.by_node[node] = proc
        connect_to_network(self.loop, self.network, self.procs)
        for proc in self.procs:
            try:
                proc.start()
            except OSError as exc:
                raise RunCrash(f"could not start node {proc.node_id} with {command}: {exc}")

    def _init_nodes(self) -> None:
        nodes = self.opts.nodes
        replies: dict[str, Any] = {}
        for k, node in enumerate(nodes):
            client = f"c{k}"

            def on_reply(src: str, body: dict, node=node) -> None:
                if node not in replies and body.get("in_reply_to") == 1:
                    replies[node] = body
            self.network.register_client(client, on_reply)
        for k, node in enumerate(nodes):
            self.network.send_body(f"c{k}", node,
                                   init_body(node, nodes, self.opts.initial_member_list()))
        deadline = self.loop.now_ns() + int(init_timeout_s * 1e9)

        def done() -> bool:
            return len(replies) == len(nodes) or any(p.exit_noticed for p in self.procs)
        self.loop.run_until(done, deadline)
        for k in range(len(nodes)):
            self.network.unregister(f"c{k}")
        for proc in self.procs:
            if proc.exit_noticed:
                proc.drain_stderr()
                raise RunCrash(f"node {proc.node_id} exited during init.\n"
                               + proc.crash_report(proc.exit_status()))
        for node in nodes:
            body = replies.get(node)
            if body is None:
                raise RunCrash(f"Node {node} did not respond to init within {init_timeout_s:.0f} s "
                               f"(expected {{\"type\": \"init_ok\", \"in_reply_to\": 1}}); "
                               f"see its stderr in node-logs/{node}.log")
            if body.get("type") != "init_ok":
                raise RunCrash(f"Node {node} failed init: expected an init_ok reply, got "
                               f"{orjson.dumps(body).decode()}")
        log.info("All %d nodes answered init", len(nodes))

    def _check_concurrency(self) -> None:
        n = len(self.opts.nodes)
        c = self.opts.concurrency
        if c <= 0 or c % (2 * n) != 0:
            raise RunCrash(
                f"lin-kv needs --concurrency to be a positive multiple of 2n (2 x {n} nodes = "
                f"{2 * n}), e.g. --concurrency 2n; got {c}. (The jar crashes the same way.)")

    def _main_phase(self) -> None:
        o = self.opts
        loop = self.loop
        n = len(o.nodes)
        # Jepsen opens one setup client per node after the init clients: their ids are used up.
        self.workload = Workload(loop, self.network, self.history, self._rng("workload"),
                                 nodes=o.nodes, concurrency=o.concurrency, rate=o.rate,
                                 timeout_ms=self.timeout_ms, first_client_index=2 * n,
                                 dup=(o.dup_requests, o.dup_delay_ms, o.dup_target,
                                      self._rng("dup-requests")))
        self.workload.open()
        self.next_client_index = 2 * n + o.concurrency
        self.history.set_zero()
        self.network.set_time_zero()
        t0 = loop.now_ns()
        self.end_ns = t0 + o.time_limit * 1_000_000_000
        faults = [k for k in o.nemesis if k != MEMBER_KIND]
        if faults:
            kinds = make_fault_kinds(faults, self.network, o.nodes, self._rng("nemesis-faults"),
                                     control=self, p_loss=o.p_loss, p_dup=o.p_dup)
            self.nemesis = Nemesis(kinds, self._rng("nemesis"), o.nemesis_interval,
                                   lambda type_, f, value: self.history.append(
                                       type_, "nemesis", f, value))
            self.nemesis_timer = loop.call_at(t0, self._nemesis_step)
        if MEMBER_KIND in o.nemesis:
            self._start_member_nemesis()
        self.workload.start(self.end_ns)
        if self.progress:
            loop.call_at(t0, self._progress_tick)
        end_ns = self.end_ns
        workload = self.workload
        loop.run_until(lambda: loop.now_ns() >= end_ns and workload.idle(),
                       end_ns + self.timeout_ns_with_slack())
        workload.stop_issuing()
        if not workload.idle():
            log.warning("Some client ops were still in flight after the time limit and timeout")
        if self.nemesis_timer is not None:
            self.nemesis_timer.cancel()
        if self.member is not None:
            self.member.stop()
        if o.extensions:
            self._recovery_phase()
        if self.nemesis is not None:
            self.nemesis.teardown()
        workload.close()
        counts = self.history.counts
        log.info("Run complete: %d invocations, %d ok, %d fail, %d info", counts["invoke"],
                 counts["ok"], counts["fail"], counts["info"])
        if (self.nemesis is not None or self.member is not None) and o.extensions:
            restarts = sum(p.restarts for p in self.procs)
            log.info("Nemesis ops: %s; node restarts: %d (%s)",
                     ", ".join(f"{f} x{c}" for f, c in sorted(
                         self.nemesis.counts.items() if self.nemesis else ()))
                     or "none", restarts,
                     ", ".join(f"{p.node_id} x{p.restarts}" for p in self.procs if p.restarts)
                     or "none")
        if self.member is not None:
            log.info("%s", self.member.summary())
            (self.store_dir / "membership.json").write_bytes(
                orjson.dumps(self.member.report(), option=orjson.OPT_INDENT_2))

    # -- [extension] the member nemesis -----------------------------------------------------------
    def _start_member_nemesis(self) -> None:
        o = self.opts
        client = f"c{self.next_client_index}"
        self.next_client_index += 1
        plan = MemberPlan(o.nodes, o.initial_member_list() or o.nodes, wipe=o.wipe)
        self.member = MemberNemesis(
            self.loop, self.network, self, plan, self._rng("member"), o.nemesis_interval,
            lambda type_, f, value: self.history.append(type_, "nemesis", f, value),
            client_id=client, rpc_timeout_s=self.timeout_ms / 1000,
            on_op=self.workload.note_nemesis_op)
        self.member.start(self.end_ns)

    def _member_settle(self) -> None:
        """No change in flight: one still running at the time limit gets `settle_s`, then is cut
        short (recorded as unknown)."""
        if self.member is not None and self.member.busy:
            log.info("Waiting up to %g s for the membership change in flight...", settle_s)
            self.loop.run_until(lambda: not self.member.busy,
                                self.loop.now_ns() + int(settle_s * 1e9))
            self.member.abort()

    # -- [extension] recovery phase ---------------------------------------------------------------
    def _recovery_phase(self) -> None:
        """Heal everything (recorded), wait for restarted nodes' init and --recovery-s, then read
        every key used from each node's reader client."""
        o = self.opts
        loop = self.loop
        workload = self.workload
        self._member_settle()
        stopped = self.nemesis.final_heal() if self.nemesis is not None else None
        log.info("Final heal (%s); waiting for recovery...", stopped or "no fault was active")
        assert not any(p.down or p.paused for p in self.procs), "a fault outlived the final heal"
        assert self.network.p_loss == 0 and self.network.p_dup == 0 and not self.network.grudges
        loop.run_until(lambda: not self.pending_inits,
                       loop.now_ns() + int((init_timeout_s + 1) * 1e9))
        loop.run_until(lambda: False, loop.now_ns() + int(o.recovery_s * 1e9))
        if self.member is not None and not self.member.busy:
            self.member.read_final()
            loop.run_until(lambda: not self.member.busy,
                           loop.now_ns() + int(self.member.read_bound_s() * 1e9))
        keys = sorted(workload.keys_used)
        reads_end_ns = loop.now_ns() + int(final_reads_s_max * 1e9)
        workload.start_final_reads(keys, reads_end_ns)
        done = loop.run_until(workload.final_reads_done, reads_end_ns + self.timeout_ns_with_slack())
        if not done:
            log.warning("Final reads were still in flight after %.0f s", final_reads_s_max)
        f = dict(workload.final)
        f.update({"answered": workload.final_answered(), "keys": len(keys), "nodes": len(o.nodes),
                  "recovery_s": o.recovery_s, "restarts": sum(p.restarts for p in self.procs)})
        self.final_reads = f
        (self.store_dir / "final-reads.json").write_bytes(
            orjson.dumps(f, option=orjson.OPT_INDENT_2))
        log.info("Final reads: %d of %d answered (%d values, %d keys absent that were never "
                 "written; %d failed, %d not issued) over %d keys x %d nodes, after %g s of "
                 "recovery", f["answered"], f["planned"], f["ok"], f["absent"],
                 f["fail"] + f["info"] - f["absent"], f["not-issued"], len(keys), len(o.nodes),
                 o.recovery_s)
        if f["lost"]:
            log.warning("ACKNOWLEDGED WRITES LOST: %d final reads said keys %s do not exist, "
                        "though each had an acknowledged write or cas", f["lost"], f["lost-keys"])

    # -- [extension] NodeControl: the kill and pause nemeses act through these ------------------
    def kill_node(self, node: str) -> None:
        proc = self.by_node[node]
        pid = proc.pid
        self._cancel_init(node)
        before = proc.nemesis_kill()
        self.network.set_node_down(node, True)
        if before is not None:
            # It had died on its own before the nemesis came: that is a crash like any other.
            self.unexpected_deaths.append(proc.crash_report(before))
            log.warning("Node %s had already exited with status %s before the nemesis killed it",
                        node, before)
        status = proc.proc.poll() if proc.proc is not None else None  # what the OS says happened
        how = "still running" if status is None else f"signal {-status}" if status < 0 else f"exit status {status}"
        log.info("Nemesis killed %s (pid %d, %s)", node, pid, how)

    def restart_node(self, node: str, members: list[str] | None = None) -> None:
        proc = self.by_node[node]
        try:
            proc.restart()
        except OSError as exc:
            raise RunCrash(f"could not restart node {node} with {proc.command}: {exc}") from None
        self.network.set_node_down(node, False)
        log.info("Nemesis restarted %s as pid %d (restart #%d of this node)", node, proc.pid,
                 proc.restarts)
        self._send_init(node, members)

    def pause_node(self, node: str) -> None:
        proc = self.by_node[node]
        proc.pause()
        self.network.set_node_down(node, True)
        log.info("Nemesis paused %s (pid %d)", node, proc.pid)

    def resume_node(self, node: str) -> None:
        proc = self.by_node[node]
        self.network.set_node_down(node, False)
        proc.resume()
        log.info("Nemesis resumed %s (pid %d)", node, proc.pid)

    # [extension] NodeControl for the member nemesis
    def wipe_node(self, node: str, members: list[str]) -> None:
        """Kill the node, delete its --wipe-path, restart it; its init names `members`."""
        path = Path(substitute_store([self.opts.wipe_path], self.store_dir)[0].replace(NODE_TOKEN, node))
        self.kill_node(node)
        existed = path.exists() or path.is_symlink()
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif existed:
                path.unlink()
        except OSError as exc:
            raise RunCrash(f"could not wipe {node}'s data at {path}: {exc}") from None
        log.info("Nemesis wiped %s: %s %s", node, "deleted" if existed else "nothing at", path)
        self.restart_node(node, members)

    def init_pending(self, node: str) -> bool:
        return node in self.pending_inits

    def node_available(self, node: str) -> bool:
        proc = self.by_node[node]
        return not (proc.down or proc.paused)

    def _send_init(self, node: str, members: list[str] | None = None) -> None:
        """Send a restarted node `init` from a fresh client, as at setup (a wiped one's names
        `members`); init_ok is required within init_timeout_s (checked by a timer; a failure
        crashes the run)."""
        client = f"c{self.next_client_index}"
        self.next_client_index += 1
        sent_ns = self.loop.now_ns()

        def on_reply(src: str, body: dict) -> None:
            if type(body) is not dict or body.get("in_reply_to") != 1:
                return
            if self.pending_inits.get(node, (None,))[0] != client:
                return
            if body.get("type") != "init_ok":
                raise RunCrash(f"Node {node} failed init after a restart: expected an init_ok "
                               f"reply, got {orjson.dumps(body).decode()}")
            self._cancel_init(node)
            log.info("%s answered init after its restart in %.0f ms", node,
                     (self.loop.now_ns() - sent_ns) / 1e6)

        def on_timeout() -> None:
            if self.pending_inits.get(node, (None,))[0] != client:
                return
            proc = self.by_node[node]
            status = proc.exit_status()
            if status is not None:
                proc.drain_stderr()
                detail = "\n" + proc.crash_report(status)
            else:
                detail = f" see its stderr in node-logs/{node}.log"
            raise RunCrash(f"Node {node} did not respond to init within {init_timeout_s:.0f} s "
                           f"after the nemesis restarted it;{detail}")

        self.network.register_client(client, on_reply)
        timer = self.loop.call_later(int(init_timeout_s * 1e9), on_timeout)
        self.pending_inits[node] = (client, timer)
        self.network.send_body(client, node, init_body(
            node, self.opts.nodes, members if members is not None else self.opts.initial_member_list()))

    def _cancel_init(self, node: str) -> None:
        pending = self.pending_inits.pop(node, None)
        if pending is not None:
            client, timer = pending
            timer.cancel()
            # Unregister after this pass: we may be inside that client's delivery.
            self.loop.call_later(0, self.network.unregister, client)

    def timeout_ns_with_slack(self) -> int:
        return int((self.timeout_ms / 1000 + teardown_slack_s) * 1e9)

    def _nemesis_step(self) -> None:
        self.nemesis_timer = None
        if self.loop.now_ns() >= self.end_ns:
            return
        if self.member is not None and self.member.busy:
            self.member.when_idle(self._nemesis_step)   # one nemesis op at a time
            return
        self.nemesis.step()
        self.workload.note_nemesis_op()
        self.nemesis_timer = self.loop.call_later(int(self.nemesis.gap_s() * 1e9),
                                                  self._nemesis_step)

    def progress_text(self) -> str:
        elapsed_s = self.history.elapsed_ns() / 1e9
        c = self.history.counts
        in_flight = sum(1 for w in self.workload.workers if w.op is not None)
        nemesis = " | ".join(x.describe() for x in (self.nemesis, self.member) if x) or "none"
        return (f"[{min(elapsed_s, self.opts.time_limit):5.1f}/{self.opts.time_limit} s] "
                f"ops ok {c['ok']} fail {c['fail']} info {c['info']} in-flight {in_flight} | "
                f"nemesis: {nemesis}")

    def _progress_tick(self) -> None:
        self.progress.show(self.progress_text())
        if self.loop.now_ns() < self.end_ns + self.timeout_ns_with_slack():
            self.loop.call_later(int(self.progress.interval_s * 1e9), self._progress_tick)

    def _teardown_nodes(self) -> list[str]:
        """Kill every node; return crash reports for nodes that had died on their own."""
        reports = []
        for proc in self.procs:
            if proc.proc is None:
                continue
            if self.opts.leave_db_running:
                # The jar skips the DB teardown, and with it the check for crashed nodes.
                if proc.down:
                    continue   # the nemesis killed it and the run ended before its restart
                proc.resume()
                proc.drain_stderr()
                if proc.exit_status() is None:
                    log.info("Leaving node %s running (pid %d)", proc.node_id, proc.pid)
                continue
            status = proc.kill()
            proc.drain_stderr()
            if status is not None:
                reports.append(proc.crash_report(status))
        for proc in self.procs:
            if not self.opts.leave_db_running:
                proc.close()
        self.loop.close()
        return reports


def run_test(opts: TestOptions, progress: Progress | None = None) -> RunOutcome:
    """Run one test and analyse it. Exit code: 0 valid, 1 invalid, 2 unknown, 255 crash."""
    run = TestRun(opts, progress)
    outcome = run.run()
    if outcome.exit_code != 0:
        return outcome
    outcome.results = analyze_store(outcome.store_dir, availability=opts.availability)
    outcome.exit_code = exit_code_for(outcome.results)
    edn = outcome.store_dir / "results.edn"
    from .analysis import verdict_line
    log_results(outcome.store_dir, edn.read_text(encoding="utf-8") if edn.is_file() else
                str(outcome.results), verdict_line(outcome.results.get("valid?")))
    return outcome


def analyze_store(store_dir: Path, *, availability: Any = None, **lin: Any) -> dict:
    try:
        from . import analysis
    except ImportError as exc:
        log.error("analysis module unavailable: %s", exc)
        return {"valid?": "unknown", "error": f"analysis module unavailable: {exc}"}
    try:
        return analysis.analyze(store_dir, availability=availability, **lin)
    except Exception as exc:  # noqa: BLE001 - reported as the jar's "unknown", never swallowed
        log.exception("analysis failed")
        return {"valid?": "unknown", "error": f"analysis failed: {exc!r}"}


def exit_code_for(results: dict | None) -> int:
    if results is None:
        return 255
    valid = results.get("valid?")
    if valid is True:
        return 0
    if valid is False:
        return 1
    return 2


def options_dict(opts: TestOptions) -> dict:
    return asdict(opts)
