"""Command line of maelstrom-py: the jar's `test`, `analyze` and `serve` commands, flags, exit
codes, verdicts. `analyze -t INDEX_OR_PATH` re-checks a stored test as the jar's does (rewrites its
results, prints no verdict, exits 0); its [extension] `--verdict` prints results and verdict and
exits 0/1/2 like `test`.

Owns: parsing and validating arguments (maelstrom-spec §6), console logging, the live progress line,
printing results and the jar's verdict line, and mapping outcomes to exit codes:
0 valid, 1 invalid, 2 unknown, 254 bad arguments or unknown command, 255 crash.
Flags the jar has but lin-kv ignores are accepted and ignored; our extensions are marked
"[extension]" in --help: --seed, --store, the nemesis faults beyond `partition` (`--nemesis kill`,
`pause`, `loss`, `dup`; `--p-loss P` and `--p-dup P` give the last two their probability and
enable them on their own), --recovery-s (the wait before the final reads that any extension
fault adds), duplicated client requests (`--dup-requests P`, `--dup-delay-ms`,
`--dup-target`), and membership changes (`--initial-members K`, `--nemesis member`,
`--wipe-path TEMPLATE`, `--no-wipe`). Without them a run is the jar's.

May not touch: the run itself (runner.py) or the checkers (analysis.py).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import re
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson

from .. import __version__
from .analysis import summary_lines
from .membership import DEFAULT_WIPE_PATH, NODE_TOKEN, member_problem
from .nemesis import MEMBER_KIND
from .runner import (STORE_TOKEN, JarLogFormatter, Progress, TestOptions, analyze_store,
                     exit_code_for, run_test)

log = logging.getLogger("maelstrom.cli")

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_BAD_ARGS, EXIT_CRASH = 0, 1, 2, 254, 255
WORKLOADS = ("broadcast", "echo", "g-counter", "g-set", "kafka", "lin-kv", "pn-counter",
             "txn-list-append", "txn-rw-register", "unique-ids")
IMPLEMENTED_WORKLOADS = ("lin-kv",)
NEMESES = ("partition",)
EXTENSION_NEMESES = ("kill", "pause", "loss", "dup", MEMBER_KIND)   # loss/dup need --p-loss / --p-dup
LIN_KV_NODE_COUNT_MAX = 10

VERDICTS = {
    EXIT_VALID: "Everything looks good! ヽ(‘ー`)ノ",
    EXIT_INVALID: "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻",
    EXIT_UNKNOWN: "Errors occurred during analysis, but no anomalies found. ಠ~ಠ",
}


class BadArgs(Exception):
    """Invalid command line (exit 254)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2; the jar exits 254
        # Say it as the jar's option parser (tools.cli) does.
        m = re.fullmatch(r"unrecognized arguments: (.*)", message)
        if m:
            raise BadArgs("\n".join(f'Unknown option: "{a}"' for a in m.group(1).split()))
        m = re.fullmatch(r"argument ([^:]+): expected one argument", message)
        if m:
            flag = m.group(1).split("/")[-1]
            raise BadArgs(f'Missing required argument for "{flag} {_METAVARS.get(flag, "ARG")}"')
        raise BadArgs(message)


# The jar's option names for its "Missing required argument" message.
_METAVARS = {"--bin": "FILE", "--workload": "NAME", "-w": "NAME", "--node-count": "NUM",
             "--time-limit": "SECONDS", "--rate": "RATE", "--concurrency": "NUMBER",
             "--latency": "MILLIS", "--latency-dist": "TYPE", "--nemesis": "FAULTS",
             "--nemesis-interval": "SECONDS", "--availability": "EXPECTED",
             "--test-count": "NUMBER", "--nodes": "NODE_LIST", "--nodes-file": "FILENAME",
             "--node": "HOSTNAME", "-n": "HOSTNAME", "--test": "INDEX_OR_PATH",
             "-t": "INDEX_OR_PATH"}


# -- console logging ------------------------------------------------------------------------------
class _ConsoleHandler(logging.StreamHandler):
    """Console log on stdout; clears the progress line first so the two do not interleave."""

    def __init__(self, progress: Progress | None):
        super().__init__(sys.stdout)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        if self.progress is not None:
            self.progress.clear()
        super().emit(record)


def setup_logging(progress: Progress | None) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        if isinstance(handler, _ConsoleHandler):
            root.removeHandler(handler)
    console = _ConsoleHandler(progress)
    console.setFormatter(JarLogFormatter())
    # Every op goes to jepsen.log; the console shows milestones and the progress line instead.
    console.addFilter(lambda record: record.name != "jepsen.util")
    root.addHandler(console)


# -- parsing --------------------------------------------------------------------------------------
def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="maelstrom-py", description=(
        "A Maelstrom-compatible test runner in Python (lin-kv workload). Same commands, flags and "
        "exit codes as `maelstrom test`; flags marked [extension] are ours."))
    p.add_argument("--version", action="version", version=f"maelstrom-py {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    t = sub.add_parser("test", help="run a test", description=(
        "Run a Maelstrom test. Node arguments may follow `--`. Exit codes: 0 valid, 1 invalid, "
        "2 unknown, 254 bad arguments, 255 crash."))
    t.add_argument("-w", "--workload", default="lin-kv", metavar="NAME",
                   help=f"workload to run (default lin-kv; only {', '.join(IMPLEMENTED_WORKLOADS)} "
                        "is implemented)")
    t.add_argument("--bin", metavar="FILE", help="the node binary to test (required)")
    t.add_argument("--node-count", metavar="NUM",
                   help="number of nodes, named n0..n(NUM-1) (default: the node list n1..n5)")
    t.add_argument("-n", "--node", action="append", metavar="HOST", help="a node name (repeatable)")
    t.add_argument("--nodes", metavar="NODE_LIST", help="comma-separated node names")
    t.add_argument("--nodes-file", metavar="FILE", help="file with one node name per line")
    t.add_argument("--time-limit", default="60", metavar="SECONDS",
                   help="how long to run the workload (default 60)")
    t.add_argument("--rate", default="5", metavar="FLOAT",
                   help="approximate requests per second over all clients; 0 = no client ops "
                        "(default 5)")
    t.add_argument("--concurrency", default="1n", metavar="N[n]",
                   help="number of client threads, or Nn for N x node count (default 1n; lin-kv "
                        "needs a positive multiple of 2n)")
    t.add_argument("--latency", default="0", metavar="MILLIS",
                   help="mean server-to-server message latency in ms (default 0)")
    t.add_argument("--latency-dist", default="constant", metavar="TYPE",
                   help="latency distribution: constant, uniform or exponential (default "
                        "constant)")
    t.add_argument("--nemesis", metavar="FAULTS",
                   help="comma-separated faults to inject (default none): 'partition' (the jar's "
                        "only one); [extension] 'kill' (SIGKILL a random minority or sometimes "
                        "all nodes, later restart them with the same command line and init them "
                        "again), 'pause' (SIGSTOP a minority or all, later SIGCONT), 'loss' and "
                        "'dup' (see --p-loss, --p-dup, which also enable them), 'member' "
                        "(membership changes: every interval on average, add a spare or remove a "
                        "member, sometimes the leader, sometimes wiping a removed node's data "
                        "before adding it back; see --initial-members, --wipe-path). One fault "
                        "is active at a time, each start picking a kind at random; membership "
                        "changes run on their own schedule, under whatever fault is active. Any extension "
                        "adds a final recovery phase: heal all, wait --recovery-s, then read every "
                        "key from every node. Node arguments may use {store} (the run's store "
                        "directory), e.g. -- --data-dir {store}/data, so data survive restarts")
    t.add_argument("--nemesis-interval", default="10", metavar="SECONDS",
                   help="mean seconds between nemesis operations (default 10; a ratio such as "
                        "1/2 is accepted)")
    t.add_argument("--p-loss", type=float, default=0.0, metavar="P",
                   help="[extension] enable the 'loss' fault: while it is active, drop each "
                        "server-to-server message with probability P (0 < P <= 1)")
    t.add_argument("--p-dup", type=float, default=0.0, metavar="P",
                   help="[extension] enable the 'dup' fault: while it is active, deliver each "
                        "server-to-server message twice with probability P (0 < P <= 1)")
    t.add_argument("--dup-requests", type=float, default=0.0, metavar="P",
                   help="[extension] send each client request again with probability P (same "
                        "client, same msg_id), as a retrying client or a duplicating proxy would, "
                        "whether or not the first copy was answered; the op completes with the "
                        "first reply, and a write or cas refused with a definite 'not done' code "
                        "(1, 10, 11, 12, 14, 30) counts as indeterminate, since its other copy may "
                        "still take effect")
    t.add_argument("--dup-delay-ms", type=int, default=200, metavar="MILLIS",
                   help="[extension] with --dup-requests: the copy goes U[0, MILLIS] ms after the "
                        "first (default 200)")
    t.add_argument("--dup-target", default="any", choices=("same", "other", "any"),
                   help="[extension] with --dup-requests: send the copy to the same node, another "
                        "node or any node at random (default any)")
    t.add_argument("--initial-members", type=int, metavar="K",
                   help="[extension] init names the first K nodes as the voting members "
                        "(`\"members\": [...]` beside node_ids); the others start as spares "
                        "(1 <= K <= node count; default: no members field, everyone votes)")
    t.add_argument("--wipe-path", metavar="TEMPLATE",
                   help="[extension] with --nemesis member: the node data a wipe deletes, "
                        f"{{store}} and {{node}} filled in (default {DEFAULT_WIPE_PATH}, where "
                        "bin/rast keeps it with -- --data-dir {store}/data)")
    t.add_argument("--no-wipe", action="store_true",
                   help="[extension] with --nemesis member: never wipe a node's data (needed "
                        "when the node keeps none under the store)")
    t.add_argument("--recovery-s", type=float, default=5.0, metavar="SECONDS",
                   help="[extension] with an extension fault: seconds to wait after the final "
                        "heal before the final reads (default 5)")
    t.add_argument("--svg-events", type=int, default=10_000, metavar="N",
                   help="[extension] messages.svg (the Lamport diagram) draws at most N network "
                        "events (default 10000, as the jar)")
    t.add_argument("--svg-window", metavar="FROM:TO",
                   help="[extension] messages.svg draws only the events between FROM and TO "
                        "seconds of history time (e.g. 10:12)")
    t.add_argument("--log-stderr", action="store_true", help="echo node stderr to the log")
    t.add_argument("--log-net-send", action="store_true", help="log every message sent")
    t.add_argument("--log-net-recv", action="store_true", help="log every message delivered")
    t.add_argument("--availability", metavar="total|FRACTION",
                   help="require this fraction of ops to succeed ('total' = all; a ratio such "
                        "as 1/2 is accepted)")
    t.add_argument("--test-count", default="1", metavar="N",
                   help="run the test N times, stopping at the first failure (default 1)")
    t.add_argument("--leave-db-running", action="store_true",
                   help="do not kill the node processes at the end")
    t.add_argument("--seed", type=int, metavar="INT",
                   help="[extension] seed for every random choice (default: random, printed at "
                        "start so a run can be repeated)")
    t.add_argument("--store", default="store", metavar="DIR",
                   help="[extension] store directory (default ./store)")
    # Jar flags that do not apply to lin-kv: accepted and ignored, so jar command lines work.
    for flag in ("--consistency-models", "--topology", "--key-count", "--max-txn-length",
                 "--max-writes-per-key", "--username", "--password", "--ssh-private-key"):
        t.add_argument(flag, help=argparse.SUPPRESS)
    for flag in ("--logging-json", "--strict-host-key-checking", "--no-ssh"):
        t.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    _add_checker_flags(t, "test")
    t.add_argument("node_args", nargs="*", metavar="ARG",
                   help="arguments passed to the node binary (put them after --)")

    a = sub.add_parser("analyze", help="re-check a stored test", description=(
        "Re-run the checkers on a stored test and rewrite its results, as the jar does (no "
        "verdict, exit 0); --verdict also prints the results and the verdict and exits 0/1/2."))
    a.add_argument("-t", "--test", "--test-index", dest="test_index", default="-1",
                   metavar="INDEX_OR_PATH",
                   help="index into the stored tests (default -1, the latest) or the path of a "
                        "stored test (its directory or a file in it)")
    a.add_argument("--verdict", action="store_true",
                   help="[extension] print the results, a summary and the verdict, and exit 0 "
                        "valid, 1 invalid, 2 unknown, as `test` does")
    a.add_argument("-w", "--workload", default="lin-kv", metavar="NAME",
                   help="[extension] which workload's stored tests -t indexes (default lin-kv)")
    a.add_argument("--availability", metavar="total|FRACTION",
                   help="[extension] override the availability requirement stored in test.json")
    a.add_argument("--store", default="store", metavar="DIR",
                   help="[extension] store directory (default ./store)")
    _add_checker_flags(a, "analyze")

    w = sub.add_parser("serve", help="show the store in a browser",
                       description="Serve the store's tests and files over HTTP, as the jar's "
                                   "`serve` does.")
    w.add_argument("-b", "--host", default="0.0.0.0", metavar="HOST",
                   help="hostname to bind to (default 0.0.0.0)")
    w.add_argument("-p", "--port", default="8080", metavar="NUMBER",
                   help="port number to bind to (default 8080)")
    w.add_argument("--store", default="store", metavar="DIR",
                   help="[extension] store directory (default ./store)")
    for name in ("demo", "doc"):
        sub.add_parser(name, help=f"(the jar's `{name}`; not implemented here)")
    return p


_CONCURRENCY = re.compile(r"\d+n?")
_EDN_NUMBER = re.compile(r"[+-]?(\d+)(?:/(\d+)|N)?|[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?M?")
_JAVA_LONG = re.compile(r"[+-]?\d+")
_JAVA_DOUBLE = re.compile(r"[+-]?(NaN|Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)[fFdD]?")


class _Invalid(Exception):
    """One option value the jar would refuse; the message is the jar's (tools.cli's) wording."""


def _failed(flag: str, text: str, why: str) -> _Invalid:
    return _Invalid(f'Failed to validate "{flag} {text}": {why}')


def _java_long(flag: str, text: str) -> int:
    """Long/parseLong, with the jar's parse error."""
    if not _JAVA_LONG.fullmatch(text):
        return _parse_error(flag, text)
    return int(text)


def _parse_error(flag: str, text: str):
    raise _Invalid(f'Error while parsing option "{flag} {text}": '
                   f'java.lang.NumberFormatException: For input string: "{text}"')


def _edn_number(text: str) -> Fraction | float | None:
    """A number as Clojure's reader reads it: 3, 1/2, 0.5, 1e-3 (None: not a number)."""
    t = text.strip()
    if not _EDN_NUMBER.fullmatch(t):
        return None
    t = t.rstrip("NM")
    return float(t) if re.search(r"[.eE]", t) else Fraction(t)


def parse_concurrency(text: str, node_count: int) -> int:
    s = text.strip()
    if not _CONCURRENCY.fullmatch(s):
        raise BadArgs(str(_failed("--concurrency", text,
                                  "Must be an integer, optionally followed by n.")))
    if s.endswith("n"):
        return int(s[:-1]) * node_count
    return int(s)


def parse_availability(text: str | None) -> Any:
    if text is None or text == "nil":
        return None
    if text == "total":
        return "total"
    x = _edn_number(text)
    if x is None or not 0 <= x <= 1:
        raise BadArgs(str(_failed("--availability", text,
                                  "must be either 'total' or a number between 0 and 1.")))
    return float(x)


def _split_nodes_file(text: str) -> list[str]:
    """As Java's split on \\s*\\n\\s*: trailing empty strings dropped."""
    parts = re.split(r"\s*\n\s*", text)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _node_list(ns: argparse.Namespace) -> list[str]:
    """The jar's merge: --node-count replaces --nodes, then the list is --nodes-file's names,
    then --nodes (or the --node-count names), then every -n; the default n1..n5 only when none
    of these is given."""
    nodes_opt = None
    if ns.node_count is not None:
        count = int(ns.node_count) if _JAVA_LONG.fullmatch(ns.node_count) else None
        if count is None or count < 1:
            raise BadArgs(str(_failed("--node-count", ns.node_count, "Must be positive.")))
        nodes_opt = [f"n{i}" for i in range(count)]
    elif ns.nodes:
        nodes_opt = re.split(r",\s*", ns.nodes)
    from_file: list[str] = []
    if ns.nodes_file:
        try:
            from_file = _split_nodes_file(Path(ns.nodes_file).read_text())
        except OSError as exc:
            raise BadArgs(f"cannot read --nodes-file: {exc}") from None
    nodes = from_file + (nodes_opt or []) + (ns.node or [])
    if nodes_opt is None and not ns.nodes_file and not ns.node:
        nodes = [f"n{i}" for i in range(1, 6)]
    for node in nodes:
        if node.startswith("c"):
            raise BadArgs(f"node names may not start with 'c' (that marks clients): {node}")
    if len(set(nodes)) != len(nodes):
        raise BadArgs(f"duplicate node names in {nodes}")
    return nodes


def _jar_values(ns: argparse.Namespace) -> None:
    """Parse and validate the jar's numeric options in place, with the jar's messages; every bad
    one is reported (one line each), as tools.cli collects them."""
    errors: list[str] = []

    def check(fn) -> None:
        try:
            fn()
        except _Invalid as exc:
            errors.append(str(exc))

    def time_limit() -> None:
        ns.time_limit = _java_long("--time-limit", ns.time_limit)
        if ns.time_limit <= 0:
            raise _failed("--time-limit", str(ns.time_limit), "Must be positive")

    def test_count() -> None:
        text = ns.test_count
        ns.test_count = _java_long("--test-count", text)
        if ns.test_count <= 0:
            raise _failed("--test-count", text, "Must be positive")

    def rate() -> None:
        text = ns.rate
        if not _JAVA_DOUBLE.fullmatch(text.strip()):
            _parse_error("--rate", text)
        ns.rate = float(text.strip().rstrip("fFdD").replace("Infinity", "inf"))
        if ns.rate < 0:
            raise _failed("--rate", text, "Can't be negative")

    def latency() -> None:
        text = ns.latency
        ns.latency = int(text) if _JAVA_LONG.fullmatch(text) else None
        if ns.latency is None or ns.latency < 0:
            raise _failed("--latency", text, "Must be non-negative")

    def latency_dist() -> None:
        if ns.latency_dist not in ("constant", "uniform", "exponential"):
            raise _failed("--latency-dist", ns.latency_dist,
                          "Must be constant, uniform, or exponential")

    def nemesis_interval() -> None:
        text = ns.nemesis_interval
        x = _edn_number(text)
        if x is None or not x > 0:
            raise _failed("--nemesis-interval", text, "Must be positive")
        ns.nemesis_interval = float(x)

    def workload() -> None:
        if ns.workload not in WORKLOADS:
            typed = "-w" if "-w" in getattr(ns, "argv", ()) else "--workload"
            raise _failed(typed, ns.workload, f"Must be one of {', '.join(WORKLOADS)}")

    def concurrency() -> None:
        if not _CONCURRENCY.fullmatch(ns.concurrency.strip()):
            raise _failed("--concurrency", ns.concurrency,
                          "Must be an integer, optionally followed by n.")

    for fn in (workload, time_limit, rate, concurrency, latency, latency_dist, nemesis_interval,
               test_count):
        check(fn)
    if not ns.bin:
        errors.append("Expected a --bin PATH_TO_BINARY to test")
    if errors:
        raise BadArgs("\n".join(errors))


def test_options(ns: argparse.Namespace) -> tuple[TestOptions, int]:
    """Validated options plus the test count."""
    _jar_values(ns)
    if ns.workload not in IMPLEMENTED_WORKLOADS:
        raise BadArgs(f"workload {ns.workload!r} is not implemented by maelstrom-py; only "
                      f"{', '.join(IMPLEMENTED_WORKLOADS)} is")
    nodes = _node_list(ns)
    if len(nodes) > LIN_KV_NODE_COUNT_MAX:
        raise BadArgs(f"lin-kv supports at most {LIN_KV_NODE_COUNT_MAX} nodes (with more, 2n "
                      f"threads exceed the 20-process key limit and the jar's generator never "
                      f"emits an op); got {len(nodes)}")
    if ns.latency_dist != "constant" and ns.latency == 0:
        raise BadArgs(f"--latency-dist {ns.latency_dist} needs --latency > 0 (the jar hangs or "
                      f"crashes with a mean of 0)")
    nemesis = {x for x in re.split(r"\s*,\s*", ns.nemesis or "") if x}
    for fault in sorted(nemesis):
        if fault not in NEMESES + EXTENSION_NEMESES:
            raise BadArgs(str(_failed("--nemesis", ns.nemesis, "Must be one of partition"))
                          + f" ([extension] or {', '.join(EXTENSION_NEMESES)})")
    for flag, p, kind in (("--p-loss", ns.p_loss, "loss"), ("--p-dup", ns.p_dup, "dup")):
        if not 0 <= p <= 1:
            raise BadArgs(f"{flag} must be a probability in [0, 1]; got {p}")
        if p > 0:
            nemesis.add(kind)
        elif kind in nemesis:
            raise BadArgs(f"the {kind} nemesis needs its probability: add {flag} P (0 < P <= 1)")
    nemesis = sorted(nemesis)
    _check_membership(ns, nemesis, len(nodes))
    if not 0 <= ns.dup_requests <= 1:
        raise BadArgs(f"--dup-requests must be a probability in [0, 1]; got {ns.dup_requests}")
    if ns.dup_delay_ms < 0:
        raise BadArgs(f"--dup-delay-ms must be >= 0; got {ns.dup_delay_ms}")
    if ns.recovery_s < 0:
        raise BadArgs(f"--recovery-s must be >= 0; got {ns.recovery_s}")
    if ns.svg_events < 1:
        raise BadArgs(f"--svg-events must be at least 1; got {ns.svg_events}")
    svg_window = None
    if ns.svg_window:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*:\s*(\d+(?:\.\d*)?)\s*", ns.svg_window)
        if not m or float(m.group(1)) >= float(m.group(2)):
            raise BadArgs(f"--svg-window must be FROM:TO seconds with FROM < TO, e.g. 10:12; "
                          f"got {ns.svg_window!r}")
        svg_window = (float(m.group(1)), float(m.group(2)))
    seed = ns.seed if ns.seed is not None else random.SystemRandom().randrange(2**31)
    opts = TestOptions(
        bin=os.path.realpath(ns.bin), args=list(ns.node_args), workload=ns.workload, nodes=nodes,
        time_limit=ns.time_limit, rate=ns.rate,
        concurrency=parse_concurrency(ns.concurrency, len(nodes)), latency=ns.latency,
        latency_dist=ns.latency_dist, nemesis=nemesis, nemesis_interval=ns.nemesis_interval,
        log_stderr=ns.log_stderr, log_net_send=ns.log_net_send, log_net_recv=ns.log_net_recv,
        availability=parse_availability(ns.availability), leave_db_running=ns.leave_db_running,
        seed=seed, store=ns.store, p_loss=ns.p_loss, p_dup=ns.p_dup, recovery_s=ns.recovery_s,
        svg_events=ns.svg_events, svg_window=svg_window, dup_requests=ns.dup_requests,
        dup_delay_ms=ns.dup_delay_ms, dup_target=ns.dup_target,
        initial_members=ns.initial_members, wipe_path=ns.wipe_path or DEFAULT_WIPE_PATH,
        wipe=not ns.no_wipe,
        absent_reads=ns.absent_reads, **{k: v for k, v in checker_budget(ns).items() if v is not None})
    return opts, ns.test_count


def _check_membership(ns: argparse.Namespace, nemesis: list[str], node_count: int) -> None:
    """[extension] --initial-members, --nemesis member and its wipes: refuse what makes no sense."""
    k = ns.initial_members
    if k is not None and not 1 <= k <= node_count:
        raise BadArgs(f"--initial-members must be between 1 and the node count ({node_count}); "
                      f"got {k}")
    if MEMBER_KIND not in nemesis:
        for flag, given in (("--wipe-path", ns.wipe_path is not None), ("--no-wipe", ns.no_wipe)):
            if given:
                raise BadArgs(f"{flag} applies to the member nemesis: add --nemesis member")
        return
    problem = member_problem(node_count, k)
    if problem is not None:
        raise BadArgs(problem)
    if ns.no_wipe:
        if ns.wipe_path is not None:
            raise BadArgs("--wipe-path and --no-wipe contradict each other")
        return
    template = ns.wipe_path or DEFAULT_WIPE_PATH
    if NODE_TOKEN not in template:
        raise BadArgs(f"--wipe-path must contain {NODE_TOKEN} (each node's own data); got "
                      f"{template!r}")
    if STORE_TOKEN in template and not any(STORE_TOKEN in a for a in ns.node_args):
        raise BadArgs(f"the member nemesis wipes {template}, but no node argument contains "
                      f"{STORE_TOKEN}, so the node keeps its data elsewhere (or nowhere): pass e.g. "
                      f"`-- --data-dir {STORE_TOKEN}/data`, point --wipe-path at the node's data, "
                      f"or add --no-wipe")


def _add_checker_flags(parser: argparse.ArgumentParser, command: str) -> None:
    stored = " (default: as stored in test.json)" if command == "analyze" else ""
    parser.add_argument("--lin-time-limit", type=float, metavar="SECONDS",
                        help="[extension] the linearizability checker's time budget for each key "
                             f"(default 60; the jar's Knossos has none){stored}")
    parser.add_argument("--lin-config-max", type=int, metavar="N",
                        help="[extension] configurations one key's search may hold in memory "
                             f"(default 1000000, about 500 MB at most){stored}")
    parser.add_argument("--absent-reads", action=argparse.BooleanOptionalAction, default=None,
                        help="[extension] check a read that failed with key-does-not-exist (20) as "
                             "an observation that the key was absent, instead of dropping it as "
                             "the jar does (default: on with the extension faults kill, pause, "
                             f"loss, dup, member; off otherwise){stored}")


def checker_budget(ns: argparse.Namespace) -> dict:
    """The checker budget flags as analysis keyword arguments (None: not given)."""
    for flag, value in (("--lin-time-limit", ns.lin_time_limit), ("--lin-config-max", ns.lin_config_max)):
        if value is not None and value <= 0:
            raise BadArgs(f"{flag} must be positive; got {value}")
    return {"lin_time_limit_s": ns.lin_time_limit, "lin_config_max": ns.lin_config_max}


# -- commands -------------------------------------------------------------------------------------
def print_results(results: dict, store_dir: Path | None) -> None:
    edn = store_dir / "results.edn" if store_dir else None
    if edn is not None and edn.is_file():
        text = edn.read_text(encoding="utf-8", errors="replace")
    else:
        text = orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                            default=str).decode()
    print("\n" + text.rstrip() + "\n", flush=True)
    try:
        lines = summary_lines(results)
    except Exception as exc:  # a summary must never hide the verdict
        log.warning("could not summarise the results: %r", exc)
        lines = []
    if lines:
        print("\n".join(lines) + "\n", flush=True)


def print_verdict(code: int) -> None:
    if code in VERDICTS:
        print(VERDICTS[code], flush=True)


def cmd_test(ns: argparse.Namespace) -> int:
    opts, count = test_options(ns)
    progress = Progress()
    setup_logging(progress)
    code = EXIT_VALID
    base_seed = opts.seed
    for i in range(count):
        opts.seed = base_seed + i
        print(f"maelstrom-py: test {i + 1}/{count}, seed {opts.seed}", file=sys.stderr, flush=True)
        outcome = run_test(opts, progress)
        if outcome.exit_code == EXIT_CRASH:
            print(f"\nTest crashed (exit 255): {outcome.message}\nStore: {outcome.store_dir}",
                  file=sys.stderr, flush=True)
            return EXIT_CRASH
        print_results(outcome.results, outcome.store_dir)
        if outcome.final_reads is not None:
            f = outcome.final_reads
            print(f"Final reads [extension]: {f['answered']} of {f['planned']} answered after "
                  f"{f['recovery_s']:g} s of recovery ({f['ok']} values, {f['absent']} absent "
                  f"keys never written; {f['keys']} keys x {f['nodes']} nodes; "
                  f"{f['restarts']} node restarts during the run)", flush=True)
            if f["lost"]:
                print(f"ACKNOWLEDGED WRITES LOST [extension]: {f['lost']} final reads said keys "
                      f"{f['lost-keys']} do not exist, though each had an acknowledged write "
                      + ("(the strict reading of absent keys lets the linearizability checker "
                         "see this too)" if (outcome.results or {}).get("workload", {}).get(
                             "absent-reads") else
                         "(the linearizability checker cannot see this: failed reads are "
                         "dropped; --absent-reads checks them)"), flush=True)
        if outcome.membership is not None:
            print(outcome.membership, flush=True)
        print_verdict(outcome.exit_code)
        code = outcome.exit_code
        if code != EXIT_VALID:
            return code
    return code


def find_stored_test(store: Path, workload: str, index: str) -> Path:
    if not re.fullmatch(r"-?\d+", index):
        path = Path(index)
        if path.is_file():
            path = path.parent   # e.g. the test.json (the jar's test.jepsen) of a stored test
        if not (path / "test.json").is_file():
            raise BadArgs(f"{path} is not a stored test (no test.json)")
        return path
    i = int(index)
    base = store / workload
    runs = sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink()
                  and (p / "test.json").is_file()) if base.is_dir() else []
    if not runs:
        raise BadArgs(f"no stored {workload} tests under {base}")
    try:
        return runs[i]
    except IndexError:
        raise BadArgs(f"test index {i} out of range ({len(runs)} stored tests)") from None


def cmd_analyze(ns: argparse.Namespace) -> int:
    setup_logging(None)
    store_dir = find_stored_test(Path(ns.store), ns.workload, ns.test_index)
    availability = parse_availability(ns.availability)
    if availability is None:
        try:
            availability = orjson.loads((store_dir / "test.json").read_bytes()).get("availability")
        except (OSError, orjson.JSONDecodeError):
            availability = None
    log.info("Analyzing %s", store_dir)
    results = analyze_store(store_dir, availability=availability, absent_reads=ns.absent_reads,
                            **checker_budget(ns))
    log.info("Analysis complete")
    if not ns.verdict:
        return EXIT_VALID   # the jar's analyze prints no verdict and exits 0
    code = exit_code_for(results)
    print_results(results, store_dir)
    print_verdict(code)
    return code


def cmd_serve(ns: argparse.Namespace) -> int:
    from .web import make_server

    port = _java_long("--port", ns.port) if _JAVA_LONG.fullmatch(ns.port) else None
    if port is None or port <= 0:
        raise BadArgs(str(_failed("--port", ns.port, "Must be positive")))
    setup_logging(None)
    try:
        server = make_server(Path(ns.store), ns.host, port)
    except OSError as exc:
        log.error("could not listen on %s:%d: %s", ns.host, port, exc)
        return EXIT_CRASH
    log.info("Listening on http://%s:%d/", ns.host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return EXIT_VALID


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    try:
        ns = parser.parse_args(argv)
        ns.argv = list(sys.argv[1:] if argv is None else argv)
        if ns.command == "test":
            return cmd_test(ns)
        if ns.command == "analyze":
            return cmd_analyze(ns)
        if ns.command == "serve":
            return cmd_serve(ns)
        if ns.command is None:
            parser.print_usage(sys.stderr)
            raise BadArgs("expected a command: test or analyze")
        raise BadArgs(f"the {ns.command!r} command is not implemented by maelstrom-py")
    except BadArgs as exc:
        print(exc, flush=True)   # the jar prints argument errors on stdout
        return EXIT_BAD_ARGS
    except KeyboardInterrupt:
        print("maelstrom-py: interrupted", file=sys.stderr)
        return EXIT_CRASH
