"""AppendEntries are capped in bytes as well as entries, so a follower far behind on large entries is
sent batches it can accept (a receiver drops any line over its limit) and catches up."""

from __future__ import annotations

import dataclasses

from raftnet import PAPER, RaftNet

from rast_maelstrom.core import AppendEntries
from rast_maelstrom.core.log import ENTRY_OVERHEAD_BYTES

VALUE_BYTES = 20_000
BYTES_MAX = 100_000  # five 20 KB entries per message


def _batch_bytes(m: AppendEntries) -> int:
    return sum(ENTRY_OVERHEAD_BYTES + len(d) for _, d in m.entries)


def _catch_up_after_missing(cfg, datas: list[bytes]) -> RaftNet:
    """n3 misses every entry of `datas` (isolated while n1 commits them), then the network heals
    and n1 ticks for 20 heartbeats; `net.sent` holds what was sent after the heal."""
    net = RaftNet(config=cfg)
    net.elect("n1")
    net.isolate("n3")
    for data in datas:
        net.propose("n1", data)
    net.stabilize()
    assert net["n1"].log.last_index() - net["n3"].log.last_index() >= len(datas)
    net.heal()
    net.sent = []
    for _ in range(20 * cfg.heartbeat_ticks):
        net.tick("n1")
        net.stabilize()
    return net


def test_a_follower_behind_on_large_entries_gets_batches_within_the_byte_cap_and_catches_up() -> None:
    cfg = dataclasses.replace(PAPER, append_entries_max=1024, append_entries_bytes_max=BYTES_MAX)
    net = _catch_up_after_missing(cfg, [b"%06d" % i + b"x" * (VALUE_BYTES - 6) for i in range(200)])
    assert net.log_of("n3") == net.log_of("n1")
    to_n3 = [m for m in net.sent if isinstance(m, AppendEntries) and m.dest == "n3" and m.entries]
    assert to_n3 and max(_batch_bytes(m) for m in to_n3) <= BYTES_MAX
    assert max(len(m.entries) for m in to_n3) == BYTES_MAX // (VALUE_BYTES + ENTRY_OVERHEAD_BYTES)


def test_one_entry_larger_than_the_cap_still_goes_alone() -> None:
    cfg = dataclasses.replace(PAPER, append_entries_bytes_max=BYTES_MAX)
    big = b"y" * (3 * BYTES_MAX)
    net = _catch_up_after_missing(cfg, [b"a", big, b"b", b"c"])
    assert net.datas("n3") == net.datas("n1") and big in net.datas("n3")
    batches = [[d for _, d in m.entries] for m in net.sent
               if isinstance(m, AppendEntries) and m.dest == "n3" and m.entries]
    assert [big] in batches  # alone, and nothing else rode along with it
    assert all(len(b) == 1 or sum(ENTRY_OVERHEAD_BYTES + len(d) for d in b) <= BYTES_MAX for b in batches)


def test_the_count_cap_still_holds_for_small_entries() -> None:
    cfg = dataclasses.replace(PAPER, append_entries_max=7)
    net = _catch_up_after_missing(cfg, [b"v%d" % i for i in range(50)])
    assert net.log_of("n3") == net.log_of("n1")
    assert max(len(m.entries) for m in net.sent if isinstance(m, AppendEntries)) == 7
