"""The sans-IO Raft state machine.

Owns: one replica's Raft state (Figure 2 of the Raft paper, names kept): `current_term`,
`voted_for`, the log, `commit_index`, role, per-follower progress, elections with pre-vote and
check-quorum, pipelined replication with fast backtracking, and ReadIndex rounds for linearizable
reads without log writes.

How it is driven (the Ready contract, after etcd-io/raft):
- inputs: `tick()` (one unit of logical time), `step(msg)`, `propose(data)`, `read_index(ctx)`,
  `persisted(index, term)` (storage reports that everything handed out so far up to `index` is durable);
- output: `ready()` returns a `Ready` batch. The caller must (1) hand `hard_state` and `entries` to
  storage, (2) send `messages` now, (3) send `messages_after_persist` only once that storage write is
  durable *and every earlier one too*, (4) apply `committed` in order, (5) serve `read_states` once it
  has applied up to their index, (6) fail `dropped_reads`.

Safety rules that live here: a vote, an append acknowledgement and a candidate's own vote requests
leave only after the state they depend on is durable (they are `messages_after_persist`); the leader
counts itself toward a commit only up to its own durable index (Raft thesis §10.2.1: its disk write
runs in parallel with replication); only entries of the current term are committed by counting
(§5.4.2); a follower never truncates entries that match, so a stale or reordered AppendEntries cannot
shorten its log.

Membership (core/membership.py): the configuration in force is the last configuration entry in the
log (or the snapshot's); only its voters campaign, vote and count toward commits, read rounds,
leases and check-quorum; learners are replicated to; everyone else in `node_ids` gets heartbeats
only. `reconfigure(voters)` reaches a target in single-server steps, one in flight at a time, each
only after an entry of the leader's term committed; `transfer_leadership` hands over by TimeoutNow.

May not touch: IO, clocks, threads, global randomness. Time enters as ticks, randomness as the
injected `rng` (anything with `randrange`). Imports only the standard library.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from . import membership
from .log import RaftLog
from .membership import CONF_PREFIX, Membership
from .messages import (
    AppendEntries,
    AppendResponse,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ProtocolError,
    RequestVote,
    SnapshotMeta,
    SnapshotResponse,
    TimeoutNow,
    VoteResponse,
    check_message,
)


class Rng(Protocol):
    def randrange(self, start: int, stop: int) -> int: ...


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


# Test-only planted bugs (the simulator must catch each one). Never set outside tests.
BUG_ACK_BEFORE_PERSIST = "ack-before-persist"
BUG_COMMIT_OLD_TERM = "commit-old-term"
BUG_VOTE_IGNORES_LOG = "vote-ignores-log"
BUG_TRUNCATE_ON_STALE_APPEND = "truncate-on-stale-append"
BUG_READ_WITHOUT_QUORUM = "read-without-quorum"  # ReadIndex serves reads with no heartbeat round
BUG_READ_ONE_ACK = "read-one-ack"  # a read round is confirmed by one follower's answer
BUG_INSTALL_STALE_SNAPSHOT = "install-stale-snapshot"  # a follower installs one older than its commit
BUG_SNAPSHOT_PAST_APPLIED = "snapshot-past-applied"  # the node labels a snapshot past what it applied
BUG_CONF_TWO_IN_FLIGHT = "conf-two-in-flight"  # a leader proposes a change before the last one committed
BUG_LEARNER_COUNTS = "learner-counts-for-commit"  # a learner's acks count toward commits: its config used early
BUG_LEASE_TOO_LONG = "lease-too-long"  # a lease lasts two election timeouts (no margin, past stickiness)
BUG_LEASE_COUNTS_LEARNERS = "lease-counts-learners"  # learners' (and their) acks renew the leader's lease
BUG_LEASE_AFTER_TRANSFER = "lease-after-transfer"  # lease reads go on during and after a TimeoutNow handover
BUG_LEASE_STALE_CLOCK = "lease-stale-clock"  # (node) a lease is judged before the clock catches up on a pause
STALL_BEATS_MAX = 2
BEATS_TRACKED_MAX = 4096  # heartbeat send ticks remembered for lease arithmetic

BUGS = frozenset(
    {BUG_ACK_BEFORE_PERSIST, BUG_COMMIT_OLD_TERM, BUG_VOTE_IGNORES_LOG, BUG_TRUNCATE_ON_STALE_APPEND,
     BUG_READ_WITHOUT_QUORUM, BUG_READ_ONE_ACK, BUG_INSTALL_STALE_SNAPSHOT, BUG_SNAPSHOT_PAST_APPLIED,
     BUG_CONF_TWO_IN_FLIGHT, BUG_LEARNER_COUNTS, BUG_LEASE_TOO_LONG, BUG_LEASE_COUNTS_LEARNERS,
     BUG_LEASE_AFTER_TRANSFER, BUG_LEASE_STALE_CLOCK}
)
SnapshotReader = Callable[[int, int], bytes]  # (offset, bytes_max) -> the snapshot's bytes there


@dataclass(frozen=True, slots=True)
class Config:
    election_ticks: int = 20  # minimum election timeout; each timeout is drawn from [e, 2e)
    heartbeat_ticks: int = 4
    inflight_max: int = 32  # AppendEntries in flight per follower when replicating
    append_entries_max: int = 1024  # entries per AppendEntries message
    # ... and bytes per AppendEntries: the entries' data lengths plus ENTRY_OVERHEAD_BYTES each (one
    # entry always goes, however large), so a batch fits under a receiver's line limit.
    append_entries_bytes_max: int = 1 << 20
    pre_vote: bool = True
    check_quorum: bool = True
    # Lease reads: the leader serves reads without a heartbeat round while a quorum of the voters in
    # force acknowledged a heartbeat it sent less than `election_ticks - lease_margin_ticks` ago
    # (followers refuse other candidates for `election_ticks` after hearing from it). Safe only if
    # the ticks of any two nodes advance at rates within a factor (E - 1) / (E - margin) of each
    # other (E = election_ticks; 29/27 at the node's defaults) and a stalled leader catches up on
    # the ticks it missed before it judges a lease (the node does). Needs check_quorum (stickiness).
    lease_reads: bool = False
    lease_margin_ticks: int = 3
    snapshot_chunk_bytes_max: int = 256 << 10  # bytes of snapshot per InstallSnapshot
    # A learner that lacks the entry that made it a learner catches up by a snapshot taken at or
    # after that entry, never from older entries: a node whose data was wiped then never holds a
    # configuration from before the wipe (in which it may have been a voter). Off: from entries.
    learner_snapshot: bool = True
    # Bootstrap rule: a candidate with an empty log (a new cluster, or a node whose data was wiped)
    # needs every voter, so nodes that lost their data cannot elect one another under the initial
    # configuration while one that kept it is a voter there. The node turns it on when `init` names
    # the members (the membership extension is in use).
    bootstrap_unanimous: bool = False
    bugs: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        assert self.election_ticks > self.heartbeat_ticks >= 1
        assert self.inflight_max >= 1 and self.append_entries_max >= 1 and self.append_entries_bytes_max >= 1
        assert self.bugs <= BUGS, self.bugs - BUGS
        assert 0 < self.lease_margin_ticks < self.election_ticks
        assert self.check_quorum or not self.lease_reads, "a lease rests on the followers' stickiness"


@dataclass(slots=True)
class Ready:
    hard_state: tuple[int, str | None] | None
    entries_start: int  # index of entries[0]; entries at and after it replace what storage has
    entries: list[Entry]
    messages: list[Message]
    messages_after_persist: list[Message]
    committed: list[tuple[int, int, Any]]  # (index, term, data), in index order
    read_states: list[tuple[Any, int]]  # (ctx, read index): serve once applied >= index
    dropped_reads: list[Any]  # ctxs whose leadership confirmation can no longer happen
    # Snapshot chunks received, in order: (meta, offset, data). Offset 0 starts a new snapshot. The
    # caller writes each; when one completes the snapshot (offset + len == meta.size) it checks and
    # makes it durable, then calls `install_snapshot(meta)` (or `snapshot_refused()`).
    snapshot_chunks: list[tuple[SnapshotMeta, int, bytes]] = field(default_factory=list)

    def needs_persist(self) -> bool:
        return self.hard_state is not None or bool(self.entries)


class Progress:
    """The leader's view of one follower (etcd's probe/replicate states)."""

    __slots__ = (
        "match", "next", "probing", "probe_sent", "probe_tick", "inflight", "match_at_beat", "stalled_beats",
        "snap_index", "snap_offset", "snap_sent",
    )

    def __init__(self, next_index: int) -> None:
        self.match = 0
        self.match_at_beat = 0  # match when the last timed heartbeat went out
        self.stalled_beats = 0  # timed heartbeats in a row without progress while behind
        self.next = next_index
        self.probing = True  # one AppendEntries at a time until a match is found
        self.probe_sent = False
        self.probe_tick = 0  # when the outstanding probe left (a reachable follower gets a new one after a beat)
        self.inflight: deque[int] = deque()  # last index of each AppendEntries in flight
        self.snap_index = 0  # while sending a snapshot: its last index (0: not sending one)
        self.snap_offset = 0  # ... the next byte to send
        self.snap_sent = False  # ... a chunk is in flight (sent at probe_tick)

    def __repr__(self) -> str:
        state = f"snapshot {self.snap_index}@{self.snap_offset}" if self.snap_index else (
            "probe" if self.probing else "replicate")
        return f"Progress(match={self.match}, next={self.next}, {state}, inflight={len(self.inflight)})"


@dataclass(slots=True)
class _ReadRound:
    seq: int
    index: int
    ctxs: list[Any] = field(default_factory=list)


class Raft:
    def __init__(
        self,
        node_id: str,
        node_ids: list[str],
        rng: Rng,
        config: Config = Config(),
        *,
        current_term: int = 0,
        voted_for: str | None = None,
        first_index: int = 1,
        entries: list[Entry] | None = None,
        noop: Any = None,
        snapshot: SnapshotMeta | None = None,
        snapshot_reader: SnapshotReader | None = None,
        members: list[str] | None = None,
    ) -> None:
        """With `snapshot`, the log starts after it (`first_index` is then snapshot.index + 1) and
        `snapshot_reader` reads its bytes (for InstallSnapshot). `members`: the voters of a cluster
        that has no configuration in its log or snapshot yet (default: every node in `node_ids`)."""
        assert node_id in node_ids and len(set(node_ids)) == len(node_ids)
        assert members is None or (members and set(members) <= set(node_ids))
        self.id = node_id
        self.node_ids = list(node_ids)
        self.rng = rng
        self.config = config
        self.noop = noop  # data of the entry a new leader appends to commit its term

        self.current_term = current_term
        self.voted_for = voted_for
        if snapshot is not None:
            assert first_index in (1, snapshot.index + 1) and snapshot_reader is not None
            first_index = snapshot.index + 1
        self.snapshot = snapshot
        self._snapshot_reader = snapshot_reader
        # The snapshot being received: (meta, bytes so far, (sender, term)).
        self._incoming: tuple[SnapshotMeta, int, tuple[str, int]] | None = None
        self._chunks: list[tuple[SnapshotMeta, int, bytes]] = []
        self.log = RaftLog(first_index, entries, snapshot.term if snapshot else 0)
        # Configurations: the one as of the log's start (the snapshot's, or the initial one), and
        # every configuration entry in the log after it, in index order. The last one is in force.
        if snapshot is not None:
            self._base_conf = Membership.of(snapshot.voters, snapshot.learners)
        else:
            self._base_conf = Membership.of(members if members is not None else node_ids)
        self._confs: list[tuple[int, Membership]] = []
        for k, (_, data) in enumerate(entries or ()):
            self._note_conf(first_index + k, data)
        self.target: frozenset[str] | None = None  # a leader's reconfiguration goal (voters)
        self._learner_since: dict[str, int] = {}  # learner -> index of the entry that made it one
        # Leader: a snapshot through at least this index is wanted for a learner (0: none); the
        # caller takes one once it applied that far, then calls compact().
        self.snapshot_wanted = 0
        self._transfer: tuple[str, int, bool] | None = None  # (to, give-up tick, TimeoutNow sent)
        self.role = Role.FOLLOWER
        self.progress: dict[str, Progress] = {}
        self._set_conf()
        self.commit_index = first_index - 1
        self.applied_index = first_index - 1  # last index handed out in Ready.committed
        self.persisted_index = self.log.last_index()  # everything recovered is durable

        self.role = Role.FOLLOWER
        self.leader_id: str | None = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.stall_check_elapsed = 0  # a leader's own clock for _detect_stalls (reads reset heartbeats)
        self.randomized_election_ticks = 0
        self._reset_election_timeout()
        if self.conf.voters == (self.id,):
            self.randomized_election_ticks = 1  # alone: nobody to wait for
        self.votes: dict[str, bool] = {}
        self.progress: dict[str, Progress] = {}
        self.recent_active: set[str] = set()

        self.read_seq = 0
        self.ticks = 0  # ticks since this replica started (lease arithmetic)
        # A replica that comes back with state may have acknowledged a leader's heartbeat before it
        # stopped, so it honours that lease for an election timeout. One with term 0 never has
        # (a heartbeat's term reaches the disk before its acknowledgement leaves): no quarantine.
        self._lease_quarantine = config.lease_reads and current_term > 0
        # ... but until a term above 0 is known durable here (storage reported a batch with entries),
        # a restart could come back with term 0 and no quarantine: acknowledge heartbeats only
        # after the batches in progress are durable.
        self._term_maybe_zero_on_disk = config.lease_reads and current_term == 0
        self._lease_forfeit_term = -1  # a term in which we sent TimeoutNow: no lease in it, ever
        self._beat_ticks: dict[int, int] = {}  # read_seq -> tick it was broadcast at (lease reads)
        self._acked_ticks: dict[str, int] = {}  # peer -> send tick of the newest heartbeat it acked
        self.pending_reads: list[Any] = []
        self.read_rounds: deque[_ReadRound] = deque()
        self.read_acks: dict[str, int] = {}

        self._handed_hard_state = (current_term, voted_for)
        self._msgs: list[Message] = []
        self._msgs_after: list[Message] = []
        self._read_states: list[tuple[Any, int]] = []
        self._dropped_reads: list[Any] = []

    # ------------------------------------------------------------------ inputs

    def tick(self) -> None:
        self.ticks += 1
        if self.role is Role.LEADER:
            self.heartbeat_elapsed += 1
            self.election_elapsed += 1
            if self._transfer is not None and self.ticks >= self._transfer[1]:
                self._transfer = None  # the heir did not take over within a timeout: lead on
            if self.election_elapsed >= self.config.election_ticks:
                self.election_elapsed = 0
                if self.config.check_quorum:
                    active = self.is_voter + sum(1 for p in self.voter_peers if p in self.recent_active)
                    self.recent_active.clear()
                    if active < self.quorum:
                        self._become_follower(self.current_term, None)
                        return
            self.stall_check_elapsed += 1
            if self.stall_check_elapsed >= self.config.heartbeat_ticks:
                self.stall_check_elapsed = 0
                self._detect_stalls()
            if self.heartbeat_elapsed >= self.config.heartbeat_ticks:
                self.heartbeat_elapsed = 0
                self._broadcast_heartbeat()
        else:
            self.election_elapsed += 1
            if self.election_elapsed >= self.randomized_election_ticks:
                self.election_elapsed = 0
                if not self.is_voter:
                    return  # a learner, a spare or a removed node never campaigns
                if self.config.pre_vote:
                    self._become_pre_candidate()
                else:
                    self._become_candidate()

    def ticks_to_act(self) -> int:
        """How many more `tick` calls until one acts on its own (k >= 1): a leader's can act on any
        tick (heartbeats, check-quorum, stall checks, a handover's expiry); anyone else's only at
        the election timeout. A driver may sleep through the ticks before it, counting them later
        (messages stepped meanwhile reset the count; ask again after them)."""
        if self.role is Role.LEADER:
            return 1
        return max(1, self.randomized_election_ticks - self.election_elapsed)

    def propose(self, data: Any) -> tuple[int, int] | None:
        """Append `data` if leader. Returns (index, term) of the new entry, or None if not leader
        (or handing leadership over: the heir must catch up with a log that stands still)."""
        if self.role is not Role.LEADER or self._transfer is not None:
            return None
        return self.log.append(self.current_term, data), self.current_term

    # ------------------------------------------------------------------ configuration

    def reconfigure(self, voters: Any) -> str | None:
        """Leader: aim for a configuration whose voters are `voters` (a subset of node_ids) and
        that has no learners, reached in single-server steps (see membership.next_step). None if
        accepted (the caller waits for `reconfigured(voters)`), else why not (nothing changed)."""
        target = frozenset(voters)
        assert target and target <= set(self.node_ids), target
        if self.role is not Role.LEADER:
            return "not the leader"
        if self._transfer is not None:
            return "a leadership transfer is in progress"
        if self.target not in (None, target) and self._conf_index() > self.commit_index:
            return "another configuration change is in progress"
        self.target = target
        return None

    def reconfigured(self, voters: Any) -> bool:
        """Is the configuration with exactly these voters (and no learners) committed and in force?"""
        return (self.conf.voters == tuple(sorted(set(voters))) and not self.conf.learners
                and self._conf_index() <= self.commit_index)

    def committed_conf(self) -> Membership:
        """The newest configuration whose entry is committed."""
        for index, conf in reversed(self._confs):
            if index <= self.commit_index:
                return conf
        return self._base_conf

    def conf_at(self, index: int) -> Membership:
        """The configuration in force once entries through `index` are in the log."""
        assert index >= self.log.first_index - 1
        for i, conf in reversed(self._confs):
            if i <= index:
                return conf
        return self._base_conf

    def transfer_leadership(self, to: str) -> bool:
        """Leader: hand leadership to the voter `to` (thesis §3.10). Proposals stop; once `to`
        holds our whole log it gets TimeoutNow and campaigns at once (its vote requests override
        leader stickiness). Given up after an election timeout. False if not possible now."""
        if self.role is not Role.LEADER or to not in self.voter_peers or self._transfer is not None:
            return False
        self._transfer = (to, self.ticks + self.config.election_ticks, False)
        return True

    def _conf_index(self) -> int:
        return self._confs[-1][0] if self._confs else self.log.first_index - 1

    def _note_conf(self, index: int, data: Any) -> bool:
        if not isinstance(data, (bytes, bytearray)) or data[:7] != CONF_PREFIX:
            return False
        conf = membership.decode(data)
        if conf is None:
            return False
        self._confs.append((index, conf))
        return True

    def _drop_confs_from(self, index: int) -> bool:
        """Entries from `index` on left the log: so do their configurations."""
        n = len(self._confs)
        while self._confs and self._confs[-1][0] >= index:
            self._confs.pop()
        return len(self._confs) != n

    def _set_conf(self) -> None:
        """Put the newest configuration in the log in force (it takes effect when appended)."""
        conf = self.conf = self._confs[-1][1] if self._confs else self._base_conf
        me = self.id
        self.peers = [n for n in conf.members() if n != me]  # replication targets
        self.voter_peers = [n for n in conf.voters if n != me]
        self._voter_set = frozenset(conf.voters)
        self.is_voter = me in self._voter_set
        self.quorum = conf.quorum
        members = set(conf.members())
        self.outsiders = [n for n in self.node_ids if n not in members]  # heartbeats only
        since = self._learner_since = {}
        for n in conf.learners:
            a = self._conf_index()
            for i, c in reversed(self._confs):
                if n not in c.learners:
                    break
                a = i
            else:
                if n in self._base_conf.learners:
                    a = self.log.first_index - 1  # (a learner since before our snapshot)
            since[n] = a
        if self.role is Role.LEADER:
            nxt = self.log.last_index()  # (a probe of our newest entry: it is in the log already)
            for p in self.peers:
                if p not in self.progress:
                    self.progress[p] = Progress(nxt)
            for p in [p for p in self.progress if p not in members]:
                del self.progress[p]
            if self._transfer is not None and self._transfer[0] not in self._voter_set:
                self._transfer = None
            self._maybe_commit()

    def _propose_conf(self, conf: Membership) -> None:
        index = self.log.append(self.current_term, conf.encode())
        self._confs.append((index, conf))
        self._set_conf()

    def _advance_reconfig(self) -> None:
        """Leader: take the next step towards the target, if the last one is committed and this
        term has committed an entry (the dissertation's fix: until then an uncommitted change of
        an earlier leader may still be in flight)."""
        target = self.target
        if target is None or self._transfer is not None:
            return
        if self.log.term_at(self.commit_index) != self.current_term:
            return
        if self._conf_index() > self.commit_index and BUG_CONF_TWO_IN_FLIGHT not in self.config.bugs:
            return
        commit = self.commit_index

        def caught_up(n: str) -> bool:
            pr = self.progress.get(n)
            return pr is not None and not pr.snap_index and pr.match >= commit
        step = membership.next_step(self.conf, target, self.id, caught_up)
        if isinstance(step, Membership):
            self._propose_conf(step)
        elif isinstance(step, str):
            self.transfer_leadership(step)
        elif self.reconfigured(target):
            self.target = None

    def _maybe_send_timeout_now(self) -> None:
        to, until, sent = self._transfer
        if not sent and self.progress[to].match == self.log.last_index():
            self._msgs.append(TimeoutNow(self.id, to, self.current_term))
            # The heir's vote requests override our voters' stickiness for as long as they travel,
            # a copy of TimeoutNow may arrive late: whatever becomes of the transfer, our lease
            # can no longer promise that nobody else leads this term.
            self._lease_forfeit_term = self.current_term
            self._transfer = (to, until, True)

    def read_index(self, ctx: Any) -> bool:
        """Queue a linearizable read. False if not leader (the caller forwards or refuses)."""
        if self.role is not Role.LEADER:
            return False
        self.pending_reads.append(ctx)
        return True

    def persisted(self, index: int, term: int) -> None:
        """Storage made everything handed out so far durable, ending at entry (index, term)."""
        if term > 0:
            self._term_maybe_zero_on_disk = False  # (entries of term t land after a hard state of term >= t)
        if index > self.persisted_index and self.log.term_at(index) == term:
            self.persisted_index = index
            if self.role is Role.LEADER:
                self._maybe_commit()

    def step(self, m: Message) -> None:
        """Raises ProtocolError, before changing anything, for a message that breaks Raft's rules
        (`check_message`, then what this replica knows: see `_check_against_state`)."""
        why = check_message(m)
        if why is None and m.term >= self.current_term:
            why = self._check_against_state(m)
        if why is not None:
            raise ProtocolError(why)
        if isinstance(m, RequestVote) and (m.src not in self._voter_set or not self.is_voter):
            # A spare, learner or removed node never wins a vote here (and never moves our term);
            # nor do we vote while not a voter ourselves.
            self._msgs.append(VoteResponse(self.id, m.src, self.current_term, False, m.pre_vote))
            return
        if m.term > self.current_term:
            if isinstance(m, RequestVote) and self._in_lease(m.transfer):
                return  # leader stickiness: a leader we heard from recently still stands
            if isinstance(m, RequestVote) and m.pre_vote:
                self._handle_vote_request(m)  # a pre-vote never changes our term
                return
            if not (isinstance(m, VoteResponse) and m.pre_vote and m.granted):
                # (a granted pre-vote carries the term we would campaign in: no change)
                leader = m.src if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot, TimeoutNow)) else None
                self._become_follower(m.term, leader)
        elif m.term < self.current_term:
            if isinstance(m, (AppendEntries, Heartbeat, InstallSnapshot, TimeoutNow)):
                # A stale leader: tell it about the newer term so it steps down.
                self._msgs.append(HeartbeatResponse(self.id, m.src, self.current_term, 0))
            elif isinstance(m, RequestVote) and m.pre_vote:
                self._msgs.append(VoteResponse(self.id, m.src, self.current_term, False, True))
            return

        if isinstance(m, AppendEntries):
            self._accept_leader(m.src)
            self._handle_append(m)
        elif isinstance(m, Heartbeat):
            self._accept_leader(m.src)
            self._handle_heartbeat(m)
        elif isinstance(m, InstallSnapshot):
            self._accept_leader(m.src)
            self._handle_install_snapshot(m)
        elif isinstance(m, RequestVote):
            self._handle_vote_request(m)
        elif isinstance(m, VoteResponse):
            self._handle_vote_response(m)
        elif isinstance(m, TimeoutNow):
            # Our leader hands over (it holds no newer entries than we do): campaign now.
            if self.role is Role.FOLLOWER and self.is_voter and self.leader_id in (None, m.src):
                self._become_candidate(transfer=True)
        elif self.role is Role.LEADER:
            if isinstance(m, AppendResponse):
                self._handle_append_response(m)
            elif isinstance(m, HeartbeatResponse):
                self._handle_heartbeat_response(m)
            elif isinstance(m, SnapshotResponse):
                self._handle_snapshot_response(m)

    def _check_against_state(self, m: Message) -> str | None:
        """Rules a message of our term or a newer one breaks only in the light of our own state:
        a second leader in one term, a log that contradicts an entry we know is committed (Leader
        Completeness: a leader of this or a later term has every committed entry), an
        acknowledgement of entries or heartbeats we never sent."""
        t = type(m)
        same = m.term == self.current_term
        if t is AppendEntries or t is Heartbeat or t is InstallSnapshot:
            if same and (self.role is Role.LEADER or self.leader_id not in (None, m.src)):
                return f"a second leader in term {m.term} (we know {self.leader_id})"
            if t is AppendEntries:
                log, commit, pi = self.log, self.commit_index, m.prev_index
                mine = log.term_at(pi) if pi <= commit else None
                if mine is not None and mine != m.prev_term:
                    return f"prev entry {pi} has term {m.prev_term}, but our committed entry has {mine}"
                for k in range(min(len(m.entries), commit - pi)):
                    mine = log.term_at(pi + k + 1)
                    if mine is not None and mine != m.entries[k][0]:
                        return f"entry {pi + k + 1} has term {m.entries[k][0]}, our committed one {mine}"
        elif same and self.role is Role.LEADER:
            last = self.log.last_index()
            if t is AppendResponse:
                if m.success and m.match_index > last:
                    return f"match_index {m.match_index} beyond our last index {last}"
                if not m.success and m.reject_index > last:
                    return f"reject_index {m.reject_index} beyond our last index {last}"
            elif t is HeartbeatResponse and m.read_seq > self.read_seq:
                return f"read_seq {m.read_seq} acknowledged, but our last is {self.read_seq}"
            elif t is SnapshotResponse and m.last_index > last:
                return f"snapshot through {m.last_index} acknowledged, beyond our last index {last}"
        return None

    # ------------------------------------------------------------------ output

    def ready(self) -> Ready:
        if self.role is Role.LEADER:
            if self.target is not None:
                self._advance_reconfig()
            self._maybe_start_read_round()
            for peer in self.peers:
                self._send_append(peer, self.progress[peer])
            if self._transfer is not None:
                self._maybe_send_timeout_now()
        hs = (self.current_term, self.voted_for)
        if hs == self._handed_hard_state:
            hard_state = None
        else:
            hard_state = self._handed_hard_state = hs
        start, entries = self.log.take_unstable()
        committed: list[tuple[int, int, Any]] = []
        if self.commit_index > self.applied_index:
            lo, hi = self.applied_index + 1, self.commit_index
            committed = [(lo + k, t, d) for k, (t, d) in enumerate(self.log.entries(lo, hi))]
            self.applied_index = hi
        rd = Ready(
            hard_state,
            start,
            entries,
            self._msgs,
            self._msgs_after,
            committed,
            self._read_states,
            self._dropped_reads,
        )
        if self._chunks:
            rd.snapshot_chunks, self._chunks = self._chunks, []
        self._msgs, self._msgs_after = [], []
        self._read_states, self._dropped_reads = [], []
        return rd

    # ------------------------------------------------------------------ roles

    def _reset_election_timeout(self) -> None:
        e = self.config.election_ticks
        self.randomized_election_ticks = self.rng.randrange(e, 2 * e)

    def _in_lease(self, transfer: bool = False) -> bool:
        """Refuse to vote? `transfer`: the request comes from an heir our leader chose (TimeoutNow),
        which overrides stickiness, never the restart quarantine."""
        cfg = self.config
        if self._lease_quarantine and self.ticks < cfg.election_ticks:
            return True  # just restarted: we may have promised a leader its lease before the crash
        return (not transfer and cfg.check_quorum and self.leader_id is not None
                and self.election_elapsed < cfg.election_ticks)

    def _drop_reads(self) -> None:
        self._dropped_reads.extend(self.pending_reads)
        for rnd in self.read_rounds:
            self._dropped_reads.extend(rnd.ctxs)
        self.pending_reads = []
        self.read_rounds.clear()
        self.read_acks.clear()

    def _become_follower(self, term: int, leader: str | None) -> None:
        assert term >= self.current_term
        if term > self.current_term:
            self.current_term = term
            self.voted_for = None
        if self.role is Role.LEADER:
            self._drop_reads()
            self.progress = {}
            self.target = None
            self._transfer = None
        self.role = Role.FOLLOWER
        self.leader_id = leader
        self.election_elapsed = 0
        self._reset_election_timeout()

    def _accept_leader(self, leader: str) -> None:
        """A current-term AppendEntries/Heartbeat arrived: `leader` leads this term."""
        assert self.role is not Role.LEADER, "two leaders in one term"
        if self.role is not Role.FOLLOWER:
            self._become_follower(self.current_term, leader)
        self.leader_id = leader
        self.election_elapsed = 0

    def _become_pre_candidate(self) -> None:
        self.role = Role.PRE_CANDIDATE
        self._campaign(self.current_term + 1, pre_vote=True, out=self._msgs)

    def _become_candidate(self, transfer: bool = False) -> None:
        self.current_term += 1
        self.voted_for = self.id
        self.role = Role.CANDIDATE
        # Our own vote must be durable before anyone can count on it.
        self._campaign(self.current_term, pre_vote=False, out=self._msgs_after, transfer=transfer)

    def _campaign(self, term: int, *, pre_vote: bool, out: list[Message], transfer: bool = False) -> None:
        self.leader_id = None
        self.votes = {self.id: True}
        self._reset_election_timeout()
        if self._tally() is not None:
            return
        li, lt = self.log.last_index(), self.log.last_term()
        for p in self.voter_peers:
            out.append(RequestVote(self.id, p, term, li, lt, pre_vote, transfer))

    def _become_leader(self) -> None:
        assert self.role is Role.CANDIDATE
        self.role = Role.LEADER
        self.leader_id = self.id
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.stall_check_elapsed = 0
        self.recent_active = set()
        self.read_acks = {}
        self._acked_ticks = {}
        nxt = self.log.last_index() + 1
        self.progress = {p: Progress(nxt) for p in self.peers}
        self.target = None
        self._transfer = None
        self.log.append(self.current_term, self.noop)  # commits this term (and all before it)
        if not self.voter_peers:
            self._maybe_commit()

    def _tally(self) -> bool | None:
        """Count votes; on a decision, change role and return True (won) or False (lost)."""
        voters = self._voter_set
        granted = sum(1 for p, v in self.votes.items() if v and p in voters)
        rejected = sum(1 for p, v in self.votes.items() if not v and p in voters)
        empty = self.log.last_index() == 0 and self.config.bootstrap_unanimous  # (see Config)
        need = len(voters) if empty else self.quorum
        if granted >= need:
            if self.role is Role.PRE_CANDIDATE:
                self._become_candidate()
            else:
                self._become_leader()
            return True
        if rejected > len(voters) - need:
            self._become_follower(self.current_term, None)
            return False
        return None

    # ------------------------------------------------------------------ elections

    def _handle_vote_request(self, m: RequestVote) -> None:
        up_to_date = self.log.is_up_to_date(m.last_log_index, m.last_log_term)
        if BUG_VOTE_IGNORES_LOG in self.config.bugs:
            up_to_date = True
        if m.pre_vote:
            granted = m.term > self.current_term and up_to_date
            term = m.term if granted else self.current_term
            self._msgs.append(VoteResponse(self.id, m.src, term, granted, True))
            return
        assert m.term == self.current_term
        can_vote = self.voted_for == m.src or (self.voted_for is None and self.leader_id is None)
        granted = can_vote and up_to_date and self.role is not Role.LEADER
        if granted:
            self.voted_for = m.src
            self.election_elapsed = 0
        # The vote is only worth anything once durable.
        self._msgs_after.append(VoteResponse(self.id, m.src, self.current_term, granted, False))

    def _handle_vote_response(self, m: VoteResponse) -> None:
        if m.pre_vote:
            if self.role is not Role.PRE_CANDIDATE or m.term != self.current_term + (1 if m.granted else 0):
                return
        elif self.role is not Role.CANDIDATE or m.term != self.current_term:
            return
        self.votes[m.src] = m.granted
        self._tally()

    # ------------------------------------------------------------------ replication (follower)

    def _handle_append(self, m: AppendEntries) -> None:
        log = self.log
        base = log.first_index - 1
        if m.prev_index < base:
            # Entries through `base` are in our snapshot (committed, so the leader's too): skip them.
            k = base - m.prev_index
            if k >= len(m.entries):
                self._msgs_after.append(AppendResponse(self.id, m.src, self.current_term, True,
                                                       match_index=m.prev_index + len(m.entries)))
                return
            m = AppendEntries(m.src, m.dest, m.term, base, m.entries[k - 1][0], m.entries[k:], m.commit_index)
        mine = log.term_at(m.prev_index)
        after = self._msgs if BUG_ACK_BEFORE_PERSIST in self.config.bugs else self._msgs_after
        if mine is None:
            after.append(
                AppendResponse(
                    self.id, m.src, self.current_term, False,
                    reject_index=m.prev_index, conflict_index=log.last_index() + 1,
                )
            )
            return
        if mine != m.prev_term:
            assert m.prev_index > self.commit_index, "a committed entry differs from the leader's"
            after.append(
                AppendResponse(
                    self.id, m.src, self.current_term, False,
                    reject_index=m.prev_index,
                    conflict_index=log.first_index_of_term(m.prev_index),
                    conflict_term=mine,
                )
            )
            return
        index = m.prev_index
        ents = m.entries
        conf_changed = False
        for k, (term, data) in enumerate(ents):
            index += 1
            have = log.term_at(index)
            if have == term:
                continue
            if have is not None:
                assert index > self.commit_index, "truncating a committed entry"
                log.truncate_from(index)
                conf_changed = self._drop_confs_from(index)
                if self.persisted_index >= index:
                    self.persisted_index = index - 1
            for term2, data2 in ents[k:]:
                if self._note_conf(log.append(term2, data2), data2):
                    conf_changed = True
            break
        match = m.prev_index + len(ents)
        if BUG_TRUNCATE_ON_STALE_APPEND in self.config.bugs and log.last_index() > match:
            log.truncate_from(match + 1)
            conf_changed = self._drop_confs_from(match + 1) or conf_changed
            self.persisted_index = min(self.persisted_index, match)
        if conf_changed:
            self._set_conf()
        commit = min(m.commit_index, match)
        if commit > self.commit_index:
            self.commit_index = commit
        after.append(AppendResponse(self.id, m.src, self.current_term, True, match_index=match))

    def _handle_heartbeat(self, m: Heartbeat) -> None:
        if m.commit_index > self.commit_index:
            # The leader caps this at our match index, so these entries are the leader's.
            self.commit_index = min(m.commit_index, self.log.last_index())
        resp = HeartbeatResponse(self.id, m.src, self.current_term, m.read_seq)
        if (self.current_term, self.voted_for) != self._handed_hard_state or self._term_maybe_zero_on_disk:
            self._msgs_after.append(resp)  # a term change rides along (or may): make it durable first
        else:
            self._msgs.append(resp)

    # ------------------------------------------------------------------ replication (leader)

    def _send_append(self, peer: str, pr: Progress) -> None:
        log = self.log
        last = log.last_index()
        cfg = self.config
        if pr.snap_index or pr.next < log.first_index:
            self._send_snapshot(peer, pr)
            return
        since = self._learner_since.get(peer)
        if since is not None and pr.match < since and cfg.learner_snapshot:
            if self.snapshot is None or self.snapshot.index < since:
                self.snapshot_wanted = max(self.snapshot_wanted, since)
                return  # (until then it hears heartbeats only)
            self._send_snapshot(peer, pr)
            return
        while pr.next <= last:
            if pr.probing:
                if pr.probe_sent:
                    return
            elif len(pr.inflight) >= cfg.inflight_max:
                return
            prev = pr.next - 1
            prev_term = log.term_at(prev)
            assert prev_term is not None
            hi = log.span_within(pr.next, min(last, prev + cfg.append_entries_max), cfg.append_entries_bytes_max)
            self._msgs.append(
                AppendEntries(
                    self.id, peer, self.current_term, prev, prev_term,
                    log.entries(pr.next, hi), self.commit_index,
                )
            )
            if pr.probing:
                pr.probe_sent = True
                pr.probe_tick = self.ticks
                return
            pr.inflight.append(hi)
            pr.next = hi + 1

    def _handle_append_response(self, m: AppendResponse) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return  # (no longer in our configuration)
        self.recent_active.add(m.src)
        if pr.snap_index:
            if m.success and m.match_index >= self.log.first_index - 1:
                pr.snap_index = 0  # it caught up from entries after all
                pr.probing, pr.probe_sent = True, False
            else:
                return  # (answers to what we sent before switching to the snapshot)
        if m.success:
            if m.match_index > pr.match:
                pr.match = m.match_index
                if pr.next <= pr.match:
                    pr.next = pr.match + 1
                if pr.probing:
                    pr.probing = False
                    pr.probe_sent = False
                    pr.inflight.clear()
                inflight = pr.inflight
                while inflight and inflight[0] <= pr.match:
                    inflight.popleft()
                self._maybe_commit()
            return  # a stale success answers nothing outstanding: it must not release another probe
        # A rejection. Ignore it if it answers a message we no longer stand behind.
        if pr.probing:
            if m.reject_index != pr.next - 1:
                return
        elif m.reject_index <= pr.match:
            return
        if m.conflict_term is not None:
            last_of_term = self.log.last_index_of_term(m.conflict_term)
            nxt = last_of_term + 1 if last_of_term is not None else m.conflict_index
        else:
            nxt = m.conflict_index
        pr.next = max(pr.match + 1, min(nxt, m.reject_index))
        pr.probing = True
        pr.probe_sent = False
        pr.inflight.clear()

    def _handle_heartbeat_response(self, m: HeartbeatResponse) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return  # a spare or removed node: it only learns who leads
        self.recent_active.add(m.src)
        if pr.snap_index or pr.probing:
            if self.ticks - pr.probe_tick >= self.config.heartbeat_ticks:
                pr.snap_sent = False  # (a lost chunk is sent again from the same offset)
                pr.probe_sent = False  # reachable, but our probe got no answer for a beat: resend
        elif pr.inflight and len(pr.inflight) >= self.config.inflight_max:
            pr.inflight.popleft()  # a full window of lost messages must not wedge replication
        if m.read_seq > self.read_acks.get(m.src, 0):
            self.read_acks[m.src] = m.read_seq
            sent = self._beat_ticks.get(m.read_seq)
            if sent is not None:
                self._acked_ticks[m.src] = sent
            self._confirm_read_rounds()

    def _detect_stalls(self) -> None:
        """A follower that is behind and has not advanced for `stall_beats_max` heartbeat intervals
        lost AppendEntries (a partition drops them silently): resend from its match point."""
        last = self.log.last_index()
        for pr in self.progress.values():
            if pr.match < last and pr.match == pr.match_at_beat and not pr.probing and not pr.snap_index:
                pr.stalled_beats += 1
                if pr.stalled_beats >= STALL_BEATS_MAX:
                    pr.probing = True
                    pr.probe_sent = False
                    pr.inflight.clear()
                    pr.next = pr.match + 1
                    pr.stalled_beats = 0
            else:
                pr.stalled_beats = 0
            pr.match_at_beat = pr.match

    def _broadcast_heartbeat(self) -> None:
        if self.config.lease_reads:
            self.read_seq += 1  # a fresh sequence per beat, so an echo dates the leader's lease
            beats = self._beat_ticks
            beats[self.read_seq] = self.ticks
            if len(beats) > BEATS_TRACKED_MAX:
                for seq in list(beats)[: len(beats) // 2]:
                    del beats[seq]
        for peer in self.peers:
            pr = self.progress[peer]
            commit = min(pr.match, self.commit_index)
            self._msgs.append(Heartbeat(self.id, peer, self.current_term, commit, self.read_seq))
        for peer in self.outsiders:  # so spares and removed nodes know whom to forward clients to
            if peer != self.id:
                self._msgs.append(Heartbeat(self.id, peer, self.current_term, 0, self.read_seq))

    def _maybe_commit(self) -> None:
        progress = self.progress
        counted = self.peers if BUG_LEARNER_COUNTS in self.config.bugs else self.voter_peers
        matches = [progress[p].match for p in counted]
        if self.is_voter:
            matches.append(min(self.persisted_index, self.log.last_index()))
        if len(matches) < self.quorum:
            return
        matches.sort(reverse=True)
        n = matches[self.quorum - 1]
        if n > self.commit_index:
            if self.log.term_at(n) == self.current_term or BUG_COMMIT_OLD_TERM in self.config.bugs:
                self.commit_index = n

    # ------------------------------------------------------------------ snapshots

    def compact(self, meta: SnapshotMeta, reader: SnapshotReader) -> bool:
        """The caller durably stored a snapshot of its state machine at `meta.index` (<= what it
        applied): drop the log entries it covers, and send it to followers that need them. `reader`
        reads its bytes. False (nothing changes) if it is not newer than the snapshot we have."""
        if self.snapshot is not None and meta.index <= self.snapshot.index:
            return False
        if meta.index < self.log.first_index:
            return False  # an installed snapshot overtook it
        assert meta.index <= self.applied_index or BUG_SNAPSHOT_PAST_APPLIED in self.config.bugs, (
            f"snapshot at {meta.index} past the applied index {self.applied_index}")
        assert self.log.term_at(meta.index) == meta.term, (meta, self.log.term_at(meta.index))
        base = self.conf_at(meta.index)
        assert (base.voters, base.learners) == (meta.voters, meta.learners), (base, meta)
        self.log.compact(meta.index)
        if meta.index >= self.snapshot_wanted:
            self.snapshot_wanted = 0
        self._base_conf = base
        self._confs = [c for c in self._confs if c[0] > meta.index]
        self.snapshot = meta
        self._snapshot_reader = reader
        return True

    def _send_snapshot(self, peer: str, pr: Progress) -> None:
        snap = self.snapshot
        assert snap is not None and self._snapshot_reader is not None, "entries compacted without a snapshot"
        if pr.snap_index != snap.index:  # start (or restart with a newer snapshot) from its first byte
            pr.snap_index, pr.snap_offset, pr.snap_sent = snap.index, 0, False
        if pr.snap_sent:
            return
        data = self._snapshot_reader(pr.snap_offset, self.config.snapshot_chunk_bytes_max)
        assert data or not snap.size, "the snapshot reader returned nothing"
        self._msgs.append(InstallSnapshot(self.id, peer, self.current_term, snap.index, snap.term,
                                          snap.voters, snap.size, pr.snap_offset, data, snap.learners))
        pr.snap_sent = True
        pr.probe_tick = self.ticks

    def _handle_snapshot_response(self, m: SnapshotResponse) -> None:
        pr = self.progress.get(m.src)
        if pr is None:
            return
        self.recent_active.add(m.src)
        if m.done:
            if m.last_index > pr.match:
                pr.match = m.last_index
                self._maybe_commit()
            if pr.snap_index and m.last_index >= pr.snap_index:
                pr.snap_index = 0
                pr.next = pr.match + 1
                pr.probing, pr.probe_sent = True, False
                pr.inflight.clear()
            return
        if m.last_index != pr.snap_index or not pr.snap_sent:
            return  # about another snapshot, or a duplicate of an answer already acted on
        pr.snap_offset = min(m.next_offset, self.snapshot.size)
        pr.snap_sent = False

    def _handle_install_snapshot(self, m: InstallSnapshot) -> None:
        inc = self._incoming
        if inc is not None and inc[1] == inc[0].size:
            # A complete snapshot is in this Ready's chunks, waiting for the caller to install or
            # refuse it: nothing may change what it will install. Dropped, as if lost (resent).
            return
        meta = SnapshotMeta(m.last_index, m.last_term, tuple(m.voters), m.size, tuple(m.learners))
        bug = BUG_INSTALL_STALE_SNAPSHOT in self.config.bugs
        if m.last_index <= self.commit_index and not bug:
            # We hold every entry it covers already (committed entries are the leader's).
            self._incoming = None
            self._msgs_after.append(SnapshotResponse(self.id, m.src, self.current_term, m.last_index,
                                                     m.size, True))
            return
        if inc is None or inc[0] != meta or inc[2] != (m.src, m.term):  # (another sender's bytes may differ)
            if m.offset != 0:
                self._msgs.append(SnapshotResponse(self.id, m.src, self.current_term, m.last_index, 0, False))
                return
            inc = (meta, 0, (m.src, m.term))
        if m.offset != inc[1]:  # a lost, duplicated or reordered chunk: say where we are
            self._msgs_after.append(SnapshotResponse(self.id, m.src, self.current_term, m.last_index,
                                                     inc[1], False))
            return
        received = inc[1] + len(m.data)
        self._incoming = (meta, received, inc[2])
        self._chunks.append((meta, m.offset, m.data))
        if received < m.size:
            self._msgs_after.append(SnapshotResponse(self.id, m.src, self.current_term, m.last_index,
                                                     received, False))
        # else: complete; the caller checks it, makes it durable and calls install_snapshot.

    def install_snapshot(self, meta: SnapshotMeta, reader: SnapshotReader) -> bool:
        """The caller holds the complete snapshot `meta` durably (checked). Install it unless it is
        no newer than our commit index: the log restarts after it, commit and applied jump to it.
        True if installed (the caller then restores its state machine from it)."""
        assert self._incoming is not None and self._incoming[0] == meta and self._incoming[1] == meta.size
        self._incoming = None
        leader = self.leader_id
        installed = meta.index > self.commit_index or BUG_INSTALL_STALE_SNAPSHOT in self.config.bugs
        if installed:
            kept = self.log.last_index() >= meta.index and self.log.term_at(meta.index) == meta.term
            self.log.restore(meta.index, meta.term)
            self._base_conf = Membership.of(meta.voters, meta.learners)
            self._confs = [c for c in self._confs if c[0] > meta.index] if kept else []
            self._set_conf()
            self.commit_index = self.applied_index = meta.index
            self.persisted_index = meta.index  # what the log kept after it is handed out again
            self.snapshot = meta
            self._snapshot_reader = reader
        if leader is not None and self.role is Role.FOLLOWER:
            self._msgs_after.append(SnapshotResponse(self.id, leader, self.current_term, meta.index,
                                                     meta.size, True))
        return installed

    def snapshot_refused(self) -> None:
        """The complete snapshot failed the caller's checks: receive it again from the start."""
        assert self._incoming is not None
        meta = self._incoming[0]
        self._incoming = None
        if self.leader_id is not None and self.role is Role.FOLLOWER:
            self._msgs.append(SnapshotResponse(self.id, self.leader_id, self.current_term, meta.index, 0, False))

    # ------------------------------------------------------------------ reads

    def _maybe_start_read_round(self) -> None:
        if not self.pending_reads:
            return
        if self.log.term_at(self.commit_index) != self.current_term:
            return  # until this term's first entry commits, our commit index may be stale
        if not self.voter_peers or self._lease_valid() or BUG_READ_WITHOUT_QUORUM in self.config.bugs:
            self._read_states.extend((c, self.commit_index) for c in self.pending_reads)
            self.pending_reads = []
            return
        self.read_seq += 1
        self.read_rounds.append(_ReadRound(self.read_seq, self.commit_index, self.pending_reads))
        self.pending_reads = []
        self.heartbeat_elapsed = 0
        self._broadcast_heartbeat()

    def _lease_valid(self) -> bool:
        """A quorum of the voters in force acknowledged beats sent at or after tick T; until
        T + election_ticks those voters refuse any other candidate (leader stickiness), minus a
        margin for clock drift.

        Under membership changes: only the configuration in force counts, acknowledgements given
        before it came into force included (a voter's stickiness does not depend on its role). A
        leader elected in the next term needs a quorum of the configuration in force at it, which is
        ours or, while ours is not committed, the one before it (the candidates of older ones lack a
        committed configuration entry that a voter of theirs holds); the two are one voter apart, so
        every quorum of either meets our quorum. Learners never count: a quorum of voters must
        promise (an acknowledgement a voter gave while still a learner counts once it is promoted:
        a node that heard from us refuses votes for an election timeout whatever its role). A
        leader that sent TimeoutNow has no lease for the rest of its term (_maybe_send_timeout_now)."""
        cfg = self.config
        bugs = cfg.bugs
        if not cfg.lease_reads:
            return False
        if (self._transfer is not None or self._lease_forfeit_term == self.current_term) and (
                BUG_LEASE_AFTER_TRANSFER not in bugs):
            return False  # (an heir we sent TimeoutNow to campaigns through our voters' stickiness)
        counted = self.peers if BUG_LEASE_COUNTS_LEARNERS in bugs else self.voter_peers
        need = self.quorum - self.is_voter  # acknowledgements needed besides our own
        if need <= 0 or need > len(counted):
            return need <= 0
        acked = sorted((self._acked_ticks.get(p, -1) for p in counted), reverse=True)
        start = acked[need - 1]  # the quorum's oldest acknowledgement
        length = 2 * cfg.election_ticks if BUG_LEASE_TOO_LONG in bugs else cfg.election_ticks - cfg.lease_margin_ticks
        return start >= 0 and self.ticks < start + length

    def _confirm_read_rounds(self) -> None:
        rounds = self.read_rounds
        quorum = 2 if BUG_READ_ONE_ACK in self.config.bugs else self.quorum
        while rounds:
            rnd = rounds[0]
            acks = self.is_voter + sum(1 for p in self.voter_peers if self.read_acks.get(p, 0) >= rnd.seq)
            if acks < quorum:
                return
            rounds.popleft()
            self._read_states.extend((c, rnd.index) for c in rnd.ctxs)
