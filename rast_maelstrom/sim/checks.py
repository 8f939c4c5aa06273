"""Raft safety invariants, checked incrementally while the simulator runs (O(new entries) per step).

Owns: the global record of what every node ever held, committed, applied and acknowledged, and the
checks over it. Each check raises `Violation(invariant, text)`; the simulator adds the replay command.

The invariants (Raft paper §5.2-§5.4, Figure 3):
- election safety: at most one leader per term, across the whole run (crashes included);
- log matching: an entry is identified by (index, term); two logs holding the same (index, term)
  hold the same data there and the same term just before it (so, by induction, the same prefix);
- leader completeness: an entry first seen committed by a node in term c is in the log of every
  leader of a term > c (checked on the last such index; log matching covers the prefix);
- state machine safety: no two nodes commit or apply different (term, data) at one index, and each
  node applies indexes in order without gaps;
- commit monotonicity: a node's commit index never goes backwards while it runs, and its log always
  holds the entry at its commit index (a committed entry is never cut from a log);
- no acknowledged write lost: an entry a client was answered for stays decided at its index, and in
  the end every node that committed past it holds it.
- snapshot safety: a snapshot labelled with index i (taken, installed or loaded at a restart) holds
  exactly the state of applying the decided entries 1..i; across a snapshot boundary the checks
  above look only at what a compacted log still holds (its boundary term must agree with the
  decided entry there).
- configurations in log order: the configuration in force at a node is always the one of the last
  configuration entry in its log (decoded here from the entries it handed to storage), or its
  snapshot's; an entry cut from the log takes its configuration with it. (That committed entries
  survive every election any configuration could still hold is checked by the simulator, which
  sees the nodes' disks: `Simulation._check_electable`.)
- lease read freshness: a read a leader serves without a heartbeat round (from its lease) is at an
  index no lower than the highest index any node knew committed at that moment: a lease that
  outlived the leader's term (another leader elected and committing) shows up here even when the
  read's client could not tell (the read began before the new leader's write, so the history alone
  stays linearizable). Lease reads are client reads too: the linearizability check covers them.
- exactly once: a client request (its `src` and `msg_id`, carried in the command) is executed by
  the state machine at one log index only, on every node and incarnation; any other copy of it in
  the log is answered from the session table (a node replaying its log executes it at the same index).

May not touch: nodes' state (read only), the network, the clock.
"""

from __future__ import annotations

from typing import Any

from .. import kv
from ..core import Role, membership


class Violation(Exception):
    def __init__(self, invariant: str, text: str) -> None:
        super().__init__(f"{invariant}: {text}")
        self.invariant = invariant
        self.text = text


class Invariants:
    def __init__(self) -> None:
        self.leaders: dict[int, str] = {}  # term -> the one node that led it
        self.entries: dict[tuple[int, int], tuple[Any, int, str]] = {}  # (i, t) -> (data, prev term, who)
        self.decided: dict[int, tuple[int, Any, str]] = {}  # index -> (term, data, first node to commit)
        self.decided_max = 0
        self.commit_term_max_index: dict[int, int] = {}  # term c -> highest index first committed in c
        self._lc_cache: tuple[int, int, int] = (-1, -1, 0)  # (leader term, version, index)
        self._lc_version = 0
        self.acked: dict[int, tuple[int, str]] = {}  # index -> (term, node that answered)
        self.effects: dict[tuple[str, int], tuple[int, str]] = {}  # request -> (index, first node)
        self.checks = 0
        self._ref = kv.KVStore()  # the decided entries 1.._ref_index applied (snapshot safety)
        self._ref_index = 0
        self._ref_states: dict[int, dict] = {0: {}}  # index -> the state after applying through it
        self._snap_checks: list[tuple[str, int, dict]] = []  # (who, index, state) not yet decidable
        self.snapshots_checked = 0
        self.installs = 0  # snapshots installed from a leader (counted by the simulator's node)
        self.lease_reads = 0  # reads served without a round while the leader had peers to ask
        self.overlay_snapshots = 0  # snapshots serialized while writes went to the overlay
        self.confs: dict[str, list[tuple[int, Any]]] = {}  # node -> its config entries (index order)

    # ------------------------------------------------------------------ hooks from the node

    def on_entries(self, node_id: str, raft: Any, start: int, entries: list) -> None:
        """Entries handed to storage (new or replacing a suffix): log matching."""
        known = self.entries
        prev = raft.log.term_at(start - 1)
        index = start
        confs = self.confs.setdefault(node_id, [])
        while confs and confs[-1][0] >= start:
            confs.pop()
        for k, (_, data) in enumerate(entries):
            conf = membership.decode(data)
            if conf is not None:
                confs.append((start + k, conf))
        for term, data in entries:
            key = (index, term)
            seen = known.get(key)
            if seen is None:
                known[key] = (data, prev, node_id)
            elif seen[0] != data or seen[1] != prev:
                what = "data" if seen[0] != data else f"previous term ({seen[1]} vs {prev})"
                raise Violation(
                    "log matching",
                    f"{node_id} holds entry {index} of term {term} with a different {what} than "
                    f"{seen[2]} had: {data!r} vs {seen[0]!r}",
                )
            prev = term
            index += 1

    def conf_reset(self, node_id: str, raft: Any) -> None:
        """A node (re)started or installed a snapshot: its configuration entries from its log."""
        base = raft.log.first_index - 1
        confs = [(base, raft.conf_at(base))]
        for k, (_, data) in enumerate(raft.log.entries(base + 1, raft.log.last_index())):
            conf = membership.decode(data)
            if conf is not None:
                confs.append((base + 1 + k, conf))
        self.confs[node_id] = confs

    def on_apply(self, node: Any, committed: list, applied_before: int) -> int:
        """A node applies `committed`: order, state machine safety, and which entries get answered.
        Returns the node's new applied index."""
        raft = node.raft
        pending = node.pending
        nid = node.node_id
        expect = applied_before + 1
        for index, term, data in committed:
            if index != expect:
                raise Violation("state machine safety", f"{nid} applied {index} after {expect - 1}")
            expect += 1
            self.note_committed(nid, index, term, data, raft.current_term)
            p = pending.get(index) if pending else None
            if p is not None and p[0] == term:
                self.acked[index] = (term, nid)
        return expect - 1

    def on_effect(self, nid: str, index: int, src: str, msg_id: int) -> None:
        """The state machine of `nid` executed the request (src, msg_id) at `index`: exactly once."""
        seen = self.effects.setdefault((src, msg_id), (index, nid))
        if seen[0] != index:
            raise Violation(
                "exactly once",
                f"{nid} executed request {msg_id} of client {src} at index {index}, "
                f"but {seen[1]} had executed it at index {seen[0]}: it took effect twice",
            )

    def on_read_without_round(self, nid: str, raft: Any, index: int, n: int) -> None:
        """`nid` (leader) serves `n` reads at read index `index` or above, with no round: lease freshness."""
        if raft.voter_peers:
            self.lease_reads += n
        if index < self.decided_max:
            d = self.decided_max
            term, _, who = self.decided[d]
            raise Violation("lease read freshness",
                            f"{nid}, leader of term {raft.current_term}, served a read at index {index} "
                            f"without a round, but entry {d} (term {term}) was already committed "
                            f"(first seen by {who}): its lease outlived its leadership")

    # ------------------------------------------------------------------ per step

    def check_snapshot(self, who: str, index: int, state: dict) -> None:
        """A snapshot labelled `index` holds `state` (the kv map)."""
        self._snap_checks.append((who, index, state))
        self._advance_ref()

    def _advance_ref(self) -> None:
        decided = self.decided
        while self._ref_index + 1 in decided:
            self._ref_index += 1
            self._ref.apply(decided[self._ref_index][1])
            self._ref_states[self._ref_index] = dict(self._ref.data)
        if not self._snap_checks:
            return
        rest = []
        for who, index, state in self._snap_checks:
            if index > self._ref_index:
                rest.append((who, index, state))
                continue
            self.snapshots_checked += 1
            want = self._ref_states[index]
            if state != want:
                diff = sorted({repr(k) for k in want.keys() | state.keys() if want.get(k) != state.get(k)})
                raise Violation("snapshot safety", f"{who}: the snapshot through {index} differs from the "
                                f"decided entries 1..{index} at keys {', '.join(diff[:5])}: "
                                f"{ {k: state.get(k) for k in list(want)[:3]} } vs {want}")
        self._snap_checks = rest

    def note_committed(self, nid: str, index: int, term: int, data: Any, current_term: int) -> None:
        d = self.decided.get(index)
        if d is None:
            self.decided[index] = (term, data, nid)
            if index == self._ref_index + 1:
                self._advance_ref()
            if index > self.decided_max:
                self.decided_max = index
            m = self.commit_term_max_index.get(current_term, 0)
            if index > m:
                self.commit_term_max_index[current_term] = index
                self._lc_version += 1
        elif d[0] != term or d[1] != data:
            ack = self.acked.get(index)
            lost = f" (a client had been answered for the term-{ack[0]} entry by {ack[1]})" if ack else ""
            raise Violation(
                "state machine safety" if not ack else "no acknowledged write lost",
                f"{nid} commits entry {index} as term {term} {data!r}, but {d[2]} committed it as "
                f"term {d[0]} {d[1]!r}{lost}",
            )

    def after_step(self, nid: str, raft: Any, commit_seen: int) -> int:
        """Checks on one node after it handled an event. Returns its new commit index."""
        self.checks += 1
        log = raft.log
        term = raft.current_term
        confs = self.confs.get(nid)
        if confs:
            last = log.last_index()
            want = next((c for i, c in reversed(confs) if i <= last), None)
            if want is not None and want != raft.conf:
                raise Violation("configuration order", f"{nid} has {raft.conf} in force, but the last "
                                f"configuration entry in its log (through {last}) is {want}")
        if raft.role is Role.LEADER:
            other = self.leaders.setdefault(term, nid)
            if other != nid:
                raise Violation("election safety", f"{nid} and {other} both led term {term}")
            idx = self._required_index(term)
            if idx and idx >= log.first_index - 1:  # (what a snapshot covers is checked apart)
                want = self.decided[idx][0]
                have = log.term_at(idx)
                if have != want:
                    raise Violation(
                        "leader completeness",
                        f"{nid}, leader of term {term}, lacks committed entry {idx} of term {want} "
                        f"(its log has {'nothing' if have is None else f'term {have}'} there; last "
                        f"index {log.last_index()})",
                    )
        c = raft.commit_index
        if c != commit_seen:
            if c < commit_seen:
                raise Violation("commit monotonicity", f"{nid} commit index went from {commit_seen} to {c}")
            base = log.first_index - 1
            for i in range(max(commit_seen + 1, base), c + 1):
                t = log.term_at(i)
                if i == base:  # the snapshot's last entry: only its term is left to compare
                    d = self.decided.get(i)
                    if d is not None and d[0] != t:
                        raise Violation("state machine safety", f"{nid} holds a snapshot through {i} of term "
                                        f"{t}, but entry {i} was decided with term {d[0]}")
                    continue
                if t is None:
                    raise Violation(
                        "commit monotonicity",
                        f"{nid} commit index {c} is beyond its log (last index {log.last_index()})",
                    )
                self.note_committed(nid, i, t, log.data_at(i), term)
        elif c and c in self.decided:
            t = log.term_at(c)
            want = self.decided[c][0]
            if t != want:
                raise Violation(
                    "commit monotonicity",
                    f"{nid} lost committed entry {c} of term {want} from its log "
                    f"({'nothing' if t is None else f'term {t}'} there now, last index {log.last_index()})",
                )
        return c

    def _required_index(self, leader_term: int) -> int:
        """The highest index first committed in a term below `leader_term`."""
        t, v, idx = self._lc_cache
        if t == leader_term and v == self._lc_version:
            return idx
        idx = 0
        for c, i in self.commit_term_max_index.items():
            if c < leader_term and i > idx:
                idx = i
        self._lc_cache = (leader_term, self._lc_version, idx)
        return idx

    # ------------------------------------------------------------------ end of run

    def final(self, rafts: dict[str, Any]) -> None:
        """Every answered entry is held by every node that committed past it."""
        for index, (term, who) in sorted(self.acked.items()):
            for nid, raft in rafts.items():
                if index < raft.log.first_index - 1:
                    continue  # in its snapshot (snapshot safety checked what that holds)
                if raft.commit_index >= index and raft.log.term_at(index) != term:
                    raise Violation(
                        "no acknowledged write lost",
                        f"entry {index} (term {term}) was answered by {who}, but {nid} committed past it "
                        f"with term {raft.log.term_at(index)} there",
                    )
