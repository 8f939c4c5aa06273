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


def make_node(node_ids: list[str], *flags: str) -> tuple[node_mod.Node, ManualLoop, list[bytes]]:
    loop = ManualLoop()
    out: list[bytes] = []
    disk = SimDisk()

    def sync_now(writer: SimWriter) -> None:
        writer.complete_fsync()

    def open_storage(_dir: str, _fsync: bool):
        return disk.recover(0), SimWriter(disk, 1000, sync_now)

    args = node_mod.parse_args(["--data-dir", "/nonexistent-unused", *flags])
    n = node_mod.Node(args, out.append, loop, open_storage)
    n.on_line(orjson.dumps({"src": "c0", "dest": node_ids[0], "body": {
        "type": "init", "msg_id": 1, "node_id": node_ids[0], "node_ids": node_ids}}))
    n.flush()
    return n, loop, out


def test_a_follower_stalled_for_seconds_catches_up_only_a_few_ticks() -> None:
    # (waking every tick; for the default, which sleeps until the election timeout, see below)
    n, loop, _ = make_node(["n0", "n1", "n2"], "--no-lazy-ticks")
    raft = n.raft
    before = raft.election_elapsed
    loop.now += 5.0  # five seconds without running: 500 ticks of wall time
    loop.fire_due()
    assert raft.role is Role.FOLLOWER
    assert raft.election_elapsed - before == node_mod.FOLLOWER_CATCHUP_TICKS_MAX


def _heartbeat_line(n: node_mod.Node, term: int) -> bytes:
    from rast_maelstrom.core import Heartbeat
    return n._raft_line(Heartbeat("n1", "n0", term, 0, 0))


def test_a_follower_stalled_for_seconds_with_its_leaders_heartbeats_waiting_does_not_campaign() -> None:
    for flags in ((), ("--no-lazy-ticks",)):
        n, loop, _ = make_node(["n0", "n1", "n2"], *flags)
        raft = n.raft
        n.on_line(_heartbeat_line(n, 1))
        n.flush()
        assert raft.leader_id == "n1"
        loop.now += 5.0  # stopped for five seconds while the leader's heartbeats queued on stdin
        n.on_line(_heartbeat_line(n, 1))  # a pass runs its readers before its timers
        loop.fire_due()
        n.flush()
        assert raft.role is Role.FOLLOWER and raft.leader_id == "n1", flags
        assert raft.election_elapsed <= node_mod.FOLLOWER_CATCHUP_TICKS_MAX + 1, flags


def _ticks_until_campaign(*flags: str) -> tuple[int, int, int]:
    """(10 ms steps of wall time until the node campaigns, ticks it counted, timer wake-ups it
    took), its leader silent after one heartbeat."""
    n, loop, _ = make_node(["n0", "n1", "n2"], "--seed", "7", *flags)
    n.on_line(_heartbeat_line(n, 1))
    n.flush()
    wakes = 0
    for step in range(1, 1000):
        loop.now = step * n.tick_s
        wakes += any(t[0] <= loop.now for t in loop.timers)
        loop.fire_due()
        n.flush()
        if n.raft.role is not Role.FOLLOWER:
            return step, n.raft.ticks, wakes
    raise AssertionError("never campaigned")


def test_a_follower_sleeps_through_ticks_until_its_election_timeout_and_campaigns_on_time() -> None:
    lazy_step, lazy_ticks, lazy_wakes = _ticks_until_campaign()
    eager_step, eager_ticks, eager_wakes = _ticks_until_campaign("--no-lazy-ticks")
    assert lazy_ticks == eager_ticks  # the same election timeout, to the tick
    assert abs(lazy_step - eager_step) <= 1  # (the manual clock's float steps: one step either way)
    assert eager_wakes >= eager_ticks - 2  # every tick woke it (one wake may count two: float steps)
    assert lazy_wakes <= 2  # once, at the timeout (plus the timer armed before the heartbeat)


def test_a_follower_keeps_sleeping_while_heartbeats_arrive_and_campaigns_when_they_stop() -> None:
    n, loop, _ = make_node(["n0", "n1", "n2"], "--seed", "3")
    wakes = 0
    step = 0
    for step in range(1, 200):  # 2 s of heartbeats every 50 ms
        loop.now = step * n.tick_s
        if step % 5 == 0:
            n.on_line(_heartbeat_line(n, 1))
        wakes += any(t[0] <= loop.now for t in loop.timers)
        loop.fire_due()
        n.flush()
        assert n.raft.role is Role.FOLLOWER
    assert wakes <= 8  # 2 s of ticks: a wake at each old deadline, every 300-600 ms, not 200
    silent_from = step
    for step in range(silent_from + 1, silent_from + 200):
        loop.now = step * n.tick_s
        loop.fire_due()
        n.flush()
        if n.raft.role is not Role.FOLLOWER:
            break
    waited = step - silent_from
    # the last heartbeat came at most 4 ticks before the silence; timeouts are drawn from [E, 2E)
    assert n.raft.role is not Role.FOLLOWER
    e = node_mod._election_ticks(n.args)
    assert e - 5 <= waited <= 2 * e, waited


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


def test_a_leader_resumed_after_a_pause_judges_its_lease_by_the_clock_of_now() -> None:
    # A SIGSTOP stops the process, not its monotonic clock: reads that queued on stdin while it was
    # stopped must not be served from a lease that expired meanwhile (another leader may have been
    # elected and written since), even when they are handled before any timer fires.
    from rast_maelstrom.core import AppendResponse, HeartbeatResponse, VoteResponse
    n, loop, out = make_node(["n0", "n1", "n2"], "--lease-reads")
    raft = n.raft
    for _ in range(200):  # (the restart quarantine does not apply: a brand-new node)
        loop.now += n.tick_s
        loop.fire_due()
        n.flush()
        if raft.role is not Role.FOLLOWER:
            break

    def peer(m) -> None:
        n.on_line(n._raft_line(m))
        n.flush()
        for wake in list(loop.readers.values()):  # the WAL thread's wake-up: our own fsyncs are done
            wake()
        n.flush()
    peer(VoteResponse("n1", "n0", raft.current_term + 1, True, True))  # pre-vote, then the vote
    peer(VoteResponse("n1", "n0", raft.current_term, True, False))
    assert raft.role is Role.LEADER
    peer(AppendResponse("n1", "n0", raft.current_term, True, match_index=raft.log.last_index()))
    loop.now += n.tick_s * 6  # a heartbeat goes out; n1 answers it
    loop.fire_due()
    n.flush()
    peer(HeartbeatResponse("n1", "n0", raft.current_term, raft.read_seq))

    def read(msg_id: int) -> bool:
        out.clear()
        n.on_line(orjson.dumps({"src": "c1", "dest": "n0", "body": {"type": "read", "msg_id": msg_id, "key": 1}}))
        n.flush()
        replies = [orjson.loads(ln)["body"] for blob in out for ln in blob.splitlines()
                   if b'"in_reply_to":%d' % msg_id in ln]
        # Served: read_ok, or 20 (the key was never written); not: 11 (leadership lost) or no answer.
        return any(r["type"] == "read_ok" or r.get("code") == 20 for r in replies)
    assert read(10)  # within the lease: answered in the same pass, no round
    loop.now += 1.0  # stopped for a second (over three election timeouts); no timer has fired yet
    assert not read(11)
