"""The replicated state machine: everything the log's commands build, and what a snapshot holds.

Owns: the sections of replicated state, each with its own serialize/restore pair, by name: "kv"
(the lin-kv map, kv.py) and "sessions" (the client session table, sessions.py); the cluster
configuration becomes a further section (a snapshot is a set of named sections, so adding one
changes no file format).

Invariant: `sections()` and `restore()` are inverse: restoring what sections() produced at applied
index i gives the state every replica has at i. `sections()` only reads (with `--snapshot-fork` it
runs in a forked child while the parent carries on; see runtime/snapshot.py).

Taking a snapshot without stopping the loop (`SnapshotJob`, the default): at the snapshot's index
the map and the session table are frozen as they are (O(1) for the map, O(clients) for the table);
later writes go to an overlay (reads look there first, then in the frozen map; a full overlay
gets a new layer stacked on it, so no pass pays for one big dict's growth) and sessions are
copied before they change. The frozen state is serialized in slices, one per loop pass, each
bounded in items and bytes whatever the state's size, and handed to the writer; then the
overlay is folded back into the map, a bounded number of entries per pass. The configuration is
the header's (immutable tuples). The sections' bytes are exactly `sections()`'s.

May not touch: Raft, IO (the writer does it), the wire.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Iterator

from . import kv, sessions

SLICE_ITEMS_MAX = 512  # map pairs serialized per loop pass (about 0.3 ms here; 1 ms on a loaded machine)
SLICE_BYTES_MAX = 128 << 10  # ... and about this many bytes of them
SLICE_RESULTS_MAX = 1024  # session results serialized per pass
FOLD_ITEMS_MAX = 512  # overlay entries moved back into the map per pass (about 1.5 µs each at 1,000,000 keys)


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


class SnapshotJob:
    """One snapshot being taken in slices (see the module docstring). `writer` takes the parts
    (runtime.snapshot.SnapshotWriter or the simulator's): put(name, part), finish()."""

    def __init__(self, state: StateMachine, writer: Any, slice_items: int = SLICE_ITEMS_MAX,
                 slice_bytes: int = SLICE_BYTES_MAX, slice_results: int = SLICE_RESULTS_MAX,
                 fold_items: int = FOLD_ITEMS_MAX, layer_items: int = kv.LAYER_ITEMS_MAX) -> None:
        store = self._kv = state.kv
        self._sessions = store.sessions
        self.base = store.freeze()  # the map at the snapshot's index (never written while frozen)
        frozen = self._sessions.freeze()
        self._parts: Iterator[tuple[str, bytes]] | None = chain(
            (("kv", p) for p in kv.serialize_parts(self.base, slice_items, slice_bytes)),
            (("sessions", p) for p in sessions.snapshot_parts(frozen, slice_results)))
        self.writer = writer
        self._fold_items = fold_items
        self._layer_items = layer_items

    @property
    def serializing(self) -> bool:
        return self._parts is not None

    def step(self) -> bool:
        """One bounded slice: serialize the next part, or fold part of the overlay back once all
        parts are out. False once nothing is left to do in the loop (the writer may still be
        writing)."""
        self._kv.stack(self._layer_items)
        parts = self._parts
        if parts is None:
            return not self._kv.fold(self._fold_items)
        writer = self.writer
        part = next(parts, None)
        if part is None:
            self.abort()
            writer.finish()
        else:
            writer.put(*part)
        return True

    def abort(self) -> None:
        """No more parts (all out, or the writer failed): the table thaws, folding begins."""
        self._parts = None
        self.base = None
        self._sessions.thaw()
