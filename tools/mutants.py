"""Mutation testing with a named list of mutants: each one removes a safety mechanism (or breaks
one), and the tests that exist for that mechanism must fail against it.

    python tools/mutants.py            # every mutant, two at a time; the table; exit 1 if one survives
    python tools/mutants.py --list     # the mutants and their test selections
    python tools/mutants.py -k wal     # only mutants whose name contains "wal"

A mutant is (name, file, the exact source snippet it replaces, the replacement, the tests that
must kill it, what a user would see). Each runs in its own temporary copy of the tree (never in
place): `rast_maelstrom/`, `tests/`, `bin/`, `pyproject.toml`, with `.venv` linked to this
worktree's, and PYTHONPATH pointing at the copy, so the tests, `bin/rast` and `bin/maelstrom-py`
inside the copy all run the mutated code (checked before the first mutant runs).

A snippet that is missing, or found more than once, fails the whole run before any test runs
(exit 2), naming the mutant: after a merge, re-anchor it. A selection that collects no tests, or a
pytest that ends in an internal or usage error, is a failure of this tool too (exit 2), never a
kill. A mutant is killed when at least one selected test fails (the table names every failing
test); it survives when they all pass (exit 1).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("rast_maelstrom", "tests", "bin", "pyproject.toml")
mutant_timeout_s = 300.0  # one mutant's test run; longer is a hang, reported as an error
jobs_default = 2
killers_shown_max = 4  # killing tests listed per mutant in the table


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    old: str  # exact snippet, found exactly once
    new: str
    tests: tuple[str, ...]  # pytest node ids or files that must kill it
    what: str  # what removing the mechanism breaks, as a user would notice


M = Mutant
MUTANTS: tuple[Mutant, ...] = (
    # ------------------------------------------------------------------ the runner and its checker
    M("partition-nemesis-drops-nothing", "rast_maelstrom/harness/nemesis.py",
      "            grudge = partition_grudge(value, self.nodes, self.rng)\n"
      "            self.network.drop_grudge(grudge)\n",
      "            grudge = partition_grudge(value, self.nodes, self.rng)\n",
      ("tests/test_runner_faults.py::test_a_partition_cuts_the_network_until_it_heals",
       "tests/test_runner_e2e.py::test_correct_kv_under_partitions_passes"),
      "a 'partition' test that partitions nothing"),
    M("kill-nemesis-kills-nothing", "rast_maelstrom/harness/process.py",
      "        before = self.proc.poll()\n        if before is None:\n            self._sigkill_and_wait()\n"
      "        # What it wrote before dying",
      "        before = self.proc.poll()\n        if before is None:\n            pass\n"
      "        # What it wrote before dying",
      ("tests/test_e2e_faults.py::test_rast_3_nodes_under_kill_is_linearizable_and_recovers",),
      "a 'kill' test whose nodes never die"),
    M("pause-nemesis-stops-nothing", "rast_maelstrom/harness/process.py",
      "            os.kill(self.proc.pid, signal.SIGSTOP)\n",
      "            pass\n",
      ("tests/test_e2e_faults.py::test_rast_3_nodes_under_kill_pause_partition_and_loss",),
      "a 'pause' test whose nodes keep running"),
    M("loss-nemesis-drops-nothing", "rast_maelstrom/harness/network.py",
      "        self.p_loss = p\n",
      "        self.p_loss = 0.0\n",
      ("tests/test_runner_faults.py::test_p_loss_drops_that_fraction_of_server_messages_and_never_client_ones",),
      "a '--p-loss' test that loses nothing"),
    M("dup-nemesis-duplicates-nothing", "rast_maelstrom/harness/network.py",
      "        self.p_dup = p\n",
      "        self.p_dup = 0.0\n",
      ("tests/test_runner_faults.py::test_p_dup_delivers_that_fraction_of_server_messages_twice_with_the_same_id",),
      "a '--p-dup' test that duplicates nothing"),
    M("checker-accepts-any-read", "rast_maelstrom/harness/linearizability.py",
      '    for pos, rec in enumerate(ops):\n        proc = rec.get("process")\n'
      '        if proc == "nemesis" or rec.get("f") not in _CLIENT_FS:\n',
      '    for pos, rec in enumerate(ops):\n        proc = rec.get("process")\n'
      '        if proc == "nemesis" or rec.get("f") not in _CLIENT_FS or rec.get("f") == "read":\n',
      ("tests/test_linearizability.py",),
      "stale reads judged linearizable"),
    M("indefinite-errors-reported-definite", "rast_maelstrom/harness/workload.py",
      '        if definite or f == "read":\n',
      "        if True:\n",
      ("tests/test_runner_units.py",),
      "a write that may have happened is recorded as failed: false alarms or missed bugs"),
    M("plots-without-fault-shading", "rast_maelstrom/harness/plots.py",
      "        labelled.add(kind)\n        ax.axvspan(\n",
      "        labelled.add(kind)\n        continue\n        ax.axvspan(\n",
      ("tests/test_analysis.py::test_plots_are_900x400_pngs_with_fault_periods",),
      "latency and rate plots with no partition periods on them"),
    M("member-nemesis-below-majority", "rast_maelstrom/harness/membership.py",
      "        can_shrink = len(self.members) > self.floor\n",
      "        can_shrink = len(self.members) >= self.floor\n",
      ("tests/test_runner_membership.py",),
      "the member nemesis shrinks a cluster below a majority of its initial size"),
    M("member-nemesis-wipes-never-members", "rast_maelstrom/harness/membership.py",
      "        wipe = (self.wipe and node in self.removed() and rng.random() < wipe_probability\n",
      "        wipe = (self.wipe and rng.random() < wipe_probability\n",
      ("tests/test_runner_membership.py",),
      "wipes of spares that never held a member's data: the wiped re-adds test nothing"),
    M("member-wipe-deletes-nothing", "rast_maelstrom/harness/runner.py",
      "                shutil.rmtree(path)\n",
      "                pass\n",
      ("tests/test_runner_membership.py::test_a_wipe_kills_the_node_deletes_its_wipe_path_then_restarts_it_with_the_members",),
      "'wiped' re-adds of nodes that kept their data"),
    M("init-without-members", "rast_maelstrom/harness/membership.py",
      "    if members is not None:\n        body[\"members\"] = list(members)\n",
      "    pass\n",
      ("tests/test_runner_membership.py::test_init_carries_members_only_when_asked",),
      "--initial-members starts every node as a voter"),
    # ------------------------------------------------------------------ the node glue and its WAL
    M("glue-says-durable-at-submit", "rast_maelstrom/node.py",
      "                        bid = self.writer.submit(rd.hard_state, rd.entries_start, rd.entries,\n"
      "                                                 *extra)\n",
      "                        bid = self.writer.submit(rd.hard_state, rd.entries_start, rd.entries,\n"
      "                                                 *extra)\n"
      "                        self.raft.persisted(last_index, last_term)\n",
      ("tests/test_node_durability.py",),
      "the leader counts itself toward a commit before its fsync: acknowledged writes lost"),
    # What waits on a batch leaves with this pass's output instead of after the fsync, on both
    # paths: handed to the WAL thread (production and the simulator) and kept for the loop.
    M("glue-releases-acks-at-submit", "rast_maelstrom/node.py",
      "                    extra = (lines, raft.role is Role.LEADER)\n",
      "                    extra = (b\"\", raft.role is Role.LEADER)\n"
      "                    self.out.append(lines)\n",
      ("tests/test_node_durability.py",),
      "votes and append acknowledgements sent before the fsync: two leaders, lost writes"),
    M("glue-releases-acks-at-submit-loop-path", "rast_maelstrom/node.py",
      "                self.batches.append((bid, last_index, last_term, after))\n",
      "                self.batches.append((bid, last_index, last_term, []))\n"
      "                self._send_raft(after)\n",
      ("tests/test_node_durability.py",),
      "(without the WAL thread's sends) acknowledgements sent before the fsync"),
    M("wal-never-fdatasyncs", "rast_maelstrom/runtime/wal.py",
      "            self.io.fdatasync(self._fd)\n",
      "            pass\n",
      ("tests/test_wal.py::test_power_loss_keeps_everything_reported_durable",
       "tests/test_wal.py::test_power_loss_after_close_keeps_everything"),
      "a power failure loses writes the node had acknowledged"),
    M("wal-skips-crc-on-recovery", "rast_maelstrom/runtime/records.py",
      "            if zlib.crc32(payload) != crc:\n",
      "            if False:\n",
      ("tests/test_wal.py",),
      "a corrupt record is replayed as if it were good"),
    M("session-write-into-frozen-snapshot", "rast_maelstrom/kv.py",
      "                if frozen is not None and frozen.get(src) is session:\n",
      "                if False:\n",
      ("tests/test_snapshot_files.py::test_a_sliced_snapshot_holds_the_state_at_its_index_while_writes_go_on",),
      "a request applied while a snapshot serializes records its result in the frozen session table"),
    M("overlay-folds-newest-layer-first", "rast_maelstrom/kv.py",
      "        while type(layer.base) is Overlay:\n",
      "        while False:\n",
      ("tests/test_snapshot_files.py::test_a_sliced_snapshot_holds_the_state_at_its_index_while_writes_go_on",),
      "folding moves the newest overlay layer into the one under it, not the oldest into the map"),
    M("overlay-merge-lets-older-layers-win", "rast_maelstrom/kv.py",
      "        for layer in reversed(layers):\n",
      "        for layer in layers:\n",
      ("tests/test_snapshot_files.py::test_a_sliced_snapshot_holds_the_state_at_its_index_while_writes_go_on",),
      "the whole map read while overlay layers are stacked takes a key's older value over its newer"),
    M("snapshot-flushed-only-at-the-end", "rast_maelstrom/runtime/snapshot.py",
      "        if self._pos - self._flushed >= SYNC_STEP_BYTES and self.store.fsync:\n",
      "        if False:\n",
      ("tests/test_snapshot_files.py::test_a_large_snapshot_is_flushed_in_steps_as_it_is_written_and_a_failed_step_fails_it",),
      "a snapshot file is flushed to disk in one fsync after its last part, not in steps as it grows"),
    M("kv-cas-ignores-from", "rast_maelstrom/kv.py",
      "        if not json_equal(cur, frm):\n",
      "        if False:\n",
      ("tests/test_node_protocol.py::test_definite_errors_for_missing_key_and_failed_precondition",
       "tests/test_sim.py::test_fixed_seeds_pass[3-seeds0-3000-3]"),
      "a cas whose precondition fails overwrites the value"),
    # ------------------------------------------------------------------ the Raft core
    M("commit-counts-old-term-entries", "rast_maelstrom/core/raft.py",
      "            if self.log.term_at(n) == self.current_term or BUG_COMMIT_OLD_TERM in self.config.bugs:\n",
      "            if True:\n",
      ("tests/test_core_commit.py",),
      "Figure 8: a committed entry overwritten"),
    M("commit-quorum-counted-from-the-bottom", "rast_maelstrom/core/raft.py",  # found by mutmut
      "        matches.sort(reverse=True)\n",
      "        matches.sort()\n",
      ("tests/test_core_commit.py::test_in_a_cluster_of_four_half_the_nodes_do_not_commit",),
      "in a cluster of 4, two nodes commit (the same for 3 and 5: only an even size shows it)"),
    M("vote-ignores-log-up-to-dateness", "rast_maelstrom/core/raft.py",
      "        up_to_date = self.log.is_up_to_date(m.last_log_index, m.last_log_term)\n",
      "        up_to_date = True\n",
      ("tests/test_core_election.py",),
      "a node missing committed entries becomes leader"),
    M("follower-truncates-on-stale-append", "rast_maelstrom/core/raft.py",
      "        if BUG_TRUNCATE_ON_STALE_APPEND in self.config.bugs and log.last_index() > match:\n",
      "        if log.last_index() > match:\n",
      ("tests/test_core_replication.py",),
      "a reordered AppendEntries cuts committed entries from a follower"),
    M("follower-acks-before-persist", "rast_maelstrom/core/raft.py",
      "        after = self._msgs if BUG_ACK_BEFORE_PERSIST in self.config.bugs else self._msgs_after\n",
      "        after = self._msgs\n",
      ("tests/test_core_persistence.py",),
      "an acknowledged entry lost in a follower's crash"),
    M("readindex-without-heartbeat-round", "rast_maelstrom/core/raft.py",
      "        if not self.voter_peers or self._lease_valid() or BUG_READ_WITHOUT_QUORUM in self.config.bugs:\n",
      "        if True:\n",
      ("tests/test_core_reads.py", "tests/test_sim.py::test_stale_read_scenario_passes"),
      "a deposed leader serves stale reads"),
    M("read-round-confirmed-by-one-ack", "rast_maelstrom/core/raft.py",
      "        quorum = 2 if BUG_READ_ONE_ACK in self.config.bugs else self.quorum\n",
      "        quorum = 2\n",
      ("tests/test_core_reads.py", "tests/test_sim.py::test_stale_read_scenario_passes"),
      "a leader cut off with one follower serves stale reads (5 nodes)"),
    # ------------------------------------------------------------------ membership changes
    M("commit-counts-learners", "rast_maelstrom/core/raft.py",
      "        counted = self.peers if BUG_LEARNER_COUNTS in self.config.bugs else self.voter_peers\n",
      "        counted = self.peers\n",
      ("tests/test_core_membership.py",),
      "an entry held by the leader and a learner counts as committed: lost when a voter is elected"),
    M("two-configuration-changes-in-flight", "rast_maelstrom/core/raft.py",
      "        if self._conf_index() > self.commit_index and BUG_CONF_TWO_IN_FLIGHT not in self.config.bugs:\n",
      "        if False:\n",
      ("tests/test_core_membership.py",),
      "a step proposed before the last one committed: two disjoint majorities can decide"),
    M("non-voters-win-votes", "rast_maelstrom/core/raft.py",
      "        if isinstance(m, RequestVote) and (m.src not in self._voter_set or not self.is_voter):\n",
      "        if False:\n",
      ("tests/test_core_membership.py",),
      "a spare or removed node moves the cluster's term and gets votes"),
    # ------------------------------------------------------------------ leases
    M("lease-survives-timeout-now", "rast_maelstrom/core/raft.py",
      "            self._lease_forfeit_term = self.current_term\n",
      "            pass\n",
      ("tests/test_core_lease.py",),
      "a leader whose handover was given up serves lease reads while its heir can still win"),
    M("lease-counts-learners", "rast_maelstrom/core/raft.py",
      "        counted = self.peers if BUG_LEASE_COUNTS_LEARNERS in bugs else self.voter_peers\n",
      "        counted = self.peers\n",
      ("tests/test_core_lease.py",),
      "a leader cut off with a learner serves lease reads while the voters elect another leader"),
    M("lease-without-clock-margin", "rast_maelstrom/core/raft.py",
      "        length = 2 * cfg.election_ticks if BUG_LEASE_TOO_LONG in bugs else cfg.election_ticks - cfg.lease_margin_ticks\n",
      "        length = cfg.election_ticks\n",
      ("tests/test_core_lease.py",),
      "a lease as long as the followers' stickiness: a leader with a slow clock serves stale reads"),
    M("restart-forgets-lease-promises", "rast_maelstrom/core/raft.py",
      "        self._lease_quarantine = config.lease_reads and current_term > 0\n",
      "        self._lease_quarantine = False\n",
      ("tests/test_core_lease.py",),
      "a node restarted right after acknowledging a lease votes a new leader in while the lease holds"),
    M("lease-ack-before-term-durable", "rast_maelstrom/core/raft.py",
      "        if (self.current_term, self.voted_for) != self._handed_hard_state or self._term_maybe_zero_on_disk:\n",
      "        if (self.current_term, self.voted_for) != self._handed_hard_state:\n",
      ("tests/test_core_lease.py",),
      "a new node crashes after acknowledging a lease, comes back with term 0 and votes at once"),
    M("lease-judged-before-the-clock-catches-up", "rast_maelstrom/node.py",
      "            if self.lease_reads and raft.role is Role.LEADER and BUG_LEASE_STALE_CLOCK not in raft.config.bugs:\n",
      "            if False:\n",
      ("tests/test_node_clock.py",),
      "a leader resumed after a pause serves queued reads from a lease that expired while it was stopped"),
    M("lazy-ticks-counted-after-the-message", "rast_maelstrom/node.py",
      "        if self._tick_due > self._next_tick:  # sleeping through ticks (--lazy-ticks): count them first\n",
      "        if False:\n",
      ("tests/test_node_clock.py",),
      "a follower that sleeps through ticks counts them after its leader's heartbeat, not before, "
      "and campaigns against a live leader"),
    M("sim-lease-freshness-unchecked", "rast_maelstrom/sim/checks.py",
      "        if index < self.decided_max:\n",
      "        if False:\n",
      ("tests/test_sim.py::test_a_clock_outside_the_lease_assumption_is_caught",),
      "the simulator misses a lease that outlived its leadership"),
    M("learner-catches-up-from-old-entries", "rast_maelstrom/core/raft.py",
      "        if since is not None and pr.match < since and cfg.learner_snapshot:\n",
      "        if False:\n",
      ("tests/test_core_membership.py",),
      "a wiped node added back replays configurations in which it was a voter"),
)


class ToolError(Exception):
    """The mutation run itself is broken (stale anchor, empty selection, pytest error)."""


def apply(text: str, m: Mutant) -> str:
    # Whole lines only: a snippet must start at a line start with its exact indentation, so a line
    # that moved one block deeper is a stale anchor, not a match inside the deeper line.
    lined = "\n" + text
    n = lined.count("\n" + m.old)
    if n != 1:
        where = "not found" if n == 0 else f"found {n} times"
        raise ToolError(f"mutant {m.name}: snippet {where} in {m.path}; re-anchor it:\n{m.old}")
    return lined.replace("\n" + m.old, "\n" + m.new)[1:]


def check_anchors(mutants: tuple[Mutant, ...]) -> None:
    problems = []
    names = [m.name for m in mutants]
    if len(set(names)) != len(names):
        problems.append("duplicate mutant names")
    for m in mutants:
        try:
            apply((ROOT / m.path).read_text(), m)
        except (ToolError, OSError) as e:
            problems.append(str(e))
    if problems:
        raise ToolError("\n".join(problems))


def make_copy(parent: Path, m: Mutant | None) -> Path:
    """A copy of the tree with `m` applied (None: unmutated)."""
    dest = Path(tempfile.mkdtemp(prefix=f"{m.name if m else 'baseline'}-", dir=parent))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    os.symlink(ROOT / ".venv", dest / ".venv")
    if m is not None:
        target = dest / m.path
        target.write_text(apply(target.read_text(), m))
    return dest


def env_for(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("RAST_SIM_SEED", None)
    return env


def check_copy_runs_its_own_code(parent: Path) -> None:
    copy = make_copy(parent, None)
    py = str(ROOT / ".venv" / "bin" / "python")
    probe = "import rast_maelstrom, rast_maelstrom.node as n; print(rast_maelstrom.__file__); print(n.__file__)"
    out = subprocess.run([py, "-c", probe], cwd=copy, env=env_for(copy), capture_output=True, text=True,
                         timeout=60)
    files = out.stdout.split()
    if out.returncode or len(files) != 2 or not all(Path(f).resolve().is_relative_to(copy.resolve()) for f in files):
        raise ToolError(f"the copy at {copy} does not import its own package: {out.stdout}{out.stderr}")
    # bin/rast inside the copy must run the copy's node too.
    launcher = (copy / "bin" / "rast").read_text()
    if 'PYTHONPATH="$root' not in launcher:
        raise ToolError("bin/rast no longer puts its own tree first on PYTHONPATH; the copies would "
                        "run the worktree's node")
    shutil.rmtree(copy, ignore_errors=True)


@dataclass
class Outcome:
    mutant: Mutant
    killed_by: list[str]
    wall_s: float
    error: str = ""


FAILED_RE = re.compile(r"^(FAILED|ERROR) (\S+)", re.M)


def run_mutant(parent: Path, m: Mutant) -> Outcome:
    t0 = time.monotonic()
    copy = make_copy(parent, m)
    cmd = [str(ROOT / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
           "--no-header", "-W", "ignore::pytest.PytestUnraisableExceptionWarning", *m.tests]
    proc = subprocess.Popen(cmd, cwd=copy, env=env_for(copy), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=mutant_timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return Outcome(m, [], time.monotonic() - t0, f"timed out after {mutant_timeout_s:.0f} s")
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    wall = time.monotonic() - t0
    killers = sorted({t.split(" ")[0] for _, t in FAILED_RE.findall(out)})
    if proc.returncode == 0:
        return Outcome(m, [], wall)
    if proc.returncode == 1 and killers:
        return Outcome(m, killers, wall)
    tail = "\n".join(out.splitlines()[-15:])
    return Outcome(m, [], wall, f"pytest exit {proc.returncode} (not a test failure):\n{tail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run the named mutants against their tests.")
    p.add_argument("-k", dest="select", default="", help="only mutants whose name contains this")
    p.add_argument("-j", "--jobs", type=int, default=jobs_default, help=f"mutants at once (default {jobs_default})")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = p.parse_args(argv)
    mutants = tuple(m for m in MUTANTS if args.select in m.name)
    if args.list:
        for m in mutants:
            print(f"{m.name:38} {m.path}\n{'':38} {m.what}\n{'':38} tests: {' '.join(m.tests)}")
        return 0
    if not mutants:
        print(f"no mutant matches {args.select!r}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        check_anchors(MUTANTS)
        with tempfile.TemporaryDirectory(prefix="rast-mutants-") as tmp:
            parent = Path(tmp)
            check_copy_runs_its_own_code(parent)
            print(f"{len(mutants)} mutants, {args.jobs} at a time", flush=True)
            outcomes: list[Outcome] = []
            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                for o in pool.map(lambda m: run_mutant(parent, m), mutants):
                    state = "ERROR" if o.error else ("killed" if o.killed_by else "SURVIVED")
                    print(f"  {o.mutant.name}: {state} ({o.wall_s:.1f} s)", flush=True)
                    outcomes.append(o)
    except ToolError as e:
        print(f"make mutants: {e}", file=sys.stderr)
        return 2
    print()
    print(f"{'mutant':38} {'result':9} killed by")
    for o in outcomes:
        state = "ERROR" if o.error else ("killed" if o.killed_by else "SURVIVED")
        first, *rest = o.killed_by or [o.error.splitlines()[0] if o.error else f"nothing ({o.mutant.what})"]
        print(f"{o.mutant.name:38} {state:9} {first}")
        for t in rest[:killers_shown_max - 1]:
            print(f"{'':48} {t}")
        if len(rest) >= killers_shown_max:
            print(f"{'':48} (and {len(rest) - killers_shown_max + 1} more)")
    errors = [o for o in outcomes if o.error]
    survivors = [o for o in outcomes if not o.error and not o.killed_by]
    for o in errors:
        print(f"\n{o.mutant.name}: {o.error}", file=sys.stderr)
    print(f"\n{len(outcomes) - len(errors) - len(survivors)} of {len(outcomes)} mutants killed, "
          f"{len(survivors)} survived, {len(errors)} errors, in {time.monotonic() - t0:.0f} s")
    if errors:
        return 2
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
