"""The lin-kv state machine: read, write and compare-and-set on a map, and its result codes.

Owns: the map and the meaning of a log command. Commands are encoded once, by the leader, as compact
JSON bytes (`encode_write`, `encode_cas`, `NOOP`); those bytes are what the log, the wire and the
disk carry, and `apply` decodes them only when the entry is applied.

Invariant: `apply` is deterministic. Every replica computes the same result for the same entry; an
exception while applying (a corrupt or unknown command) leaves the map unchanged and becomes the
same error result everywhere, so replicas never diverge.

May not touch: Raft, IO, the wire envelope.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

log = logging.getLogger(__name__)

# Maelstrom error codes (spec §1.6).
ERR_TIMEOUT = 0
ERR_NOT_SUPPORTED = 10
ERR_TEMPORARILY_UNAVAILABLE = 11
ERR_MALFORMED_REQUEST = 12
ERR_CRASH = 13
ERR_KEY_DOES_NOT_EXIST = 20
ERR_PRECONDITION_FAILED = 22

NOOP = b"null"  # what a new leader appends to commit its term

# A result: (None, value) on success, or (code, text) on a definite failure.
Result = tuple[int | None, Any]


def encode_write(key: int | str, value: Any) -> bytes:
    """`value` (and `frm`, `to`): the JSON bytes as the client sent them (bytes or msgspec.Raw),
    spliced in, never re-encoded."""
    return b'["w",%b,%b]' % (orjson.dumps(key), value)


def encode_cas(key: int | str, frm: Any, to: Any) -> bytes:
    return b'["c",%b,%b,%b]' % (orjson.dumps(key), frm, to)


class KVStore:
    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}

    def read(self, key: Any) -> Result:
        try:
            return None, self.data[key]
        except KeyError:
            return ERR_KEY_DOES_NOT_EXIST, f"key {key!r} does not exist"

    def apply(self, command: bytes) -> Result:
        """Apply one committed log command. Never raises."""
        try:
            if command == NOOP:
                return None, None
            cmd = orjson.loads(command)
            op = cmd[0]
            if op == "w":
                self.data[cmd[1]] = cmd[2]
                return None, None
            if op == "c":
                key, frm, to = cmd[1], cmd[2], cmd[3]
                data = self.data
                if key not in data:
                    return ERR_KEY_DOES_NOT_EXIST, f"key {key!r} does not exist"
                cur = data[key]
                if cur != frm:
                    return ERR_PRECONDITION_FAILED, f"expected {frm!r} but had {cur!r}"
                data[key] = to
                return None, None
            raise ValueError(f"unknown command {op!r}")
        except Exception as exc:  # deterministic: same bytes, same exception, on every replica
            log.error("applying command %r failed: %r", command[:200], exc)
            return ERR_CRASH, f"applying the command failed: {exc}"
