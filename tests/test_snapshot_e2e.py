"""End to end: snapshots under the runner with kills. Small thresholds make every node compact
several times in a short run (40 entries each: even a loaded machine commits a few hundred); a killed follower misses more than a snapshot's worth of entries and
must catch up by InstallSnapshot (its log says so); the history stays linearizable and the final
reads find every acknowledged write."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_e2e_faults import RAST, assert_rast_survived, run

pytestmark = pytest.mark.e2e


def test_killed_follower_catches_up_by_install_snapshot_and_nothing_is_lost(tmp_path: Path) -> None:
    proc, store_dir, results = run(
        tmp_path, RAST, "--node-count", "3", "--rate", "300", "--time-limit", "10",
        "--nemesis", "kill", "--nemesis-interval", "1.5", "--recovery-s", "3", "--seed", "4",
        node_args=("--data-dir", "{store}/data", "--snapshot-entries", "40", "--log-level", "INFO"))
    assert_rast_survived(proc, store_dir, results, restarts_min=2)
    logs = {p.stem: p.read_text() for p in (store_dir / "node-logs").glob("n*.log")}
    taken = {n: len(re.findall(r"snapshot through \d+ taken", t)) for n, t in logs.items()}
    installed = {n: len(re.findall(r"installed the snapshot through \d+", t)) for n, t in logs.items()}
    loaded = sum(t.count("loaded the snapshot through") for t in logs.values())
    print(f"snapshots taken {taken}, installed {installed}, loaded at restart {loaded}")
    assert sum(taken.values()) >= 6 and min(taken.values()) >= 1, taken  # compacted several times
    assert sum(installed.values()) >= 1, installed  # a follower caught up by InstallSnapshot
    assert loaded >= 1  # a restart recovered from a snapshot plus the WAL after it
    for node_dir in (store_dir / "data").iterdir():  # compaction bounded what stays on disk
        snaps = list(node_dir.glob("snap-*.snap"))
        assert len(snaps) <= 1, snaps
