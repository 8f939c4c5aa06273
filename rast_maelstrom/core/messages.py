"""Raft messages exchanged between cores.

Owns: the typed, immutable-by-convention message records the core consumes (`Raft.step`) and emits
(`Ready.messages`, `Ready.messages_after_persist`). Entries inside messages are `(term, data)` tuples;
`data` is opaque to the core (the node decides its encoding, and may keep it encoded).

May not touch: any IO, encoding or clock. Translating these records to and from the wire is the glue's
job (`rast_maelstrom.node`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Entry = tuple[int, Any]  # (term, data)


@dataclass(slots=True)
class AppendEntries:
    """Leader -> follower: replicate `entries` after (prev_index, prev_term)."""

    src: str
    dest: str
    term: int
    prev_index: int
    prev_term: int
    entries: list[Entry]
    commit_index: int


@dataclass(slots=True)
class AppendResponse:
    """Follower -> leader. On success `match_index` is the last index this exchange verified.

    On rejection, `reject_index` is the rejected `prev_index` (lets the leader drop stale rejections),
    and (`conflict_index`, `conflict_term`) is the fast-backtracking hint: the follower's first index of
    its term at `prev_index`, or its last index + 1 with term None when its log is too short.
    """

    src: str
    dest: str
    term: int
    success: bool
    match_index: int = 0
    reject_index: int = 0
    conflict_index: int = 0
    conflict_term: int | None = None


@dataclass(slots=True)
class Heartbeat:
    """Leader -> follower: keep leadership, carry commit (capped at the follower's match), and a read
    sequence number that the follower echoes, so a quorum of echoes confirms a ReadIndex round."""

    src: str
    dest: str
    term: int
    commit_index: int
    read_seq: int


@dataclass(slots=True)
class HeartbeatResponse:
    src: str
    dest: str
    term: int
    read_seq: int


@dataclass(slots=True)
class RequestVote:
    """Candidate -> voter. With `pre_vote`, `term` is the term the sender *would* campaign in; nobody's
    state changes until a quorum says it could win (pre-vote, Raft thesis §9.6)."""

    src: str
    dest: str
    term: int
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False  # sent after TimeoutNow: voters set leader stickiness aside for it


@dataclass(slots=True)
class VoteResponse:
    src: str
    dest: str
    term: int
    granted: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """A snapshot as the core knows it: its last included entry (`index`, `term`), the configuration
    in force at that index (`voters`, `learners`) and the size in bytes of its opaque body (what the
    node stores and the leader sends in chunks)."""

    index: int
    term: int
    voters: tuple[str, ...]
    size: int
    learners: tuple[str, ...] = ()


@dataclass(slots=True)
class InstallSnapshot:
    """Leader -> follower: bytes `offset .. offset + len(data)` of the snapshot ending at
    (`last_index`, `last_term`), `size` bytes in all. One chunk in flight per follower."""

    src: str
    dest: str
    term: int
    last_index: int
    last_term: int
    voters: tuple[str, ...]
    size: int
    offset: int
    data: bytes
    learners: tuple[str, ...] = ()


@dataclass(slots=True)
class SnapshotResponse:
    """Follower -> leader, for the snapshot ending at `last_index`: send from `next_offset` on; with
    `done`, the follower holds (durably) every entry through `last_index`."""

    src: str
    dest: str
    term: int
    last_index: int
    next_offset: int
    done: bool


@dataclass(slots=True)
class TimeoutNow:
    """Leader -> the voter it hands leadership to (which holds its whole log): campaign now."""

    src: str
    dest: str
    term: int


Message = (AppendEntries | AppendResponse | Heartbeat | HeartbeatResponse | RequestVote | VoteResponse
           | InstallSnapshot | SnapshotResponse | TimeoutNow)


class ProtocolError(Exception):
    """A remote peer's message breaks Raft's own rules (a remote error, never a local invariant):
    `Raft.step` raises it before changing any state, and the caller drops the message."""


INDEX_MAX = (1 << 63) - 1  # terms and indexes are signed 64-bit on every wire and disk we use


def _out_of_range(*values: int) -> bool:
    return any(not 0 <= v <= INDEX_MAX for v in values)


def check_message(m: Message) -> str | None:
    """The rules a message must obey whatever the receiver's state: what is wrong with `m`, or
    None. Terms and indexes lie in [0, INDEX_MAX]; a leader's or candidate's term is at least 1;
    index 0 (the empty prefix) and only index 0 has term 0; the entries of an AppendEntries have
    terms in [max(1, prev_term), term], never decreasing along the batch."""
    t = type(m)
    if t is AppendEntries:
        term, pt = m.term, m.prev_term
        if _out_of_range(term, m.prev_index, pt, m.commit_index):
            return "a term or index out of range"
        if term < 1:
            return "term 0 (no leader has term 0)"
        if pt > term:
            return f"prev_term {pt} above the message term {term}"
        if (m.prev_index == 0) != (pt == 0):
            return f"prev_index {m.prev_index} with prev_term {pt} (only index 0 has term 0)"
        if m.prev_index + len(m.entries) > INDEX_MAX:
            return "entries run past the largest index"
        if not m.entries:
            return None
        terms = [et for et, _ in m.entries]
        low = max(1, pt)
        if terms[0] >= low and terms[-1] <= term and terms == sorted(terms):
            return None  # (the fast path; below, the first offending entry is named)
        for k, et in enumerate(terms):
            if et > term:
                return f"entry {m.prev_index + k + 1} has term {et} above the message term {term}"
            if et < low:
                why = "below the previous entry's" if k else "below prev_term"
                return f"entry {m.prev_index + k + 1} has term {et} {why} ({low})"
            low = et
        return None
    if t is AppendResponse:
        if _out_of_range(m.term, m.match_index, m.reject_index, m.conflict_index):
            return "a term or index out of range"
        if not m.success:
            if m.conflict_index < 1 or m.conflict_index > max(1, m.reject_index):
                return f"conflict_index {m.conflict_index} outside [1, reject_index {m.reject_index}]"
            ct = m.conflict_term
            if ct is not None and (type(ct) is not int or not 1 <= ct <= m.term):
                return f"conflict_term {ct!r} outside [1, the message term {m.term}]"
        return None
    if t is Heartbeat:
        if _out_of_range(m.term, m.commit_index, m.read_seq):
            return "a term or index out of range"
        return "term 0 (no leader has term 0)" if m.term < 1 else None
    if t is HeartbeatResponse:
        return "a term or index out of range" if _out_of_range(m.term, m.read_seq) else None
    if t is RequestVote:
        if _out_of_range(m.term, m.last_log_index, m.last_log_term):
            return "a term or index out of range"
        if m.term < 1:
            return "term 0 (no candidate campaigns in term 0)"
        if m.last_log_term > m.term:
            return f"last_log_term {m.last_log_term} above the message term {m.term}"
        if (m.last_log_index == 0) != (m.last_log_term == 0):
            return f"last_log_index {m.last_log_index} with last_log_term {m.last_log_term}"
        return None
    if t is VoteResponse:
        return "a term out of range" if _out_of_range(m.term) else None
    if t is InstallSnapshot:
        if _out_of_range(m.term, m.last_index, m.last_term, m.size, m.offset):
            return "a term, index or offset out of range"
        if m.term < 1:
            return "term 0 (no leader has term 0)"
        if not 1 <= m.last_term <= m.term or m.last_index < 1:
            return f"snapshot ending at {m.last_index}/{m.last_term} (message term {m.term})"
        if m.offset + len(m.data) > m.size or (not m.data and m.size):
            return f"chunk {m.offset}+{len(m.data)} outside a {m.size} byte snapshot"
        if not m.voters or len(set(m.voters)) != len(m.voters):
            return "a snapshot without a voter list"
        if len(set(m.learners)) != len(m.learners) or set(m.learners) & set(m.voters):
            return "a snapshot whose learners repeat or are voters too"
        return None
    if t is SnapshotResponse:
        if _out_of_range(m.term, m.last_index, m.next_offset):
            return "a term, index or offset out of range"
        return None
    if t is TimeoutNow:
        if _out_of_range(m.term):
            return "a term out of range"
        return "term 0 (no leader has term 0)" if m.term < 1 else None
    return f"not a Raft message: {t.__name__}"
