"""Cluster configurations: who votes, who only replicates, and how a configuration is a log entry.

Owns: `Membership` (the voters and the learners of one configuration), its encoding as a log entry
(`encode` / `decode`: the entry data `["cfg",[voters],[learners]]`, JSON bytes, so the node, the WAL
and the wire carry it like any command) and `next_step`, the planner that turns a target voter set
into single-server steps (learner add -> catch up -> promote; remove a learner; remove a voter;
transfer leadership when the leader itself must go).

Single-server changes (Raft dissertation §4.1-§4.2): two configurations one step apart (one voter
added or removed; learners never count) have overlapping majorities, so there is never a time at
which two disjoint majorities can decide. A configuration is in force on a replica as soon as its
entry is in that replica's log (committed or not); a truncated entry takes its configuration with it.
A leader proposes a change only when the configuration in force is committed and it has committed an
entry of its own term (the dissertation's fix), so at most one change is ever in flight.

May not touch: IO, time, randomness, messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

CONF_PREFIX = b'["cfg",'  # what every configuration entry's data starts with (kv.apply skips it)


@dataclass(frozen=True, slots=True)
class Membership:
    voters: tuple[str, ...]  # sorted, unique
    learners: tuple[str, ...] = ()  # sorted, unique, disjoint from voters

    def __post_init__(self) -> None:
        assert self.voters == tuple(sorted(set(self.voters))), self.voters
        assert self.learners == tuple(sorted(set(self.learners))), self.learners
        assert not set(self.voters) & set(self.learners), (self.voters, self.learners)

    @classmethod
    def of(cls, voters: Any, learners: Any = ()) -> "Membership":
        return cls(tuple(sorted(set(voters))), tuple(sorted(set(learners))))

    @property
    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def members(self) -> tuple[str, ...]:
        """Everyone the leader replicates to (and itself)."""
        return tuple(sorted(self.voters + self.learners))

    def encode(self) -> bytes:
        return b'["cfg",%s,%s]' % (json.dumps(list(self.voters)).encode(),
                                  json.dumps(list(self.learners)).encode())


def decode(data: Any) -> Membership | None:
    """The configuration an entry's data holds, or None for any other entry."""
    if not isinstance(data, (bytes, bytearray)) or not data.startswith(CONF_PREFIX):
        return None
    try:
        tag, voters, learners = json.loads(data)
        return Membership.of(voters, learners)
    except (ValueError, TypeError, AssertionError):
        return None  # (never written by a leader of ours; treated as a plain command)


# What the planner asks of the leader: is this learner close enough to be promoted?
CaughtUp = Callable[[str], bool]


def next_step(conf: Membership, target: frozenset[str], leader: str,
              caught_up: CaughtUp) -> Membership | str | None:
    """The next single-server step from `conf` towards voters == `target` and no learners: a new
    Membership to propose, the name of the voter to hand leadership to (the leader is not in the
    target and every other step is done), or None (nothing to do now: done, or a learner catching up).
    Adds come before removals (the cluster never shrinks below what it will be)."""
    voters, learners = set(conf.voters), set(conf.learners)
    for n in sorted(learners - target):
        return Membership.of(voters, learners - {n})
    missing = sorted(target - voters)
    for n in missing:
        if n not in learners:
            return Membership.of(voters, learners | {n})
    for n in missing:
        if caught_up(n):
            return Membership.of(voters | {n}, learners - {n})
    if missing:
        return None  # a learner is still catching up
    for n in sorted(voters - target - {leader}):
        return Membership.of(voters - {n}, learners)
    if leader not in target and leader in voters:
        heirs = sorted(v for v in voters if v != leader)
        ready = [v for v in heirs if caught_up(v)]
        return (ready or heirs)[0] if heirs else None
    return None
