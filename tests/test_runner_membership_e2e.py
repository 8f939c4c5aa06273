"""End to end: the member nemesis drives real processes of tests/nodes/kv_members.py (a test-only
node that speaks the membership protocol, not Raft) under partitions and kills: every change is
a nemesis op pair in the history, wipes delete a removed node's data and re-init it with the
committed configuration, clients use spares too, and the counts reach the console, jepsen.log
and membership.json."""
from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = str(ROOT / "bin" / "maelstrom-py")
KV_MEMBERS = str(ROOT / "tests" / "nodes" / "kv_members.py")
NODES = ["n0", "n1", "n2", "n3", "n4"]
run_timeout_s = 90

pytestmark = pytest.mark.e2e


def _run(store: Path, seed: int):
    cmd = [RUNNER, "test", "-w", "lin-kv", "--bin", KV_MEMBERS, "--node-count", "5",
           "--initial-members", "3", "--nemesis", "member,partition,kill", "--nemesis-interval",
           "0.4", "--time-limit", "8", "--rate", "50", "--concurrency", "2n", "--recovery-s", "1",
           "--seed", str(seed), "--store", str(store),
           "--", "--data-dir", "{store}/data", "--busy-every", "3", "--silent-every", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=run_timeout_s)
    return proc, (store / "lin-kv" / "latest").resolve()


def _check_run(proc, store_dir: Path) -> Counter:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    results = json.loads((store_dir / "results.json").read_text())
    assert results["valid?"] is True
    ops = [json.loads(line) for line in (store_dir / "history.jsonl").read_text().splitlines()]
    nemesis = [op for op in ops if op["process"] == "nemesis"]
    changes = []
    for i, op in enumerate(nemesis):
        if op["f"] in ("grow", "shrink") and (not changes or changes[-1][1] is not None):
            changes.append((op, None))
        elif op["f"] in ("grow", "shrink"):
            changes[-1] = (changes[-1][0], op)
        else:   # a fault op never falls between a change's invoke and completion
            assert not changes or changes[-1][1] is not None, (op, changes[-1])
    assert changes and all(done is not None for _, done in changes)
    flavors: Counter = Counter()
    for invoke, done in changes:
        assert invoke["f"] == done["f"] and invoke["type"] == done["type"] == "info"
        flavor, node = invoke["value"]
        flavors[flavor] += 1
        word = done["value"][0]
        flavors[word] += 1
        assert done["value"][1] == node
        if word in ("added", "removed"):
            members = done["value"][2]
            assert (node in members) == (word == "added") and 2 <= len(members) <= 5
        else:
            assert word in ("failed", "unknown"), done
    # counts: console, jepsen.log and membership.json agree with the history
    attempted = len(changes)
    succeeded = flavors["added"] + flavors["removed"]
    line = re.search(r"Membership changes \[extension\]: (\d+) attempted .*: (\d+) succeeded", out)
    assert line and (int(line.group(1)), int(line.group(2))) == (attempted, succeeded), out[-3000:]
    assert line.group(0) in (store_dir / "jepsen.log").read_text()
    tail = proc.stdout[proc.stdout.rindex("Final reads [extension]"):]   # again after the results
    assert line.group(0) in tail and tail.rstrip().endswith("Everything looks good! ヽ(‘ー`)ノ")
    report = json.loads((store_dir / "membership.json").read_text())
    assert report["counts"]["attempted"] == attempted
    assert report["counts"]["wiped"] == flavors["wiped"]
    assert report["final-members"] and set(report["final-members"]) <= set(NODES)
    # init: the first K nodes are the members, everywhere; a wiped node starts fresh, told the
    # committed configuration (without itself)
    logs = {n: (store_dir / "node-logs" / f"{n}.log").read_text() for n in NODES}
    inits = {n: re.findall(r"init members=(.*) (data found|fresh)$", logs[n], re.M) for n in NODES}
    for n in NODES:
        assert inits[n][0] == ('["n0", "n1", "n2"]', "fresh"), inits[n]
    for invoke, _ in changes:
        flavor, node = invoke["value"]
        if flavor == "wiped":
            wiped_inits = [json.loads(m) for m, state in inits[node][1:] if state == "fresh"]
            assert any(node not in m for m in wiped_inits), (node, inits[node])
            assert (store_dir / "data" / node / "incarnations").exists()
    # clients talk to every node, spares included
    served = Counter(op.get("node") for op in ops if op["type"] == "ok" and type(op["process"]) is int)
    assert set(served) == set(NODES), served
    assert "grow" in (store_dir / "timeline.html").read_text()
    return flavors


def test_member_nemesis_under_partitions_and_kills_records_every_change_and_wipes(tmp_path):
    """Which flavors a run draws depends on timing (which node answers, when kills land), so up
    to three seeded runs; together they must show wipes and leader removals."""
    seen: Counter = Counter()
    for seed in (6, 7, 5):
        proc, store_dir = _run(tmp_path / f"s{seed}", seed)
        seen += _check_run(proc, store_dir)
        if seen["wiped"] and seen["leader"] and seen["removed"] and seen["added"]:
            break
    assert seen["wiped"] and seen["leader"] and seen["removed"] and seen["added"], seen
