"""Core tests for snapshots: log compaction, InstallSnapshot in chunks (loss, duplicates, reordering,
stale snapshots, a restart of either side mid-transfer) and the log after an installed snapshot.

The driver extends `raftnet.RaftNet` with what the node glue does: a state machine (the list of
applied data), snapshots of it as bytes, a disk that holds (snapshot, log after it), and received
chunks written to a partial buffer that a restart loses.
"""

from __future__ import annotations

import ast
import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from raftnet import PAPER, Batch, RaftNet
from rast_maelstrom.core import (
    AppendEntries,
    Config,
    InstallSnapshot,
    ProtocolError,
    Raft,
    RaftLog,
    Role,
    SnapshotMeta,
    SnapshotResponse,
)
from rast_maelstrom.core.raft import BUG_INSTALL_STALE_SNAPSHOT

CHUNK = 16  # bytes per InstallSnapshot: every test snapshot takes several chunks
CFG = Config(election_ticks=10, heartbeat_ticks=2, pre_vote=False, check_quorum=False,
             snapshot_chunk_bytes_max=CHUNK)


@dataclass
class SDisk:
    current_term: int = 0
    voted_for: str | None = None
    snapshot: tuple[SnapshotMeta, bytes] | None = None
    log: list[tuple[int, Any]] = field(default_factory=list)  # entries after the snapshot


class SnapNet(RaftNet):
    def __init__(self, ids=("n1", "n2", "n3"), config: Config = CFG, **kw: Any) -> None:
        super().__init__(ids, config=config, **kw)
        self.sdisks = {i: SDisk() for i in self.ids}
        self.state: dict[str, list[Any]] = {i: [] for i in self.ids}  # applied data (state machine)
        self.partial: dict[str, bytearray] = {i: bytearray() for i in self.ids}
        self.installed: dict[str, int] = {i: 0 for i in self.ids}

    def _base(self, nid: str) -> int:
        snap = self.sdisks[nid].snapshot
        return snap[0].index if snap else 0

    def ready(self, node_id: str):  # type: ignore[override]
        raft = self.nodes[node_id]
        rd = raft.ready()
        pending = self.pending[node_id]
        if rd.needs_persist():
            pending.append(Batch(rd.hard_state, rd.entries_start, list(rd.entries), list(rd.messages_after_persist)))
        elif rd.messages_after_persist:
            if pending:
                pending[-1].after.extend(rd.messages_after_persist)
            else:
                self._emit(rd.messages_after_persist)
        self._emit(rd.messages)
        st = self.state[node_id]
        for index, term, data in rd.committed:
            assert index == len(st) + 1, (node_id, index, len(st))
            st.append(data)
        for meta, offset, data in rd.snapshot_chunks:
            buf = self.partial[node_id]
            if offset == 0:
                buf.clear()
            assert len(buf) == offset
            buf.extend(data)
            if len(buf) == meta.size:
                blob = bytes(buf)
                buf.clear()
                self._install(node_id, meta, blob)
        self._note_leader(node_id)
        return rd

    def _install(self, nid: str, meta: SnapshotMeta, blob: bytes) -> None:
        raft = self.nodes[nid]
        state = ast.literal_eval(blob.decode())
        assert len(state) == meta.index
        if raft.install_snapshot(meta, lambda o, n: blob[o:o + n]):
            self.installed[nid] += 1
            self.state[nid] = list(state)
            d = self.sdisks[nid]
            d.snapshot = (meta, blob)  # durable before the acknowledgement leaves (next ready)
            d.log = []  # storage starts afresh; kept entries are handed out again
            self.pending[nid].clear()

    def persist(self, node_id: str, batches: int | None = None) -> int:
        pending = self.pending[node_id]
        disk = self.sdisks[node_id]
        n = 0
        while pending and (batches is None or n < batches):
            b = pending.popleft()
            if b.hard_state is not None:
                disk.current_term, disk.voted_for = b.hard_state
            if b.entries:
                base = self._base(node_id)
                k = b.entries_start - base - 1
                assert 0 <= k <= len(disk.log), "a gap in the stored log"
                del disk.log[k:]
                disk.log.extend(b.entries)
                self.nodes[node_id].persisted(b.entries_start + len(b.entries) - 1, b.entries[-1][0])
            self._emit(b.after)
            n += 1
        return n

    def take_snapshot(self, nid: str) -> SnapshotMeta:
        """Snapshot the state machine at the applied index and compact (as the node does)."""
        raft = self.nodes[nid]
        self.persist(nid)
        index = raft.applied_index
        blob = repr(self.state[nid][:index]).encode()
        conf = raft.conf_at(index)  # (the configuration in force there, as the node records it)
        meta = SnapshotMeta(index, raft.log.term_at(index), conf.voters, len(blob), conf.learners)
        d = self.sdisks[nid]
        base = self._base(nid)
        d.log = d.log[index - base:]
        d.snapshot = (meta, blob)
        assert raft.compact(meta, lambda o, n: blob[o:o + n])
        return meta

    def restart(self, node_id: str) -> Raft:
        d = self.sdisks[node_id]
        self.pending[node_id].clear()
        self.partial[node_id] = bytearray()  # a partly received snapshot is lost with the process
        snap = d.snapshot
        kw: dict[str, Any] = {}
        if snap:
            blob = snap[1]
            kw = {"snapshot": snap[0], "snapshot_reader": lambda o, n: blob[o:o + n]}
            self.state[node_id] = list(ast.literal_eval(blob.decode()))
        else:
            self.state[node_id] = []
        node = Raft(node_id, self.ids, random.Random(f"{self.seed}/{node_id}/restart"), self.config,
                    current_term=d.current_term, voted_for=d.voted_for, entries=list(d.log),
                    members=self.members, **kw)
        self.nodes[node_id] = node
        return node


def _cluster_with_lagging_follower(writes: int = 12) -> SnapNet:
    """n1 leads; n3 is cut off while `writes` entries commit; n1 then snapshots and compacts."""
    net = SnapNet()
    net.elect("n1")
    net.isolate("n3")
    for k in range(writes):
        net.propose("n1", f"w{k}")
    net.stabilize()
    net.heal()
    net.take_snapshot("n1")
    assert net["n1"].log.first_index > net["n3"].log.last_index() + 1
    return net


def _same_state(net: SnapNet, a: str, b: str) -> None:
    ia, ib = net[a].applied_index, net[b].applied_index
    n = min(ia, ib)
    assert net.state[a][:n] == net.state[b][:n]


# ---------------------------------------------------------------------- the log


def test_log_compaction_keeps_boundary_term_and_bounds():
    log = RaftLog()
    for t in (1, 1, 2, 2, 3):
        log.append(t, b"x")
    log.take_unstable()
    log.compact(3)
    assert (log.first_index, log.last_index(), log.snapshot_term) == (4, 5, 2)
    assert log.term_at(3) == 2 and log.term_at(2) is None and log.term_at(0) == 0
    assert log.entries(4, 5) == [(2, b"x"), (3, b"x")]
    assert log.last_index_of_term(2) == 4 and log.first_index_of_term(3) == 3
    log.compact(5)
    assert log.last_index() == 5 and log.last_term() == 3 and log.is_up_to_date(5, 3)
    with pytest.raises(AssertionError):
        log.compact(6)  # past the end


def test_log_restore_keeps_matching_suffix_and_drops_a_conflicting_one():
    log = RaftLog()
    for t in (1, 1, 2, 2):
        log.append(t, b"x")
    log.take_unstable()
    log.restore(2, 1)  # our entry 2 has term 1: entries 3, 4 are kept (they may be acknowledged)
    assert (log.first_index, log.last_index(), log.unstable_index) == (3, 4, 3)
    log.restore(3, 5)  # entry 3 has term 2, not 5: everything goes
    assert (log.first_index, log.last_index(), log.last_term()) == (4, 3, 5)


def test_compaction_never_passes_the_applied_index():
    net = SnapNet()
    net.elect("n1")
    net.propose("n1", "a")
    n1 = net["n1"]
    n1.ready()  # handed to storage, not committed (no persist, no acks)
    meta = SnapshotMeta(n1.log.last_index(), n1.current_term, ("n1", "n2", "n3"), 1)
    with pytest.raises(AssertionError, match="past the applied index"):
        n1.compact(meta, lambda o, n: b"x")


# ---------------------------------------------------------------------- InstallSnapshot


def _until_installed(net: SnapNet, nid: str = "n3", beats_max: int = 20) -> None:
    for _ in range(beats_max):
        net.tick("n1", CFG.heartbeat_ticks)
        net.stabilize()
        if net.installed[nid]:
            return


def test_lagging_follower_catches_up_by_snapshot_in_chunks():
    net = _cluster_with_lagging_follower()
    net.sent = []
    _until_installed(net)
    chunks = [m for m in net.sent if isinstance(m, InstallSnapshot)]
    snap = net["n1"].snapshot
    assert len(chunks) == -(-snap.size // CHUNK) >= 3  # each byte sent once, in chunks
    assert all(len(c.data) <= CHUNK for c in chunks)
    assert net.installed["n3"] == 1 and net["n3"].commit_index >= snap.index
    net.propose("n1", "after")
    net.stabilize()
    net.tick("n1", CFG.heartbeat_ticks)
    net.stabilize()
    assert net.state["n3"] == net.state["n1"] and net.state["n1"][-1] == "after"


def test_lost_chunks_are_resent_from_where_the_follower_is():
    net = _cluster_with_lagging_follower()
    rng = random.Random(7)
    net.sent = []
    for _ in range(200):
        net.tick("n1")
        for i in net.ids:
            net.ready(i)
            net.persist(i)
        for m in net.take():  # a third of the snapshot traffic is lost
            if isinstance(m, (InstallSnapshot, SnapshotResponse)) and rng.random() < 0.33:
                continue
            net.step(m)
        if net.installed["n3"] and net["n3"].commit_index >= net["n1"].commit_index:
            break
    assert net.installed["n3"] == 1
    resent = [m.offset for m in net.sent if isinstance(m, InstallSnapshot)]
    assert len(resent) > len(set(resent)), "a lost chunk was sent again"
    _same_state(net, "n1", "n3")


def test_duplicated_and_reordered_chunks_install_once_and_correctly():
    net = _cluster_with_lagging_follower()
    rng = random.Random(3)
    for _ in range(300):
        net.tick("n1")
        for i in net.ids:
            net.ready(i)
            net.persist(i)
        msgs = net.take()
        msgs += [m for m in msgs if isinstance(m, (InstallSnapshot, SnapshotResponse)) and rng.random() < 0.5]
        rng.shuffle(msgs)
        for m in msgs:
            net.step(m)
        if net.installed["n3"] and net["n3"].commit_index >= net["n1"].commit_index:
            break
    assert net.installed["n3"] == 1
    _same_state(net, "n1", "n3")


def _leader_round(net: SnapNet) -> list:
    """One tick of the leader n1, every node's ready and persist; the messages that went out."""
    net.tick("n1")
    for i in net.ids:
        net.ready(i)
        net.persist(i)
    return net.take()


def _first_chunks(net: SnapNet, n: int) -> None:
    """Run until `n` chunks reached n3 (and no more)."""
    got = 0
    for _ in range(200):
        for m in _leader_round(net):
            net.step(m)
            got += isinstance(m, InstallSnapshot)
        if got >= n:
            return
    raise AssertionError("no snapshot transfer started")


def test_follower_restart_mid_transfer_starts_over_and_completes():
    net = _cluster_with_lagging_follower()
    _first_chunks(net, 2)  # two chunks arrive, then n3 crashes
    assert net.partial["n3"] and not net.installed["n3"]
    net.restart("n3")
    _until_installed(net)
    assert net.installed["n3"] == 1
    _same_state(net, "n1", "n3")


def test_leader_restart_mid_transfer_resumes_from_its_durable_snapshot():
    net = _cluster_with_lagging_follower()
    _first_chunks(net, 1)
    net.restart("n1")  # its snapshot and log after it survive
    assert net["n1"].snapshot is not None and net["n1"].log.first_index > 1
    net.inbox.clear()
    net.elect("n1")
    _until_installed(net)
    assert net.installed["n3"] == 1
    _same_state(net, "n1", "n3")


def test_stale_snapshot_is_never_installed_over_a_newer_commit():
    net = _cluster_with_lagging_follower()
    _until_installed(net)
    n3 = net["n3"]
    commit = n3.commit_index
    snap = net["n1"].snapshot
    blob = net.sdisks["n1"].snapshot[1]
    # A delayed copy of the whole old transfer arrives again after n3 committed past it.
    net.propose("n1", "later")
    net.stabilize()
    net.tick("n1", CFG.heartbeat_ticks)
    net.stabilize()
    assert n3.commit_index > commit
    before = (n3.commit_index, n3.log.first_index, list(net.state["n3"]))
    net.sent = []
    for off in range(0, snap.size, CHUNK):
        n3.step(InstallSnapshot("n1", "n3", n1_term(net), snap.index, snap.term, snap.voters, snap.size,
                                off, blob[off:off + CHUNK]))
        net.ready("n3")
        net.persist("n3")
    assert (n3.commit_index, n3.log.first_index, net.state["n3"]) == before
    assert net.installed["n3"] == 1
    acks = [m for m in net.sent if isinstance(m, SnapshotResponse)]
    assert acks and all(m.done for m in acks)  # "I have all of that already"


def n1_term(net: SnapNet) -> int:
    return net["n1"].current_term


def test_planted_bug_installing_a_stale_snapshot_moves_commit_backwards():
    cfg = Config(election_ticks=10, heartbeat_ticks=2, pre_vote=False, check_quorum=False,
                 snapshot_chunk_bytes_max=1 << 20, bugs=frozenset({BUG_INSTALL_STALE_SNAPSHOT}))
    net = SnapNet(config=cfg)
    net.elect("n1")
    for k in range(5):
        net.propose("n1", k)
    net.stabilize()
    snap = net.take_snapshot("n1")
    net.propose("n1", "more")
    net.stabilize()
    net.tick("n1", 2)
    net.stabilize()
    n2 = net["n2"]
    commit = n2.commit_index
    assert commit > snap.index
    blob = net.sdisks["n1"].snapshot[1]
    n2.step(InstallSnapshot("n1", "n2", n1_term(net), snap.index, snap.term, snap.voters, snap.size, 0, blob))
    net.ready("n2")
    assert n2.commit_index < commit  # what the simulator's commit-monotonicity check catches


def test_follower_with_compacted_prefix_accepts_an_overlapping_append():
    net = SnapNet()
    net.elect("n1")
    for k in range(4):
        net.propose("n1", k)
    net.stabilize()
    net.tick("n1", 2)
    net.stabilize()
    net.take_snapshot("n2")
    n2 = net["n2"]
    first = n2.log.first_index
    term = net["n1"].current_term
    ents = net["n1"].log.entries(2, net["n1"].log.last_index())
    n2.step(AppendEntries("n1", "n2", term, 1, net["n1"].log.term_at(1), ents, net["n1"].commit_index))
    rd = net.ready("n2")
    assert n2.log.first_index == first
    net.persist("n2")
    resp = [m for m in net.inbox if m.src == "n2"]
    assert resp and resp[-1].success and resp[-1].match_index == net["n1"].log.last_index()


def test_check_message_refuses_a_chunk_outside_its_snapshot():
    n = Raft("n2", ["n1", "n2", "n3"], random.Random(0), PAPER)
    with pytest.raises(ProtocolError):
        n.step(InstallSnapshot("n1", "n2", 1, 5, 1, ("n1", "n2", "n3"), 10, 8, b"abcd"))
    with pytest.raises(ProtocolError):
        n.step(InstallSnapshot("n1", "n2", 1, 5, 2, ("n1", "n2", "n3"), 10, 0, b"abcd"))  # term 2 > 1
    assert n.current_term == 0 and n.role is Role.FOLLOWER


def _step_every_chunk_then_ready(net: SnapNet, extra) -> None:
    """Run the transfer to n3, but hold back its last chunk; then step that chunk and `extra(last)`
    (more InstallSnapshot messages) into n3 in ONE pass before its ready(), as a node does with
    everything read from stdin in one pass."""
    for _ in range(200):
        for m in _leader_round(net):
            if isinstance(m, InstallSnapshot) and m.offset + len(m.data) == m.size:
                net.step(m)
                for x in extra(m):
                    net.step(x)
                net.ready("n3")
                return
            net.step(m)
    raise AssertionError("the last chunk never went out")


@pytest.mark.parametrize("extra", [
    # the same snapshot again from its start, from its leader in a newer term (re-elected)
    lambda m: [dataclasses.replace(m, term=m.term + 1, offset=0, data=b"x" * CHUNK)],
    # a chunk of it from a new leader in a newer term (its bytes may differ)
    lambda m: [dataclasses.replace(m, src="n2", term=m.term + 1, offset=0, data=b"y" * CHUNK)],
    # the whole snapshot's first chunk duplicated right behind its last
    lambda m: [dataclasses.replace(m, offset=0, data=b"z" * CHUNK)],
], ids=["newer-term-restart", "new-leader", "duplicate-first"])
def test_chunks_after_the_last_one_in_the_same_pass_leave_the_complete_snapshot_installable(extra):
    """Found by the e2e snapshot test under kill: the last chunk completed a snapshot, and a chunk
    stepped after it in the same pass (before the node installed) reset the receive state, so the
    node's install of the complete snapshot failed the core's assertion and the node stopped. A
    complete snapshot waiting for its install now holds until the caller installs or refuses it;
    what arrives meanwhile is dropped (the sender sends again)."""
    net = _cluster_with_lagging_follower()
    snap = net["n1"].snapshot
    _step_every_chunk_then_ready(net, extra)  # (the install runs inside ready: must not raise)
    assert net.installed["n3"] == 1 and net["n3"].commit_index >= snap.index
    assert net.state["n3"] == net.state["n1"][:snap.index]  # the leader's bytes, not the extras'
