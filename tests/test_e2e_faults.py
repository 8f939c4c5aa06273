"""End to end: real processes under the runner's fault extensions (kill, pause, partition, p-loss).
Rast with its WAL in {store}/data must stay linearizable, restart cleanly and answer every final
read; a node that loses its last acknowledged write on a crash must be caught (exit 1)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from runrecords import assert_partitions_bit, assert_process_faults_bit, load

ROOT = Path(__file__).resolve().parent.parent
RUNNER = str(ROOT / "bin" / "maelstrom-py")
RAST = str(ROOT / "bin" / "rast")
KV_SINGLE = str(ROOT / "tests" / "nodes" / "kv_single.py")
run_timeout_s = 60

pytestmark = pytest.mark.e2e


def run(store: Path, bin_: str, *flags: str, node_args: tuple[str, ...] = ()):
    cmd = [RUNNER, "test", "-w", "lin-kv", "--bin", bin_, "--concurrency", "2n", "--store",
           str(store), *flags]
    if node_args:
        cmd += ["--", *node_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=run_timeout_s)
    latest = (store / "lin-kv" / "latest").resolve()
    results_path = latest / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    return proc, latest, results


def history(store_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (store_dir / "history.jsonl").read_text().splitlines()]


def nemesis_completions(ops: list[dict], f: str) -> list:
    """Completion values of nemesis op f (every other record of f is its invoke)."""
    mine = [op for op in ops if op["process"] == "nemesis" and op["f"] == f]
    return [op["value"] for op in mine[1::2]]


def restarts(ops: list[dict]) -> int:
    return sum(len(value[1]) for value in nemesis_completions(ops, "stop-kill"))


def final_reads(store_dir: Path) -> dict:
    return json.loads((store_dir / "final-reads.json").read_text())


def assert_rast_survived(proc, store_dir: Path, results: dict, *, restarts_min: int) -> list[dict]:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert results["valid?"] is True and results["workload"]["failures"] == []
    ops = history(store_dir)
    assert restarts(ops) >= restarts_min, nemesis_completions(ops, "stop-kill")
    final = final_reads(store_dir)
    assert final["planned"] >= 3 and final["answered"] == final["planned"], final
    assert final["ok"] >= 3 and final["lost"] == 0, final
    assert f"Final reads [extension]: {final['answered']} of {final['planned']} answered" in proc.stdout
    log = (store_dir / "jepsen.log").read_text()
    assert "Nemesis restarted" in log and "answered init after its restart" in log
    # every node's WAL lives in the store, so the restarts found their data there
    assert sorted(p.name for p in (store_dir / "data").iterdir()) == json.loads(
        (store_dir / "test.json").read_text())["nodes"]
    return ops


def test_rast_3_nodes_under_kill_is_linearizable_and_recovers(tmp_path):
    proc, store_dir, results = run(
        tmp_path, RAST, "--node-count", "3", "--rate", "100", "--time-limit", "6",
        "--nemesis", "kill", "--nemesis-interval", "0.7", "--recovery-s", "2", "--seed", "3",
        node_args=("--data-dir", "{store}/data"))
    ops = assert_rast_survived(proc, store_dir, results, restarts_min=3)
    assert nemesis_completions(ops, "start-kill")
    assert_process_faults_bit(load(store_dir), "kill")
    # the jar-compatible console is intact and no WARNING about {store} was printed
    assert "Everything looks good!" in proc.stdout and "come back with" not in proc.stdout


def test_rast_3_nodes_under_kill_pause_partition_and_loss(tmp_path):
    proc, store_dir, results = run(
        tmp_path, RAST, "--node-count", "3", "--rate", "100", "--time-limit", "7",
        # p-loss 0.2: this seed's loss periods total under 0.3 s (some 40 server messages), where
        # 0.05 expects two drops and sometimes dropped none: the loss check below then failed
        "--nemesis", "kill,pause,partition", "--p-loss", "0.2", "--nemesis-interval", "0.5",
        "--recovery-s", "2", "--seed", "21", node_args=("--data-dir", "{store}/data"))
    ops = assert_rast_survived(proc, store_dir, results, restarts_min=1)
    started = {op["f"] for op in ops if op["process"] == "nemesis" and op["f"].startswith("start-")}
    assert {"start-kill", "start-pause", "start-partition", "start-loss"} <= started, started
    assert all(v == ["dropping", 0.2] for v in nemesis_completions(ops, "start-loss"))
    test = json.loads((store_dir / "test.json").read_text())
    assert test["nemesis"] == ["kill", "loss", "partition", "pause"] and test["p_loss"] == 0.2
    journal = (store_dir / "messages.jsonl").read_text()
    assert '"why":"loss"' in journal and '"why":"down"' in journal
    records = load(store_dir)
    assert_partitions_bit(records)
    assert_process_faults_bit(records, "pause")
    assert_process_faults_bit(records, "kill")


def test_rast_5_nodes_under_kill_and_partition(tmp_path):
    proc, store_dir, results = run(
        tmp_path, RAST, "--node-count", "5", "--rate", "100", "--time-limit", "6",
        "--nemesis", "kill,partition", "--nemesis-interval", "0.6", "--recovery-s", "2",
        "--seed", "5", node_args=("--data-dir", "{store}/data"))
    ops = assert_rast_survived(proc, store_dir, results, restarts_min=1)
    assert nemesis_completions(ops, "start-partition")
    records = load(store_dir)
    assert_partitions_bit(records)
    assert_process_faults_bit(records, "kill")


def test_a_node_that_loses_its_last_acknowledged_write_on_a_crash_is_caught(tmp_path):
    """kv_single with --data-dir saves the state *before* each change and acks after it, so a kill
    brings the key back one change behind. The checker only sees that when no timed-out (info)
    write or cas could have produced the stale value, and with values 0-4 such ops pile up fast
    under kill; so: one node (every kill hits it) with one writer thread (fewest infos), and a
    seed whose runs were caught 5 times out of 5 (at 3.7-7.7 s) on a quiet machine. Whether a kill
    lands where the checker can see it depends on timing, so under load one run may miss: up to
    three runs (other seeds), and at least one must be caught; a checker that never sees it fails."""
    for attempt, seed in enumerate(("6", "7", "8")):
        proc, store_dir, results = run(
            tmp_path / f"run{attempt}", KV_SINGLE, "--node-count", "1", "--rate", "200",
            "--time-limit", "9", "--nemesis", "kill", "--nemesis-interval", "0.7", "--recovery-s", "1",
            "--seed", seed, node_args=("--data-dir", "{store}/data"))
        if proc.returncode == 1:
            break
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    assert "Analysis invalid!" in proc.stdout
    assert results["valid?"] is False and results["workload"]["failures"]
    assert restarts(history(store_dir)) >= 2
    log = (store_dir / "node-logs" / "n0.log").read_text()
    assert log.count("n0: init") >= 3 and "loaded 1 keys" in log


def test_a_node_that_forgets_everything_on_restart_is_reported_as_losing_acknowledged_writes(
        tmp_path):
    """kv_single in memory: restarted, it forgets every key. The CAS-register checker cannot see
    that (a read of a missing key fails, and failed ops are dropped), but the recovery phase's
    final reads do: a key with an acknowledged write that every node now says does not exist; the
    durability checker turns that into an invalid run.
    Seed 23 keeps a kill of every node running from about 4.8 s past the 6 s time limit."""
    proc, store_dir, results = run(
        tmp_path, KV_SINGLE, "--node-count", "3", "--rate", "100", "--time-limit", "6",
        "--nemesis", "kill", "--nemesis-interval", "1", "--recovery-s", "1", "--seed", "23")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    assert results["valid?"] is False and results["durability"]["valid?"] is False
    assert results["durability"]["lost-keys"] == sorted(final_reads(store_dir)["lost-keys"], key=repr)
    assert "restarted nodes come back with whatever the node keeps on its own" in proc.stdout
    ops = history(store_dir)
    assert nemesis_completions(ops, "stop-kill")[-1] == ["restarted", ["n0", "n1", "n2"]]
    final = final_reads(store_dir)
    acked = {op["value"][0] for op in ops if op["type"] == "ok" and op["f"] in ("write", "cas")}
    assert acked and final["lost-keys"] and set(final["lost-keys"]) <= acked, final
    assert final["lost"] == 3 * len(final["lost-keys"])   # every node's reader says so
    assert "ACKNOWLEDGED WRITES LOST [extension]" in proc.stdout
