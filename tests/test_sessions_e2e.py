"""Exactly once with real processes: bin/rast spoken to directly (a forward re-sent to a new leader
with the same identity; a forwarded request never refused definitely; a copy arriving after a crash
and a new election still applied once), and the runner's duplicated client requests
(`--dup-requests`), under which Rast stays linearizable with partitions and kills while the same
node without deduplication (`--bug no-dedup`) is caught."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from test_e2e_faults import run as e2e_run
from test_node_protocol import NodeProc, wait_leader

ROOT = Path(__file__).resolve().parent.parent
RUNNER = str(ROOT / "bin" / "maelstrom-py")
RAST = str(ROOT / "bin" / "rast")


def _next(node: NodeProc, want, timeout_s: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        msg = node.recv(max(0.01, deadline - time.monotonic()))
        if want(msg):
            return msg


def test_a_follower_resends_its_forward_to_the_new_leader_with_the_same_identity() -> None:
    node = NodeProc()
    try:
        node.init("n0", ["n0", "n1", "n2"])
        node.send("n1", "n0", {"type": "hb", "term": 1, "c": 0, "rs": 0})  # n1 leads term 1
        node.send("c7", "n0", {"type": "write", "msg_id": 4, "key": 1, "value": 2})
        first = _next(node, lambda m: m["body"]["type"] == "write")
        assert first["dest"] == "n1" and first["src"] == "c7"
        # n1 is gone; n2 leads term 2. The write was never applied: n0 hands it to n2.
        node.send("n2", "n0", {"type": "hb", "term": 2, "c": 0, "rs": 0})
        again = _next(node, lambda m: m["body"]["type"] == "write")
        assert again["dest"] == "n2" and again["src"] == "c7"
        assert again["body"] == first["body"]  # same identity, same request
    finally:
        node.close()


def test_a_forwarded_request_is_dropped_rather_than_refused_definitely() -> None:
    node = NodeProc()
    try:
        node.init("n0", ["n0", "n1", "n2"])  # no leader can exist
        node.send("c7", "n0", {"type": "write", "msg_id": 9, "key": 1, "value": 2, "fwd": 1})
        node.send("c7", "n0", {"type": "write", "msg_id": 10, "key": 1, "value": 2})
        reply = _next(node, lambda m: m["dest"] == "c7")
        assert reply["body"]["in_reply_to"] == 10 and reply["body"]["code"] == 11
    finally:
        node.close()


def test_a_copy_after_a_crash_and_a_new_election_is_still_applied_once(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    first = [({"type": "write", "msg_id": 5, "key": 0, "value": 1}, "c7", "write_ok"),
             ({"type": "write", "msg_id": 1, "key": 0, "value": 2}, "c8", "write_ok")]
    # the copy, after a kill -9, a restart from the WAL and a new election (a new term): the
    # session table rebuilt from the log answers it without applying it again
    then = [({"type": "write", "msg_id": 5, "key": 0, "value": 1}, "c7", "write_ok")]
    for requests in (first, then):
        n = NodeProc("--data-dir", data)
        try:
            n.init()
            wait_leader(n)
            for body, src, reply in requests:
                assert n.rpc(body, src)["type"] == reply
            if requests is then:
                assert n.rpc({"type": "read", "msg_id": 6, "key": 0}, "c7")["value"] == 2
            n.kill()
        finally:
            n.close()


# ---------------------------------------------------------------------- the runner's copies


def run(store: Path, *flags: str, node_args: tuple[str, ...] = ()):
    return e2e_run(store, RAST, "--node-count", "3", *flags, node_args=node_args)


@pytest.mark.e2e
def test_rast_with_20_percent_duplicated_requests_partitions_and_kills_is_linearizable(tmp_path):
    proc, store_dir, results = run(
        tmp_path, "--rate", "150", "--time-limit", "8", "--dup-requests", "0.2",
        "--nemesis", "kill,partition", "--nemesis-interval", "1", "--recovery-s", "2",
        "--seed", "4", node_args=("--data-dir", "{store}/data"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert results["workload"]["valid?"] is True
    test = json.loads((store_dir / "test.json").read_text())
    assert test["dup_requests"] == 0.2 and test["dup_target"] == "any"
    ops = [json.loads(x) for x in (store_dir / "history.jsonl").read_text().splitlines()]
    assert sum(1 for op in ops if op["type"] == "ok" and op["f"] in ("write", "cas")) > 50
    # the copies really went out: more client requests than invocations
    stats = json.loads((store_dir / "net-stats.json").read_text())
    invokes = sum(1 for op in ops if op["type"] == "invoke" and op["process"] != "nemesis")
    assert stats["clients"]["send-count"] > 2 * invokes * 1.1, (stats, invokes)


@pytest.mark.e2e
def test_the_same_node_without_deduplication_is_caught(tmp_path):
    proc, store_dir, results = run(
        tmp_path, "--rate", "200", "--time-limit", "6", "--dup-requests", "0.2", "--seed", "7",
        node_args=("--bug", "no-dedup"))
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert results["workload"]["valid?"] is False
    assert "NOT linearizable" in proc.stdout


def test_cli_documents_and_checks_the_duplicate_flags(tmp_path):
    help_text = subprocess.run([RUNNER, "test", "--help"], capture_output=True, text=True).stdout
    flat = " ".join(help_text.split())
    for flag in ("--dup-requests", "--dup-delay-ms", "--dup-target"):
        assert flag in flat
    assert "[extension] send each client request again with probability P" in flat
    for bad in (["--dup-requests", "1.5"], ["--dup-delay-ms", "-1"], ["--dup-target", "elsewhere"]):
        proc = subprocess.run([RUNNER, "test", "-w", "lin-kv", "--bin", RAST, "--store",
                               str(tmp_path), *bad], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 254, (bad, proc.stdout, proc.stderr)
