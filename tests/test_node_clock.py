"""The node's clock policy after a stall (a long pass, a SIGSTOP): a leader catches up every tick it
missed, so heartbeats, check-quorum and leases stay on time; a follower catches up at most
FOLLOWER_CATCHUP_TICKS_MAX, so its own stall does not look like a silent leader. Driven through the
real Node with a manual clock and an in-memory disk (the simulator's)."""

from __future__ import annotations

import orjson

from rast_maelstrom import node as node_mod
from rast_maelstrom.core import Role
from rast_maelstrom.sim.disk import SimDisk, SimWriter


class ManualLoop:
    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, object]] = []
        self.readers: dict[int, object] = {}

    def clock(self) -> float:
        return self.now

    def call_at(self, deadline: float, callback):
        self.timers.append((deadline, callback))
        return None

    def call_later(self, delay: float, callback):
        return self.call_at(self.now + delay, callback)

    def add_reader(self, fd: int, callback) -> None:
        self.readers[fd] = callback

    def fire_due(self) -> None:
        due = [t for t in self.timers if t[0] <= self.now]
        self.timers = [t for t in self.timers if t[0] > self.now]
        for _, cb in due:
            cb()


def make_node(node_ids: list[str]) -> tuple[node_mod.Node, ManualLoop, list[bytes]]:
    loop = ManualLoop()
    out: list[bytes] = []
    disk = SimDisk()

    def sync_now(writer: SimWriter) -> None:
        writer.complete_fsync()

    def open_storage(_dir: str, _fsync: bool):
        return disk.recover(0), SimWriter(disk, 1000, sync_now)

    args = node_mod.parse_args(["--data-dir", "/nonexistent-unused"])
    n = node_mod.Node(args, out.append, loop, open_storage)
    n.on_line(orjson.dumps({"src": "c0", "dest": node_ids[0], "body": {
        "type": "init", "msg_id": 1, "node_id": node_ids[0], "node_ids": node_ids}}))
    n.flush()
    return n, loop, out


def test_a_follower_stalled_for_seconds_catches_up_only_a_few_ticks() -> None:
    n, loop, _ = make_node(["n0", "n1", "n2"])
    raft = n.raft
    before = raft.election_elapsed
    loop.now += 5.0  # five seconds without running: 500 ticks of wall time
    loop.fire_due()
    assert raft.role is Role.FOLLOWER
    assert raft.election_elapsed - before == node_mod.FOLLOWER_CATCHUP_TICKS_MAX


def test_a_leader_stalled_for_seconds_catches_up_every_tick() -> None:
    n, loop, _ = make_node(["n0"])
    loop.now += 0.05
    loop.fire_due()
    n.flush()
    assert n.raft.role is Role.LEADER  # alone, it elects itself at the first tick
    ticks = n.raft.ticks
    loop.now += 2.0
    loop.fire_due()
    assert abs((n.raft.ticks - ticks) - round(2.0 / n.tick_s)) <= 1  # every missed tick, not a few
