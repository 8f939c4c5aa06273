"""End to end: real bin/rast processes under the embedded Maelstrom-compatible runner, with concurrent
clients and partitions; the history must be linearizable and the cluster must serve most requests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from runrecords import assert_partitions_bit, load

ROOT = Path(__file__).resolve().parent.parent
RUNNER = str(ROOT / "bin" / "maelstrom-py")
RAST = str(ROOT / "bin" / "rast")


def run_test(tmp_path: Path, *args: str, timeout_s: float = 180) -> tuple[int, dict, str]:
    store = tmp_path / "store"
    proc = subprocess.run(
        [RUNNER, "test", "-w", "lin-kv", "--bin", RAST, "--store", str(store), *args],
        capture_output=True, text=True, timeout=timeout_s,
    )
    results_path = store / "latest" / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    return proc.returncode, results, proc.stdout + proc.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("nodes", [3, 5])
def test_linearizable_under_partitions(tmp_path: Path, nodes: int) -> None:
    code, results, out = run_test(
        tmp_path, "--node-count", str(nodes), "--concurrency", "2n", "--rate", "300",
        "--time-limit", "12", "--nemesis", "partition", "--nemesis-interval", "2", "--seed", str(40 + nodes),
    )
    assert code == 0, out[-3000:]
    assert results["valid?"] is True
    assert results["workload"]["failures"] == []
    stats = results["stats"]
    assert stats["ok-count"] > 0.3 * stats["count"], stats  # partitions cost some, not most
    assert_partitions_bit(load((tmp_path / "store" / "latest").resolve()))


@pytest.mark.e2e
def test_fault_free_run_serves_nearly_everything_fast(tmp_path: Path) -> None:
    code, results, out = run_test(
        tmp_path, "--node-count", "3", "--concurrency", "2n", "--rate", "300", "--time-limit", "8",
        "--seed", "7",
    )
    assert code == 0, out[-3000:]
    by_f = results["stats"]["by-f"]
    # reads and writes only fail while the first leader is being elected
    for f in ("read", "write"):
        assert by_f[f]["ok-count"] >= 0.9 * by_f[f]["count"], by_f
    assert results["stats"]["info-count"] == 0
    p50 = results["perf"]["latency-ms"]["ok"]["p50"]
    assert p50 < 20, f"p50 latency of ok ops is {p50} ms"
