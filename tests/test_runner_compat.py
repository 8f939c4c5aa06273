"""End-to-end checks that maelstrom-py behaves like the jar where a user can tell (issue 13): nodes
that use the jar's services, and the files, logs and commands a user reads."""
from __future__ import annotations

import json
import re

import pytest

from test_runner_e2e import latest, maelstrom

pytestmark = pytest.mark.e2e


def _results(store):
    return json.loads((latest(store) / "results.json").read_text())


def test_a_proxy_keeping_its_state_in_lin_kv_passes_and_its_service_traffic_is_counted(tmp_path):
    r = maelstrom(tmp_path, "kv_proxy.py", "--time-limit", "3", "--rate", "100",
                  "--nemesis", "partition", "--nemesis-interval", "1",
                  node_args=("--service", "lin-kv"))
    assert r.returncode == 0, r.stdout + r.stderr
    results = _results(tmp_path)
    invokes = results["stats"]["count"]
    assert invokes > 150 and results["stats"]["ok-count"] > 100
    # Every op is one message to lin-kv and one back: server traffic, as the jar counts it.
    assert results["net"]["servers"]["msg-count"] == 2 * invokes
    assert results["net"]["servers"]["msgs-per-op"] == 2.0
    log = (latest(tmp_path) / "jepsen.log").read_text()
    assert "Starting services: lin-kv, lin-tso, lww-kv, seq-kv" in log
    # Item 8: each op is logged as the jar's interpreter logs it, from its worker's thread ...
    assert re.search(r"^INFO \[[-\d]+ [\d:,]+\] jepsen worker [0-5] - jepsen\.util [0-5]\t:invoke"
                     r"\t:read\t\[0 nil\]$", log, re.M)
    assert re.search(r"^INFO \[.*\] jepsen worker [0-5] - jepsen\.util \d+\t:ok\t:write\t\[0 \d\]$",
                     log, re.M)
    assert re.search(r"^INFO \[.*\] jepsen nemesis - jepsen\.util :nemesis\t:info\t"
                     r":start-partition\t:", log, re.M)
    # ... and the log ends with the results and the verdict.
    tail = log[log.rindex("jepsen.core"):]
    assert ":workload {:linearizable" not in tail and ":workload {:valid? true" in tail
    assert tail.rstrip().endswith("Everything looks good! ヽ(‘ー`)ノ")
    store = latest(tmp_path)
    for name in ("history.edn", "independent/0/history.edn", "independent/0/timeline.html"):
        assert (store / name).is_file(), name
    # Item 9: the Lamport diagram, with the service as a participant.
    svg = (store / "messages.svg").read_text()
    assert svg.count("<rect ") > 300 and ">lin-kv</text>" in svg and "#81BFFC" in svg
    lines = (store / "history.edn").read_text().splitlines()
    assert lines[0].startswith("{:index 0, :time ") and ", :value [0 nil]}" in lines[0]
    assert any(re.fullmatch(r"\{:index \d+, :time \d+, :type :info, :process :nemesis, "
                            r":f :start-partition, :value :[a-z-]+\}", line) for line in lines)


def test_a_proxy_using_seq_kv_as_if_it_were_linearizable_is_caught(tmp_path):
    r = maelstrom(tmp_path, "kv_proxy.py", "--time-limit", "3", "--rate", "100",
                  node_args=("--service", "seq-kv"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Analysis invalid!" in r.stdout
    workload = _results(tmp_path)["workload"]
    assert workload["failures"] and workload["results"]["0"]["valid?"] is False


def test_leave_db_running_skips_teardown_and_never_reports_a_dead_node(tmp_path):
    # n1 dies half a second in; the jar, leaving the DB running, never looks: analysis runs.
    r = maelstrom(tmp_path, "kv_single.py", "--time-limit", "2", "--rate", "50",
                  "--leave-db-running", node_args=("--die-on", "n1", "--die-after-s", "0.5"))
    assert r.returncode in (0, 1, 2), r.stdout + r.stderr
    assert "crashed" not in r.stdout + r.stderr
    store = latest(tmp_path)
    assert (store / "results.edn").is_file()
    log = (store / "jepsen.log").read_text()
    assert "Leaving node n0 running" in log and "Leaving node n1 running" not in log
    # Without the flag the same run is a crash, as under the jar.
    r = maelstrom(tmp_path, "kv_single.py", "--time-limit", "2", "--rate", "50",
                  node_args=("--die-on", "n1", "--die-after-s", "0.5"))
    assert r.returncode == 255
