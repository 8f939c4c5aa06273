"""End-to-end runs of bin/maelstrom-py against the small nodes in tests/nodes: the jar's outcomes
(exit codes, verdicts, store files) for a correct node, a wrong one, and broken ones."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rast_maelstrom.harness import cli, runner
from runrecords import assert_partitions_bit, load

ROOT = Path(__file__).resolve().parent.parent
NODES = ROOT / "tests" / "nodes"
run_timeout_s = 60

pytestmark = pytest.mark.e2e


def maelstrom(store: Path, node: str, *flags: str, node_args: tuple[str, ...] = ()):
    cmd = [str(ROOT / "bin" / "maelstrom-py"), "test", "-w", "lin-kv", "--bin", str(NODES / node),
           "--node-count", "3", "--concurrency", "2n", "--store", str(store), "--seed", "1",
           *flags]
    if node_args:
        cmd += ["--", *node_args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=run_timeout_s)


def latest(store: Path) -> Path:
    return (store / "lin-kv" / "latest").resolve()


def history(store: Path) -> list[dict]:
    return [json.loads(line) for line in (latest(store) / "history.jsonl").read_text().splitlines()]


def test_correct_kv_under_partitions_passes(tmp_path):
    r = maelstrom(tmp_path, "kv_single.py", "--time-limit", "3", "--rate", "100",
                  "--nemesis", "partition", "--nemesis-interval", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Everything looks good! ヽ(‘ー`)ノ" in r.stdout
    store = latest(tmp_path)
    for name in ("test.json", "history.jsonl", "net-stats.json", "messages.jsonl", "jepsen.log",
                 "results.json", "node-logs/n0.log"):
        assert (store / name).is_file(), name
    test = json.loads((store / "test.json").read_text())
    assert test["nodes"] == ["n0", "n1", "n2"] and test["concurrency"] == 6 and test["seed"] == 1
    ops = history(tmp_path)
    assert [op["index"] for op in ops] == list(range(len(ops)))
    assert sum(op["type"] == "ok" for op in ops) > 100
    # the nemesis's first op is at t~0, as the workload's first op is (maelstrom-spec: both at
    # t~0; which of the two is logged first, or whether the first reply beats the nemesis, is
    # not defined: the jar runs them on separate threads)
    first = next(op for op in ops if op["process"] == "nemesis")
    assert first["time"] < 100_000_000 and first["index"] <= 3, first
    assert "n0: init" in (store / "node-logs" / "n0.log").read_text()
    assert_partitions_bit(load(store))  # the partitions cut n0 off from the nodes forwarding to it
    stats = json.loads((store / "net-stats.json").read_text())
    assert stats["servers"]["send-count"] > 0 and stats["clients"]["send-count"] > 200
    assert (tmp_path / "latest").resolve() == store == (tmp_path / "current").resolve()
    # `analyze --verdict` [extension] re-checks the stored run with the same verdict.
    again = subprocess.run([str(ROOT / "bin" / "maelstrom-py"), "analyze", "--verdict", "--store",
                            str(tmp_path)], capture_output=True, text=True, timeout=run_timeout_s)
    assert again.returncode == 0 and "Everything looks good!" in again.stdout


def test_node_answering_from_its_own_dict_is_invalid_and_the_key_is_named(tmp_path):
    r = maelstrom(tmp_path, "kv_local.py", "--time-limit", "3", "--rate", "200")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻" in r.stdout
    results = json.loads((latest(tmp_path) / "results.json").read_text())
    assert results["valid?"] is False
    assert 0 in results["workload"]["failures"] or "0" in results["workload"]["failures"]


def test_garbage_on_stdout_is_warned_and_that_node_is_ignored(tmp_path):
    r = maelstrom(tmp_path, "kv_single.py", "--time-limit", "3", "--rate", "50",
                  node_args=("--garbage-on", "n1"))
    log = (latest(tmp_path) / "jepsen.log").read_text()
    assert "WARNING" in log and "Node n1 printed a line that was not well-formed JSON" in log
    ops = history(tmp_path)
    on_n1 = [op for op in ops if op.get("node") == "n1" and op["type"] != "invoke"]
    assert on_n1 and all(op["error"] == "net-timeout" for op in on_n1)
    assert r.returncode == 0, r.stdout + r.stderr   # nothing unsafe happened: the jar says valid


def test_node_dying_mid_run_crashes_the_test_with_its_exit_status(tmp_path):
    r = maelstrom(tmp_path, "kv_single.py", "--time-limit", "3", "--rate", "50",
                  node_args=("--die-on", "n2", "--die-after-s", "0.5"))
    assert r.returncode == 255, r.stdout + r.stderr
    assert "Node n2 crashed with exit status 3" in r.stderr
    assert "n2: dying on purpose" in r.stderr
    assert "Everything looks good" not in r.stdout
    assert not (latest(tmp_path) / "results.json").exists()


def test_bad_concurrency_crashes_after_the_nodes_start(tmp_path):
    r = maelstrom(tmp_path, "kv_single.py", "--time-limit", "2", "--concurrency", "1n")
    assert r.returncode == 255
    assert "positive multiple of 2n" in r.stderr
    assert "All 3 nodes answered init" in r.stdout


def test_node_that_never_answers_init_crashes_the_test(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "init_timeout_s", 1.5)   # the jar waits 10 s
    code = cli.main(["test", "-w", "lin-kv", "--bin", str(NODES / "kv_single.py"), "--node-count",
                     "3", "--concurrency", "2n", "--time-limit", "2", "--store", str(tmp_path),
                     "--", "--no-init-on", "n1"])
    assert code == 255
    err = capsys.readouterr().err
    assert "Node n1 did not respond to init" in err
    assert history(tmp_path) == []


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc")
def test_nodes_are_killed_at_the_end(tmp_path):
    r = maelstrom(tmp_path, "kv_single.py", "--time-limit", "1", "--rate", "10")
    assert r.returncode in (0, 1)   # ~10 ops: no cas may succeed, and stats then say invalid
    pids = [int(x) for x in __import__("re").findall(r"as pid (\d+)", r.stdout)]
    assert len(pids) == 3
    assert not any(Path(f"/proc/{pid}").exists() and "zombie" not in
                   Path(f"/proc/{pid}/status").read_text().lower() for pid in pids)
