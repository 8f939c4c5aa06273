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


@dataclass(slots=True)
class VoteResponse:
    src: str
    dest: str
    term: int
    granted: bool
    pre_vote: bool = False


Message = AppendEntries | AppendResponse | Heartbeat | HeartbeatResponse | RequestVote | VoteResponse
