"""Command line of maelstrom-py: the jar's `test` and `analyze` commands, flags, exit codes, verdicts.

Owns: parsing and validating arguments (maelstrom-spec §6), console logging, the live progress line,
printing results and the jar's verdict line, and mapping outcomes to exit codes:
0 valid, 1 invalid, 2 unknown, 254 bad arguments or unknown command, 255 crash.
Flags the jar has but lin-kv ignores are accepted and ignored; our extensions are marked
"[extension]" in --help: --seed, --store, the nemesis faults beyond `partition` (`--nemesis kill`,
`pause`, `loss`, `dup`; `--p-loss P` and `--p-dup P` give the last two their probability and
enable them on their own) and --recovery-s (the wait before the final reads that any extension
fault adds). Without them a run is the jar's.

May not touch: the run itself (runner.py) or the checkers (analysis.py).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
from pathlib import Path
from typing import Any

import orjson

from .analysis import summary_lines
from .runner import Progress, TestOptions, analyze_store, exit_code_for, run_test

log = logging.getLogger("maelstrom.cli")

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_BAD_ARGS, EXIT_CRASH = 0, 1, 2, 254, 255
WORKLOADS = ("broadcast", "echo", "g-counter", "g-set", "kafka", "lin-kv", "pn-counter",
             "txn-list-append", "txn-rw-register", "unique-ids")
IMPLEMENTED_WORKLOADS = ("lin-kv",)
NEMESES = ("partition",)
EXTENSION_NEMESES = ("kill", "pause", "loss", "dup")   # loss/dup need --p-loss / --p-dup
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
        raise BadArgs(message)


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
    console.setFormatter(logging.Formatter("%(levelname)s [%(asctime)s] %(name)s - %(message)s"))
    # Every op goes to jepsen.log; the console shows milestones and the progress line instead.
    console.addFilter(lambda record: record.name != "maelstrom.ops")
    root.addHandler(console)


# -- parsing --------------------------------------------------------------------------------------
def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="maelstrom-py", description=(
        "A Maelstrom-compatible test runner in Python (lin-kv workload). Same commands, flags and "
        "exit codes as `maelstrom test`; flags marked [extension] are ours."))
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    t = sub.add_parser("test", help="run a test", description=(
        "Run a Maelstrom test. Node arguments may follow `--`. Exit codes: 0 valid, 1 invalid, "
        "2 unknown, 254 bad arguments, 255 crash."))
    t.add_argument("-w", "--workload", default="lin-kv", metavar="NAME",
                   help=f"workload to run (default lin-kv; only {', '.join(IMPLEMENTED_WORKLOADS)} "
                        "is implemented)")
    t.add_argument("--bin", metavar="FILE", help="the node binary to test (required)")
    t.add_argument("--node-count", type=int, metavar="NUM",
                   help="number of nodes, named n0..n(NUM-1) (default: the node list n1..n5)")
    t.add_argument("-n", "--node", action="append", metavar="HOST", help="a node name (repeatable)")
    t.add_argument("--nodes", metavar="NODE_LIST", help="comma-separated node names")
    t.add_argument("--nodes-file", metavar="FILE", help="file with one node name per line")
    t.add_argument("--time-limit", type=int, default=60, metavar="SECONDS",
                   help="how long to run the workload (default 60)")
    t.add_argument("--rate", type=float, default=5.0, metavar="FLOAT",
                   help="approximate requests per second over all clients; 0 = no client ops "
                        "(default 5)")
    t.add_argument("--concurrency", default="1n", metavar="N[n]",
                   help="number of client threads, or Nn for N x node count (default 1n; lin-kv "
                        "needs a positive multiple of 2n)")
    t.add_argument("--latency", type=int, default=0, metavar="MILLIS",
                   help="mean server-to-server message latency in ms (default 0)")
    t.add_argument("--latency-dist", default="constant",
                   choices=("constant", "uniform", "exponential"),
                   help="latency distribution (default constant)")
    t.add_argument("--nemesis", metavar="FAULTS",
                   help="comma-separated faults to inject (default none): 'partition' (the jar's "
                        "only one); [extension] 'kill' (SIGKILL a random minority or sometimes "
                        "all nodes, later restart them with the same command line and init them "
                        "again), 'pause' (SIGSTOP a minority or all, later SIGCONT), 'loss' and "
                        "'dup' (see --p-loss, --p-dup, which also enable them). One fault "
                        "is active at a time, each start picking a kind at random. Any extension "
                        "adds a final recovery phase: heal all, wait --recovery-s, then read every "
                        "key from every node. Node arguments may use {store} (the run's store "
                        "directory), e.g. -- --data-dir {store}/data, so data survive restarts")
    t.add_argument("--nemesis-interval", type=float, default=10.0, metavar="SECONDS",
                   help="mean seconds between nemesis operations (default 10)")
    t.add_argument("--p-loss", type=float, default=0.0, metavar="P",
                   help="[extension] enable the 'loss' fault: while it is active, drop each "
                        "server-to-server message with probability P (0 < P <= 1)")
    t.add_argument("--p-dup", type=float, default=0.0, metavar="P",
                   help="[extension] enable the 'dup' fault: while it is active, deliver each "
                        "server-to-server message twice with probability P (0 < P <= 1)")
    t.add_argument("--recovery-s", type=float, default=5.0, metavar="SECONDS",
                   help="[extension] with an extension fault: seconds to wait after the final "
                        "heal before the final reads (default 5)")
    t.add_argument("--log-stderr", action="store_true", help="echo node stderr to the log")
    t.add_argument("--log-net-send", action="store_true", help="log every message sent")
    t.add_argument("--log-net-recv", action="store_true", help="log every message delivered")
    t.add_argument("--availability", metavar="total|FRACTION",
                   help="require this fraction of ops to succeed ('total' = all)")
    t.add_argument("--test-count", type=int, default=1, metavar="N",
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

    a = sub.add_parser("analyze", help="re-check a stored test",
                       description="Re-run analysis on a stored test and print its verdict.")
    a.add_argument("-t", "--test-index", default="-1", metavar="INDEX|PATH",
                   help="index into the stored lin-kv tests (default -1, the latest) or a path")
    a.add_argument("-w", "--workload", default="lin-kv", metavar="NAME")
    a.add_argument("--availability", metavar="total|FRACTION",
                   help="override the availability requirement stored in test.json")
    a.add_argument("--store", default="store", metavar="DIR",
                   help="[extension] store directory (default ./store)")
    _add_checker_flags(a, "analyze")

    for name in ("serve", "demo", "doc"):
        sub.add_parser(name, help=f"(the jar's `{name}`; not implemented here)")
    return p


def parse_concurrency(text: str, node_count: int) -> int:
    s = text.strip()
    try:
        if s.endswith("n"):
            return int(s[:-1]) * node_count
        return int(s)
    except ValueError:
        raise BadArgs(f"--concurrency must be an integer or an integer followed by n, like 2n; "
                      f"got {text!r}") from None


def parse_availability(text: str | None) -> Any:
    if text is None:
        return None
    if text == "total":
        return "total"
    try:
        x = float(text)
    except ValueError:
        raise BadArgs(f"--availability must be 'total' or a number in [0, 1]; got {text!r}") from None
    if not 0 <= x <= 1:
        raise BadArgs(f"--availability must be in [0, 1]; got {x}")
    return x


def _node_list(ns: argparse.Namespace) -> list[str]:
    if ns.node_count is not None:
        if ns.node_count < 1:
            raise BadArgs(f"--node-count must be at least 1; got {ns.node_count}")
        return [f"n{i}" for i in range(ns.node_count)]
    nodes: list[str] = []
    if ns.node:
        nodes += ns.node
    if ns.nodes:
        nodes += [x for x in ns.nodes.split(",") if x]
    if ns.nodes_file:
        try:
            nodes += [x.strip() for x in Path(ns.nodes_file).read_text().splitlines() if x.strip()]
        except OSError as exc:
            raise BadArgs(f"cannot read --nodes-file: {exc}") from None
    if not nodes:
        nodes = [f"n{i}" for i in range(1, 6)]
    for node in nodes:
        if node.startswith("c"):
            raise BadArgs(f"node names may not start with 'c' (that marks clients): {node}")
    if len(set(nodes)) != len(nodes):
        raise BadArgs(f"duplicate node names in {nodes}")
    return nodes


def test_options(ns: argparse.Namespace) -> tuple[TestOptions, int]:
    """Validated options plus the test count."""
    if ns.workload not in WORKLOADS:
        raise BadArgs(f"unknown workload {ns.workload!r}; known: {', '.join(WORKLOADS)}")
    if ns.workload not in IMPLEMENTED_WORKLOADS:
        raise BadArgs(f"workload {ns.workload!r} is not implemented by maelstrom-py; only "
                      f"{', '.join(IMPLEMENTED_WORKLOADS)} is")
    if not ns.bin:
        raise BadArgs("Expected a --bin PATH_TO_BINARY to test")
    nodes = _node_list(ns)
    if len(nodes) > LIN_KV_NODE_COUNT_MAX:
        raise BadArgs(f"lin-kv supports at most {LIN_KV_NODE_COUNT_MAX} nodes (with more, 2n "
                      f"threads exceed the 20-process key limit and the jar's generator never "
                      f"emits an op); got {len(nodes)}")
    if ns.time_limit < 0:
        raise BadArgs(f"--time-limit must be >= 0; got {ns.time_limit}")
    if ns.rate < 0:
        raise BadArgs(f"--rate must be >= 0; got {ns.rate}")
    if ns.latency < 0:
        raise BadArgs(f"--latency must be >= 0; got {ns.latency}")
    if ns.latency_dist != "constant" and ns.latency == 0:
        raise BadArgs(f"--latency-dist {ns.latency_dist} needs --latency > 0 (the jar hangs or "
                      f"crashes with a mean of 0)")
    if ns.nemesis_interval <= 0:
        raise BadArgs(f"--nemesis-interval must be positive; got {ns.nemesis_interval}")
    nemesis = {x.strip() for x in (ns.nemesis or "").split(",") if x.strip()}
    for fault in sorted(nemesis):
        if fault not in NEMESES + EXTENSION_NEMESES:
            raise BadArgs(f"unknown nemesis fault {fault!r}; known: partition (the jar's), and "
                          f"the extensions {', '.join(EXTENSION_NEMESES)}")
    for flag, p, kind in (("--p-loss", ns.p_loss, "loss"), ("--p-dup", ns.p_dup, "dup")):
        if not 0 <= p <= 1:
            raise BadArgs(f"{flag} must be a probability in [0, 1]; got {p}")
        if p > 0:
            nemesis.add(kind)
        elif kind in nemesis:
            raise BadArgs(f"the {kind} nemesis needs its probability: add {flag} P (0 < P <= 1)")
    nemesis = sorted(nemesis)
    if ns.recovery_s < 0:
        raise BadArgs(f"--recovery-s must be >= 0; got {ns.recovery_s}")
    if ns.test_count < 1:
        raise BadArgs(f"--test-count must be at least 1; got {ns.test_count}")
    seed = ns.seed if ns.seed is not None else random.SystemRandom().randrange(2**31)
    opts = TestOptions(
        bin=os.path.realpath(ns.bin), args=list(ns.node_args), workload=ns.workload, nodes=nodes,
        time_limit=ns.time_limit, rate=ns.rate,
        concurrency=parse_concurrency(ns.concurrency, len(nodes)), latency=ns.latency,
        latency_dist=ns.latency_dist, nemesis=nemesis, nemesis_interval=ns.nemesis_interval,
        log_stderr=ns.log_stderr, log_net_send=ns.log_net_send, log_net_recv=ns.log_net_recv,
        availability=parse_availability(ns.availability), leave_db_running=ns.leave_db_running,
        seed=seed, store=ns.store, p_loss=ns.p_loss, p_dup=ns.p_dup, recovery_s=ns.recovery_s,
        absent_reads=ns.absent_reads, **{k: v for k, v in checker_budget(ns).items() if v is not None})
    return opts, ns.test_count


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
                             f"loss, dup; off otherwise){stored}")


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
        print_verdict(outcome.exit_code)
        code = outcome.exit_code
        if code != EXIT_VALID:
            return code
    return code


def find_stored_test(store: Path, workload: str, index: str) -> Path:
    try:
        i = int(index)
    except ValueError:
        path = Path(index)
        if not (path / "test.json").is_file():
            raise BadArgs(f"{path} is not a stored test (no test.json)") from None
        return path
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
    code = exit_code_for(results)
    print_results(results, store_dir)
    print_verdict(code)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    try:
        ns = parser.parse_args(argv)
        if ns.command == "test":
            return cmd_test(ns)
        if ns.command == "analyze":
            return cmd_analyze(ns)
        if ns.command is None:
            parser.print_usage(sys.stderr)
            raise BadArgs("expected a command: test or analyze")
        raise BadArgs(f"the {ns.command!r} command is not implemented by maelstrom-py")
    except BadArgs as exc:
        print(f"maelstrom-py: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGS
    except KeyboardInterrupt:
        print("maelstrom-py: interrupted", file=sys.stderr)
        return EXIT_CRASH
