"""The replicated state machine: everything the log's commands build, and what a snapshot holds.

Owns: the sections of replicated state, each with its own serialize/restore pair, by name: "kv"
(the lin-kv map, kv.py) and "sessions" (the client session table, sessions.py); the cluster
configuration becomes a further section (a snapshot is a set of named sections, so adding one
changes no file format).

Invariant: `sections()` and `restore()` are inverse: restoring what sections() produced at applied
index i gives the state every replica has at i. `sections()` only reads (it runs in a forked child
while the parent carries on; see runtime/snapshot.py).

May not touch: Raft, IO, the wire.
"""

from __future__ import annotations

from typing import Iterator

from . import kv, sessions


class StateMachine:
    __slots__ = ("kv",)

    def __init__(self, store: kv.KVStore) -> None:
        self.kv = store

    def sections(self) -> Iterator[tuple[str, bytes]]:
        yield "kv", self.kv.serialize()
        yield "sessions", self.kv.sessions.to_snapshot()

    def restore(self, sections: dict[str, bytes]) -> None:
        """Replace the state with a snapshot's sections; a section missing from it starts empty.
        Raises ValueError (or msgspec's DecodeError) if a section does not parse."""
        self.kv.restore(sections.get("kv", b"[]"))
        table = sections.get("sessions")
        try:
            self.kv.sessions = sessions.SessionTable() if table is None else sessions.SessionTable.from_snapshot(table)
        except (KeyError, TypeError) as exc:  # parsed, but not the table's shape
            raise ValueError(f"malformed sessions section: {exc!r}") from exc
