"""Sans-IO Raft: no clock, no IO, no threads, no global randomness (see raft.py for the contract)."""

from .log import RaftLog
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
)
from .membership import Membership
from .raft import BUGS, Config, Progress, Raft, Ready, Role

__all__ = [
    "AppendEntries", "AppendResponse", "BUGS", "Config", "Entry", "Heartbeat", "HeartbeatResponse",
    "InstallSnapshot", "Message", "Progress", "ProtocolError", "Raft", "RaftLog", "Ready", "RequestVote", "Role", "SnapshotMeta",
    "SnapshotResponse", "TimeoutNow", "VoteResponse", "Membership",
]
