"""The in-memory Raft log.

Owns: the sequence of `(term, data)` entries with a first-index offset, and the boundary of what has
already been handed to storage (`unstable_index`). Entries before `first_index` are covered by a
snapshot whose last included entry is (`first_index - 1`, `snapshot_term`); without a snapshot that
is index 0, the empty prefix with term 0. `compact` and `restore` move the offset forward.

Invariants:
- entries occupy indexes `first_index .. last_index()` contiguously; terms never decrease along it,
  starting at or above `snapshot_term`;
- `unstable_index` <= `last_index() + 1`: entries at and after it have not been handed to storage yet;
- truncation only ever happens above the commit index (asserted by the caller, `raft.py`).

May not touch: IO, time, randomness, messages.
"""

from __future__ import annotations

from typing import Any

from .messages import Entry

ENTRY_OVERHEAD_BYTES = 32  # what a codec adds around one entry's data (the node's: `[term,data],`)


class RaftLog:
    __slots__ = ("first_index", "snapshot_term", "_terms", "_datas", "unstable_index")

    def __init__(self, first_index: int = 1, entries: list[Entry] | None = None,
                 snapshot_term: int = 0) -> None:
        assert first_index >= 1
        assert (first_index == 1) == (snapshot_term == 0), (first_index, snapshot_term)
        self.first_index = first_index
        self.snapshot_term = snapshot_term  # term of entry first_index - 1 (in the snapshot)
        # Parallel lists: terms are read far more often than data (matching, voting, commit rule).
        self._terms: list[int] = [t for t, _ in entries] if entries else []
        self._datas: list[Any] = [d for _, d in entries] if entries else []
        for a, b in zip([snapshot_term, *self._terms], self._terms):
            assert a <= b, "terms must not decrease along the log"
        # Entries recovered from storage are stable already.
        self.unstable_index = self.last_index() + 1

    def last_index(self) -> int:
        return self.first_index + len(self._terms) - 1

    def last_term(self) -> int:
        return self._terms[-1] if self._terms else self.snapshot_term

    def term_at(self, index: int) -> int | None:
        """Term of the entry at `index`; 0 for index 0 (the empty prefix), the snapshot's term for its
        last included index; None past the end or before the snapshot (compacted away)."""
        if index == 0:
            return 0
        pos = index - self.first_index
        if pos == -1:
            return self.snapshot_term
        if 0 <= pos < len(self._terms):
            return self._terms[pos]
        return None

    def data_at(self, index: int) -> Any:
        return self._datas[index - self.first_index]

    def entries(self, lo: int, hi: int) -> list[Entry]:
        """Entries with lo <= index <= hi, as (term, data)."""
        a = lo - self.first_index
        b = hi - self.first_index + 1
        assert 0 <= a <= b <= len(self._terms), (lo, hi, self.first_index, len(self._terms))
        return list(zip(self._terms[a:b], self._datas[a:b]))

    def span_within(self, lo: int, hi: int, bytes_max: int) -> int:
        """The largest h in [lo, hi] such that entries lo..h take at most `bytes_max` (the length of
        bytes or str data, other data counting 0, plus ENTRY_OVERHEAD_BYTES each); at least `lo`,
        whatever its size."""
        datas = self._datas
        base = self.first_index
        total = 0
        for i in range(lo - base, hi - base + 1):
            d = datas[i]
            total += ENTRY_OVERHEAD_BYTES + (len(d) if isinstance(d, (bytes, str)) else 0)
            if total > bytes_max:
                return max(lo, i + base - 1)
        return hi

    def append(self, term: int, data: Any) -> int:
        assert (self._terms[-1] if self._terms else self.snapshot_term) <= term
        self._terms.append(term)
        self._datas.append(data)
        return self.last_index()

    def truncate_from(self, index: int) -> None:
        """Drop every entry at `index` and after."""
        assert self.first_index <= index <= self.last_index() + 1
        pos = index - self.first_index
        del self._terms[pos:]
        del self._datas[pos:]
        if self.unstable_index > index:
            self.unstable_index = index

    def first_index_of_term(self, index: int) -> int:
        """The first index of the run of entries that shares the term of the entry at `index`."""
        term = self.term_at(index)
        assert term is not None
        pos = index - self.first_index
        if pos < 0:
            return index  # the snapshot's last index: nothing known before it
        while pos > 0 and self._terms[pos - 1] == term:
            pos -= 1
        return self.first_index + pos

    def last_index_of_term(self, term: int) -> int | None:
        """The last index holding `term`, or None if the log has no entry of that term."""
        terms = self._terms
        pos = len(terms) - 1
        while pos >= 0 and terms[pos] > term:
            pos -= 1
        if pos >= 0 and terms[pos] == term:
            return self.first_index + pos
        if pos < 0 and term == self.snapshot_term and self.first_index > 1:
            return self.first_index - 1
        return None

    def compact(self, index: int) -> None:
        """Drop the entries up to and including `index` (now covered by a snapshot ending there)."""
        assert self.first_index - 1 <= index <= self.last_index(), (index, self.first_index)
        assert index < self.unstable_index, "compacting entries not yet handed to storage"
        self._drop_through(index)

    def restore(self, index: int, term: int) -> None:
        """A snapshot ending at (index, term) was installed: keep the entries after it if our entry
        at `index` has that term (Raft §7: they may be acknowledged), else drop the whole log. What
        is kept is handed to storage again (storage starts afresh after an installed snapshot)."""
        assert index >= self.first_index - 1 and term >= 1
        if index <= self.last_index() and self.term_at(index) == term:
            self._drop_through(index)
        else:
            self._terms = []
            self._datas = []
            self.first_index = index + 1
            self.snapshot_term = term
        self.unstable_index = self.first_index

    def _drop_through(self, index: int) -> None:
        term = self.term_at(index)
        assert term is not None
        k = index - self.first_index + 1
        del self._terms[:k]
        del self._datas[:k]
        self.first_index = index + 1
        self.snapshot_term = term
        if self.unstable_index < self.first_index:
            self.unstable_index = self.first_index

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """§5.4.1: is a log ending at (last_index, last_term) at least as up to date as ours?"""
        mine = self.last_term()
        return last_term > mine or (last_term == mine and last_index >= self.last_index())

    def take_unstable(self) -> tuple[int, list[Entry]]:
        """Hand the entries not yet given to storage: (start index, entries); marks them handed."""
        start = self.unstable_index
        last = self.last_index()
        if start > last:
            return start, []
        ents = self.entries(start, last)
        self.unstable_index = last + 1
        return start, ents
