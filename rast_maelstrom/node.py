"""The Rast node: glue between Maelstrom's stdin/stdout, the sans-IO Raft core, the key-value state
machine and the write-ahead log. The only module that sees core, wire and runtime together.

Each event-loop pass: read everything readable on stdin and step it; collect durable WAL batches;
tick; then at the end of the pass take one `Ready` from the core and turn it into one WAL
submission, the messages to send now, the messages released by earlier durable batches, applied
commands and answered clients — all written to stdout in one write.

Client semantics (spec §1.5, §1.6, §5.6):
- write/cas go through the log; the proposing leader answers once the entry is committed and
  applied (cas failures 20/22 are definite, decided at apply time). If a different entry is applied
  at that index, ours can never commit: 11, definite.
- reads do not touch the log: a ReadIndex round (one heartbeat quorum for every read pending in the
  pass), then served once applied up to the read index.
- a follower forwards a request to the leader it knows, keeping the client as `src`, so the leader
  answers the client directly; with no known leader, 11 (nothing happened). A write or cas carries
  the client's identity into the log; the session table applies it once however many copies get
  there (`sessions.py`), so the node that first forwarded it re-sends it on a leadership change or
  when nothing was applied within a bound (`forwards.py`), and an old leader whose entry was
  superseded hands it on instead of refusing it. A request that was forwarded once is never
  refused definitely by a later node (its first node may still be retrying it): it is dropped.
- bad input: non-JSON or envelope errors are logged and dropped (there is nobody to answer);
  a request with missing, mistyped or out-of-range fields gets 12, an unknown request type 10. A
  peer message that does not fit the schema or breaks Raft's rules (`core.ProtocolError`) is dropped
  with one stderr line and counted in `peer_drops`. Any other exception while handling one message
  is logged and dropped (13 to a client), and the node carries on; an AssertionError (a broken
  invariant of our own) stops the node.

Durability: no acknowledgement, vote or client reply leaves before the state it depends on is
durable (the core marks those messages; they leave once their WAL batch and every earlier one are
fsynced: in production the WAL thread writes them right after that fsync, under the stdout lock the
loop writes with too; with an injected writer without `sends_after`, this module releases them when
the writer reports the batch durable).

Disk trouble stops the node with one CRITICAL stderr line and a documented exit status (README,
"A damaged or failing disk"): `EXIT_DAMAGED` when the data directory holds a damaged file at start
(it is left untouched), `EXIT_DISK_FAILED` when a write or fsync fails (at start or later; nothing
that depended on it was sent), `EXIT_DATA_DIR_UNUSABLE` for a directory that is locked by another
node or holds files that are not ours. After such a stop the node writes nothing more.

May not touch: Raft rules (core), wire framing details (wire), fd/timer mechanics (runtime).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import heapq
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Union

import msgspec

from . import __version__, forwards, kv, sessions
from .core import (
    BUGS as CORE_BUGS,
    AppendEntries,
    AppendResponse,
    Config,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ProtocolError,
    Raft,
    RequestVote,
    Role,
    SnapshotMeta,
    SnapshotResponse,
    TimeoutNow,
    VoteResponse,
)
from .core.raft import BUG_LEASE_STALE_CLOCK, BUG_SNAPSHOT_PAST_APPLIED
from .runtime.loop import EventLoop
from .runtime.fileio import REAL, DiskFault, FaultyFileIO, FileIO
from .runtime.records import DamagedFile
from .runtime.snapshot import SnapshotStore
from .runtime.wal import Recovered, WalError, WalWriter, WalWriterError, WriteAheadLog
from .state import SnapshotJob, StateMachine
from .wire import schema
from .wire.codec import LINE_BYTES_MAX, LineSplitter, MalformedMessage, diagnose, encode, encode_body, name_json

log = logging.getLogger("rast")

# Per os.read. Below glibc's mmap threshold (128 KiB) on purpose: a larger read buffer is mmapped
# for every call, faulted in, shrunk with mremap and unmapped (with a TLB shootdown across the
# threads' CPUs), about 30 us per read here; a pipe hands over at most its 64 KiB per read anyway.
READ_BYTES_MAX = 1 << 16
READS_PER_PASS_MAX = 64  # os.read calls per pass before yielding to timers and output
PRE_INIT_BUFFER_MAX = 100_000  # lines buffered before init arrives
PRE_INIT_BUFFER_BYTES_MAX = 64 << 20  # ... and their bytes
PENDING_MAX = 200_000  # client writes awaiting commit; beyond it, new ones get 11
READS_PENDING_MAX = 100_000  # reads awaiting a ReadIndex round or apply; beyond it, new ones get 11
PENDING_AGE_MAX_S = 60.0  # a pending write older than this is forgotten (its client gave up long ago)
LEADER_CATCHUP_TICKS_MAX = 10_000  # a leader's clock must not fall behind (leases, check-quorum)
FOLLOWER_CATCHUP_TICKS_MAX = 2  # a follower's stall must not look like a silent leader
STALL_LOG_TICKS = 10  # a clock this many ticks behind is logged at INFO (the loop or process stalled)
FORWARD_HOPS_MAX = 3  # a request forwarded this often without reaching a leader gets 11
RECONF_WAITERS_MAX = 64  # reconfigure requests a node waits on (beyond: 11)
RECONF_AGE_MAX_S = 60.0  # ... for at most this long (a learner that never catches up, no leader)
# Every line the node writes must fit under a receiver's LINE_BYTES_MAX. An AppendEntries carries at
# most APPEND_ENTRIES_BYTES_MAX of entries (or one larger entry); a command is at most
# ENTRY_BYTES_MAX, leaving room for the envelope (names are at most schema.NAME_CHARS_MAX).
APPEND_ENTRIES_BYTES_MAX = 1 << 20
ENTRY_BYTES_MAX = LINE_BYTES_MAX - (64 << 10)
# An InstallSnapshot carries this many bytes of the snapshot file (base64 on the wire: 4/3 of it).
SNAPSHOT_CHUNK_BYTES_MAX = 512 << 10

EXIT_DAMAGED = 65  # sysexits EX_DATAERR: a file in the data directory is damaged (left untouched)
EXIT_DISK_FAILED = 70  # a WAL write or fsync failed: what is durable is unknown until a restart
EXIT_DATA_DIR_UNUSABLE = 78  # sysexits EX_CONFIG: directory locked by another node, or not ours


class Node:
    def __init__(
        self,
        args: argparse.Namespace,
        write_out: Callable[[bytes], None],
        loop: EventLoop,
        open_storage: Callable[[str, bool], tuple[Recovered, Any]] | None = None,
    ) -> None:
        """`loop` needs clock(), call_at(), call_later(), add_reader(); `open_storage(dir, fsync)`
        returns (Recovered, writer) where the writer behaves like WalWriter (submit, drain_wake,
        error, wake_fd, close). The simulator injects both; production uses the real ones."""
        self.args = args
        self._open = open_storage or _open_wal
        self.write_out = write_out
        self.loop = loop
        self.out: list[bytes] = []
        self.node_id: str | None = None
        self.node_ids: list[str] = []
        self.members: list[str] | None = None  # init's voters at start (extension; None: everyone)
        # reconfigure requests waiting for their configuration: (client, msg_id, voters, arrived s)
        self._reconf: list[tuple[str, int, tuple[str, ...], float]] = []
        self.raft: Raft | None = None
        self.kv = kv.KVStore(dedup=sessions.BUG_NO_DEDUP not in getattr(args, "bugs", ()))
        self.state = StateMachine(self.kv)  # what snapshots hold (the kv map is its "kv" section)
        self.snapshots: Any = None  # SnapshotStore-like (the storage's)
        self.snapshots_taken = 0
        self.snapshots_installed = 0
        self._snapshot_fd: int | None = None  # a snapshot being taken: the fd the loop watches
        self._snapshot_job: SnapshotJob | None = None  # ... its slices and fold, while any are left
        self._snapshot_timer: Any = None  # a pass due for the job's next slice
        self.snapshot_pass_s = 0.0  # how soon that pass is due (the simulator spaces slices out)
        self.snapshot_slices: dict[str, int] = {}  # SnapshotJob's slice bounds (default: its own)
        self._since_snapshot_bytes = 0  # bytes of commands applied since the last snapshot began
        # The last snapshot's keys and file size: the next waits for at least as many entries and
        # bytes of commands, so serializing costs O(1) per entry however large the state is.
        self._snapshot_keys = self._snapshot_size = 0
        self._snapshot_failures = 0
        self.forwards = forwards.Forwards()  # writes/cas this node forwarded, until applied
        self._fwd_leader: Any = None  # the leader the forwards were last checked against
        self._fwd_timer: Any = None
        self._fwd_applied = 0  # applied index at the last overdue check (progress: no re-sends)
        self.writer: Any = None  # WalWriter-like (see __init__)
        self.data_dir: str | None = None
        self.pre_init: list[bytes] = []
        self.pre_init_bytes = 0
        self.peer_drops = 0  # peer messages dropped as malformed or against Raft's rules
        self._reads_in_core = 0  # reads handed to raft.read_index and not yet confirmed or dropped
        # WAL batches submitted and not yet durable: (batch id, last index, last term, msgs after).
        self.batches: deque[tuple[int, int, int, list[Message]]] = deque()
        # index -> (term, client, msg_id, created_s, command) for writes/cas this node proposed.
        self.pending: dict[int, tuple[int, str, int, float, bytes]] = {}
        self.reads_waiting: list[tuple[int, int, tuple[str, int, Any]]] = []  # heap by read index
        self._read_seq = 0
        self.tick_s = args.tick_ms / 1000.0
        self.lease_reads = bool(getattr(args, "lease_reads", True))
        self._next_tick = 0.0  # the time of the first tick not yet counted
        self._tick_due = 0.0  # ... and of the tick the timer wakes at (later when sleeping through)
        self._tick_timer = None
        self._tick_gen = 0
        self.lazy_ticks = bool(getattr(args, "lazy_ticks", True))
        self._thread_sends = False  # the writer sends what waits on a batch (see _WalStorage)
        self._role_seen: Role | None = None  # the role the last pass ended in (logged on change)
        self.stopped = False
        self._handlers = {
            schema.Read: self._on_read,
            schema.Write: self._on_write,
            schema.Cas: self._on_cas,
            schema.Members: self._on_members,
            schema.Reconfigure: self._on_reconfigure,
            schema.TN: self._on_raft,
            schema.AE: self._on_raft,
            schema.AER: self._on_raft,
            schema.HB: self._on_raft,
            schema.HBR: self._on_raft,
            schema.RV: self._on_raft,
            schema.RVR: self._on_raft,
            schema.IS: self._on_raft,
            schema.ISR: self._on_raft,
            schema.Init: self._on_init,
        }

    # ------------------------------------------------------------------ input

    def on_line(self, line: bytes) -> None:
        """One input line: the typed fast path; anything that does not fit goes to `_on_bad_line`."""
        try:
            env = schema.decode_envelope(line)
        except schema.DecodeError:
            self._on_bad_line(line)
            return
        body = env.body
        if self.node_id is None and type(body) is not schema.Init:
            if len(self.pre_init) < PRE_INIT_BUFFER_MAX and self.pre_init_bytes + len(line) <= PRE_INIT_BUFFER_BYTES_MAX:
                self.pre_init.append(line)
                self.pre_init_bytes += len(line)
            else:
                log.warning("dropping a message from %s before init: buffer full", env.src)
            return
        try:
            self._handlers[type(body)](env.src, body)
        except ProtocolError as exc:  # a peer broke Raft's rules; the core changed nothing
            self._drop_peer(env.src, type(body).__name__.lower(), str(exc))
        except AssertionError:
            raise  # our own invariant broke: stop loudly
        except Exception as exc:
            if isinstance(exc, ValueError) and type(body) not in schema.RAFT_BODIES:
                # a request the handler refused before acting (a value too deep, init naming itself twice)
                log.warning("invalid request from %s (%s): %.200r", env.src, exc, line)
                self._error_reply(env.src, body.msg_id, kv.ERR_MALFORMED_REQUEST, str(exc))
            elif type(body) is schema.Init:
                raise  # storage that cannot be opened stops the node (it must not run without it)
            else:
                self._drop_unexpected(env.src, body, exc)

    def _drop_unexpected(self, src: str, body: Any, exc: Exception) -> None:
        """One message must not take the node down: log where it failed, answer a client 13."""
        tb = exc.__traceback__
        while tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
        log.error("dropping a %s from %s after an unexpected %s at %s: %s",
                  type(body).__name__.lower(), src, type(exc).__name__, where, exc)
        if type(body) in schema.CLIENT_BODIES:
            self._error_reply(src, body.msg_id, kv.ERR_CRASH, f"unexpected {type(exc).__name__}")

    def _on_bad_line(self, line: bytes) -> None:
        """Say precisely what is wrong with a line, and answer its sender when there is one."""
        if not line.strip():
            return
        try:
            src, dest, body = diagnose(line)
        except MalformedMessage as exc:
            log.warning("dropping malformed line (%s): %.200r", exc, line)
            if exc.body is not None and exc.src is not None:
                self._error_reply(exc.src, exc.body.get("msg_id"), kv.ERR_MALFORMED_REQUEST, str(exc))
            return
        typ = body["type"]
        msg_id = body.get("msg_id")
        if typ not in schema.TYPE_NAMES:
            if msg_id is not None:
                log.warning("unsupported request type %r from %s", typ, src)
                self._error_reply(src, msg_id, kv.ERR_NOT_SUPPORTED, f"unsupported request type {typ!r}")
            else:
                log.warning("ignoring message of unknown type %r from %s", typ, src)
            return
        try:  # the typed decoder's own words say which field is missing or mistyped
            schema.decode_envelope(line)
            why = "malformed"
        except schema.DecodeError as exc:
            why = str(exc)
        if typ in schema.CLIENT_TYPES:
            log.warning("malformed %s from %.100s (%s): %.200r", typ, src, why, line)
            self._error_reply(src, msg_id, kv.ERR_MALFORMED_REQUEST, f"malformed {typ}: {why}")
        else:
            self._drop_peer(src, typ, f"malformed: {why}")

    def _drop_peer(self, src: str, typ: str, why: str) -> None:
        self.peer_drops += 1
        log.warning("dropping %s from %.100s: %s (%d peer messages dropped)", typ, src, why, self.peer_drops)

    def _error_reply(self, dest: str, msg_id: Any, code: int, text: str) -> None:
        reply: dict[str, Any] = {"type": "error", "code": code, "text": text}
        if type(msg_id) is int and schema.INT64_MIN <= msg_id <= schema.INT64_MAX:
            reply["in_reply_to"] = msg_id  # (one out of range cannot be echoed: the reply goes without)
        self.out.append(encode(self.node_id or "", dest, reply))

    def _on_init(self, src: str, body: schema.Init) -> None:
        node_id = body.node_id
        node_ids = body.node_ids
        if node_id not in node_ids or len(set(node_ids)) != len(node_ids):
            raise ValueError("init needs node_id listed once in node_ids")
        members = body.members
        if members is not None and (not members or len(set(members)) != len(members)
                                    or not set(members) <= set(node_ids)):
            raise ValueError("init's members must be a non-empty list of distinct nodes of node_ids")
        if self.node_id is not None:
            if node_id != self.node_id or node_ids != self.node_ids:
                raise ValueError("init again with a different identity")
            self._reply(src, body.msg_id, {"type": "init_ok"})
            return
        self.node_id = node_id
        self.node_ids = node_ids
        self.members = members
        self._open_storage()
        self._reply(src, body.msg_id, {"type": "init_ok"})
        log.info("initialised as %s of %s (data dir %s)", node_id, node_ids, self.data_dir)
        self._next_tick = self.loop.clock() + self.tick_s
        self._arm_tick()
        buffered, self.pre_init = self.pre_init, []
        for line in buffered:
            self.on_line(line)

    def _open_storage(self) -> None:
        assert self.node_id is not None
        args = self.args
        if args.data_dir:
            self.data_dir = os.path.join(os.path.abspath(args.data_dir), self.node_id)
        else:
            self.data_dir = _private_temp_dir(self.node_id)
        opened_s = time.monotonic()
        try:
            rec, self.writer = self._open(self.data_dir, not args.no_fsync)
        except DamagedFile as exc:
            self._fatal(EXIT_DAMAGED, f"refusing to start: {exc}; the file is left untouched "
                        "(see README, 'A damaged or failing disk')")
        except OSError as exc:
            self._fatal(EXIT_DISK_FAILED, f"disk failure opening the WAL in {self.data_dir}: {exc}")
        except WalError as exc:
            self._fatal(EXIT_DATA_DIR_UNUSABLE, f"refusing to start: {exc}")
        self._thread_sends = bool(getattr(self.writer, "sends_after", False))
        if rec.truncated_bytes:
            log.warning("recovery cut %d bytes of torn or corrupt WAL tail", rec.truncated_bytes)
        log.info("storage recovered in %.0f ms: snapshot through %d, %d entries after it",
                 (time.monotonic() - opened_s) * 1000, rec.snapshot.index if rec.snapshot else 0,
                 len(rec.entries))
        self.loop.add_reader(self.writer.wake_fd, self._on_durable)
        cfg = Config(
            election_ticks=_election_ticks(args),
            heartbeat_ticks=_heartbeat_ticks(args),
            inflight_max=args.inflight_max,
            append_entries_max=args.append_entries_max,
            append_entries_bytes_max=APPEND_ENTRIES_BYTES_MAX,
            lease_reads=args.lease_reads,
            snapshot_chunk_bytes_max=SNAPSHOT_CHUNK_BYTES_MAX,
            learner_snapshot=not getattr(args, "no_snapshots", False),
            bootstrap_unanimous=self.members is not None,
            bugs=frozenset(getattr(args, "bugs", ())) & CORE_BUGS,  # test-only: planted bugs
        )
        self.snapshots = self.writer.snapshots
        snap_meta = reader = None
        if rec.snapshot is not None:
            snap = rec.snapshot
            self.state.restore(rec.sections)
            self._snapshot_keys, self._snapshot_size = len(self.kv.data), snap.size
            snap_meta = SnapshotMeta(snap.index, snap.term, snap.voters, snap.size, snap.learners)
            reader = self.snapshots.reader(snap)
            log.info("loaded the snapshot through %d (term %d, %d bytes)", snap.index, snap.term, snap.size)
        seed = int.from_bytes(os.urandom(8), "little") if args.seed is None else args.seed
        self.raft = Raft(
            self.node_id,
            self.node_ids,
            random.Random(seed),
            cfg,
            current_term=rec.current_term,
            voted_for=rec.voted_for,
            first_index=rec.first_index,
            entries=rec.entries,
            noop=kv.NOOP,
            snapshot=snap_meta,
            snapshot_reader=reader,
            members=self.members,
        )
        if not rec.entries and not rec.current_term and rec.snapshot is None:
            # A brand-new cluster has no leader to wait for: start the first election timer half
            # way (still randomized; pre-vote keeps an early candidate harmless).
            self.raft.election_elapsed = self.raft.randomized_election_ticks // 2
        if rec.entries or rec.current_term:
            log.info(
                "recovered term %d, vote %s, %d entries",
                rec.current_term, rec.voted_for, len(rec.entries),
            )

    # ------------------------------------------------------------------ clients

    def _reply(self, dest: str, msg_id: int, body: dict) -> None:
        body["in_reply_to"] = msg_id
        self.out.append(encode(self.node_id, dest, body))

    def _forward(self, src: str, body: schema.Read | schema.Write | schema.Cas) -> None:
        """Not the leader: pass the request on with the client as src, or refuse (definite)."""
        leader = self.raft.leader_id
        retried = type(body) is schema.Write or type(body) is schema.Cas
        owner = retried and not body.fwd  # it retries this request
        if leader is None or leader == self.node_id or body.fwd >= FORWARD_HOPS_MAX:
            if (retried or type(body) is schema.Reconfigure) and (
                    body.fwd or (src, body.msg_id) in self.forwards.items):
                return  # forwarded before: a definite refusal could contradict a retry of it
            self._error_reply(src, body.msg_id, kv.ERR_TEMPORARILY_UNAVAILABLE, "no leader known; not applied")
            return
        body.fwd += 1
        data = schema.encode_struct(body)
        line = encode_body(src, leader, data)
        if len(line) > LINE_BYTES_MAX:  # the leader would drop it: refuse here, definitely
            self._error_reply(src, body.msg_id, kv.ERR_MALFORMED_REQUEST, "too large to forward; not applied")
            return
        self.out.append(line)
        if owner:
            self._track_forward(src, body.msg_id, data, leader)

    def _on_read(self, src: str, body: schema.Read) -> None:
        raft = self.raft
        if raft.role is not Role.LEADER:
            self._forward(src, body)
            return
        if self._reads_in_core + len(self.reads_waiting) >= READS_PENDING_MAX:
            self._error_reply(src, body.msg_id, kv.ERR_TEMPORARILY_UNAVAILABLE, "overloaded; not read")
            return
        raft.read_index((src, body.msg_id, body.key))
        self._reads_in_core += 1

    def _on_write(self, src: str, body: schema.Write) -> None:
        value = bytes(body.value)
        kv.check_value(value)
        if self.raft.role is not Role.LEADER:  # (before encoding a command only a leader needs)
            self._forward(src, body)
            return
        self._propose(src, body, kv.encode_write(body.key, value, name_json(src), body.msg_id))

    def _on_cas(self, src: str, body: schema.Cas) -> None:
        frm, to = bytes(body.frm), bytes(body.to)
        kv.check_value(frm)
        kv.check_value(to)
        if self.raft.role is not Role.LEADER:
            self._forward(src, body)
            return
        self._propose(src, body, kv.encode_cas(body.key, frm, to, name_json(src), body.msg_id))

    def _propose(self, src: str, body: schema.Write | schema.Cas, command: bytes) -> None:
        """A write or cas at the leader (its callers forward it from any other role, before the
        command is encoded)."""
        raft = self.raft
        if len(self.pending) >= PENDING_MAX:
            if not body.fwd:  # (a forwarded one is dropped: its first node may retry it)
                self._error_reply(src, body.msg_id, kv.ERR_TEMPORARILY_UNAVAILABLE, "overloaded; not applied")
            return
        if len(command) > ENTRY_BYTES_MAX:
            raise ValueError(f"the command takes {len(command)} bytes, over {ENTRY_BYTES_MAX}")
        proposed = raft.propose(command)
        if proposed is None:  # handing leadership over: nothing is appended meanwhile
            if not body.fwd:  # (a forwarded one is dropped: its first node retries it at the heir)
                self._error_reply(src, body.msg_id, kv.ERR_TEMPORARILY_UNAVAILABLE,
                                  "leadership transfer in progress; not applied")
            return
        index, term = proposed
        self.pending[index] = (term, src, body.msg_id, self.loop.clock(), command)

    # ------------------------------------------------------------------ membership (extension)

    def _on_members(self, src: str, body: schema.Members) -> None:
        raft = self.raft
        if raft.role is not Role.LEADER:
            self._forward(src, body)
            return
        conf = raft.committed_conf()
        self._reply(src, body.msg_id, {"type": "members_ok", "members": list(conf.voters),
                                       "learners": list(conf.learners)})

    def _on_reconfigure(self, src: str, body: schema.Reconfigure) -> None:
        members = body.members
        if not members or len(set(members)) != len(members) or not set(members) <= set(self.node_ids):
            raise ValueError("members must be a non-empty list of distinct nodes of node_ids")
        raft = self.raft
        if raft.role is not Role.LEADER:
            self._forward(src, body)
            return
        target = tuple(sorted(members))
        if raft.target is None and raft.reconfigured(target):
            self._reply(src, body.msg_id, {"type": "reconfigure_ok", "members": list(target)})
            return
        if len(self._reconf) >= RECONF_WAITERS_MAX:
            why: str | None = "too many reconfigure requests waiting"
        else:
            why = raft.reconfigure(target)
        if why is not None:
            if not body.cont:  # (one handed on may have had steps taken: no definite answer)
                self._error_reply(src, body.msg_id, kv.ERR_TEMPORARILY_UNAVAILABLE, f"{why}; nothing changed")
            return
        self._reconf.append((src, body.msg_id, target, self.loop.clock()))

    def _check_reconf(self) -> None:
        """Answer reconfigure requests whose configuration is committed and in force; a leader
        that lost leadership hands the rest to the leader it knows now."""
        raft = self.raft
        now = self.loop.clock()
        keep = []
        for src, msg_id, target, arrived in self._reconf:
            if now - arrived >= RECONF_AGE_MAX_S:
                continue  # its client gave up long ago (indefinite, as it is)
            if raft.role is Role.LEADER:
                if raft.reconfigured(target):
                    self._reply(src, msg_id, {"type": "reconfigure_ok", "members": list(target)})
                elif raft.target == frozenset(target):
                    keep.append((src, msg_id, target, arrived))
                # else: another request's target replaced it; no answer (indefinite)
            elif raft.leader_id is not None and raft.leader_id != self.node_id:
                body = {"type": "reconfigure", "msg_id": msg_id, "members": list(target), "fwd": 1,
                        "cont": True}
                self.out.append(encode(src, raft.leader_id, body))
            else:
                keep.append((src, msg_id, target, arrived))
        self._reconf = keep

    # ------------------------------------------------------------------ retrying forwards

    def _track_forward(self, src: str, msg_id: int, data: bytes, leader: str | None,
                       arrived: float | None = None) -> None:
        self.forwards.add(src, msg_id, data, leader, self.loop.clock(), arrived)
        if self._fwd_timer is None:
            self._fwd_timer = self.loop.call_later(forwards.FORWARD_CHECK_S, self._on_forward_check)

    def _on_forward_check(self) -> None:
        self._fwd_timer = None
        applied = self.raft.applied_index
        self._retry_forwards(False, stalled=applied == self._fwd_applied)
        self._fwd_applied = applied
        if self.forwards.items:
            self._fwd_timer = self.loop.call_later(forwards.FORWARD_CHECK_S, self._on_forward_check)

    def _retry_forwards(self, leader_changed: bool, stalled: bool = True) -> None:
        """Re-send forwards that went to another leader (or are overdue) to the leader known now;
        as the leader, propose them. Copies are harmless: the session table applies one."""
        raft = self.raft
        leader = self._fwd_leader = raft.leader_id
        if leader == self.node_id and raft.role is not Role.LEADER:
            leader = None
        due = self.forwards.due(self.loop.clock(), leader, leader_changed, self.kv.sessions.decided,
                                stalled)
        for src, msg_id, data in due:
            if leader == self.node_id:
                self.forwards.discard(src, msg_id)
                body = _decode_request(data)
                try:
                    self._handlers[type(body)](src, body)
                except ValueError as exc:  # (a command over ENTRY_BYTES_MAX: it can never be proposed)
                    log.warning("dropping a retried %s from %s: %s", type(body).__name__.lower(), src, exc)
            else:
                self.out.append(encode_body(src, leader, data))

    def _superseded(self, client: str, msg_id: int, command: bytes, created: float) -> None:
        """Our entry for a client request lost its index to another leader's. Answer with its result
        if a copy was applied; else hand it to the leader, as a forward, while its client waits."""
        code = self.kv.sessions.check(client, msg_id, command) if self.kv.dedup else None
        if code is not None:
            if code == sessions.OK:
                body = {"type": "write_ok" if command[2:3] == b"w" else "cas_ok", "in_reply_to": msg_id}
                self.out.append(encode(self.node_id, client, body))
            elif code != sessions.EVICTED:
                self._error_reply(client, msg_id, code, "a copy of this request was applied before; "
                                  "this is its result")
            return
        now = self.loop.clock()
        req = kv.client_request(command)
        if req is None or now - created >= forwards.FORWARD_AGE_MAX_S:
            return  # no answer: the client has given up (an indefinite outcome, as it is)
        self._track_forward(client, msg_id, req[2], None, created)
        self._fwd_leader = None if self.raft.leader_id is not None else ""  # check at the next pass

    # ------------------------------------------------------------------ raft wire

    def _on_raft(self, src: str, body: Any) -> None:
        if src not in self.node_ids or src == self.node_id:
            self._drop_peer(src, type(body).__name__.lower(), "not a peer of ours")
            return
        if self._tick_due > self._next_tick:  # sleeping through ticks (--lazy-ticks): count them first
            self._advance_clock(before_step=True)
        self.raft.step(_decode_raft(src, self.node_id, body))

    # ------------------------------------------------------------------ time and durability

    def _on_tick(self, gen: int) -> None:
        if gen != self._tick_gen:
            return  # re-armed earlier since (a loop without cancel, as the tests' manual one)
        self._advance_clock()
        self._arm_tick()

    def _arm_tick(self) -> None:
        """Wake at the next tick at which the core acts on its own (`Raft.ticks_to_act`): every tick
        for a leader; for anyone else, with `--lazy-ticks` (the default), only at its election
        timeout: a follower that hears from its leader never wakes for a tick at all (its ticks are
        counted when a Raft message arrives, before it is stepped, and when the timer fires)."""
        k = self.raft.ticks_to_act() if self.lazy_ticks else 1
        self._tick_due = self._next_tick + (k - 1) * self.tick_s
        self._tick_gen += 1
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        self._tick_timer = self.loop.call_at(self._tick_due, lambda g=self._tick_gen: self._on_tick(g))

    def _advance_clock(self, before_step: bool = False) -> None:
        """Turn elapsed wall time into Raft ticks. After a stall (a long pass, a paused process), a
        leader catches up on every tick it missed, so its heartbeats, check-quorum and any lease
        expire on time; anyone else catches up on at most `FOLLOWER_CATCHUP_TICKS_MAX` past the tick
        it planned to wake at, so a stall of its own is not mistaken for a silent leader (heartbeats
        may be waiting unread on stdin). A leader that check-quorum demotes half way through
        catching up stops there too: ticking on would start one pre-vote campaign per election
        timeout of the stall, all in this pass. `before_step` (a Raft message is about to be
        stepped): only the ticks slept through before the planned one, which cannot act; the
        planned tick itself is the timer's, after this pass's messages, as when every tick woke us."""
        now = self.loop.clock()
        if self._next_tick > now:
            return
        raft = self.raft
        due = int((now - self._next_tick) / self.tick_s) + 1
        planned = max(0, round((self._tick_due - self._next_tick) / self.tick_s))  # slept through
        if before_step:
            n = due = min(due, planned)
        else:
            if due - planned > STALL_LOG_TICKS:
                log.info("%s stalled %.0f ms (%d ticks behind)", raft.role.value,
                         (due - planned) * self.tick_s * 1e3, due - planned)
            cap = planned + FOLLOWER_CATCHUP_TICKS_MAX
            n = min(due, LEADER_CATCHUP_TICKS_MAX if raft.role is Role.LEADER else cap)
        for k in range(n):
            if k >= planned + FOLLOWER_CATCHUP_TICKS_MAX and raft.role is not Role.LEADER:
                break  # demoted while catching up (check-quorum): from here on a follower's cap
            raft.tick()
        self._next_tick += due * self.tick_s

    def _fatal(self, code: int, text: str) -> None:
        """Stop for good: one CRITICAL line, nothing more written, exit status `code`."""
        log.critical("%s (exit %d)", text, code)
        self.out = []
        self.stop()
        raise SystemExit(code)

    def _disk_failed(self, exc: BaseException) -> None:
        cause = exc.__cause__ if isinstance(exc, WalWriterError) and exc.__cause__ else exc
        self._fatal(EXIT_DISK_FAILED, f"WAL write or fsync failed in {self.data_dir}: {cause}; stopping, "
                    "nothing that depended on it was sent; restart to recover what is durable")

    def _on_durable(self) -> None:
        writer = self.writer
        durable = writer.drain_wake()
        if writer.error is not None:
            self._disk_failed(writer.error)
        self._release_durable(durable)

    def _release_durable(self, durable: int) -> None:
        """Batches up to id `durable` are durable: tell the core, send what waited on them."""
        batches = self.batches
        while batches and batches[0][0] <= durable:
            _, last_index, last_term, after = batches.popleft()
            if last_index:
                self.raft.persisted(last_index, last_term)
            self._send_raft(after)

    # ------------------------------------------------------------------ output

    def flush(self) -> None:
        """End of pass: one Ready from the core becomes one WAL batch and one stdout write."""
        if self.stopped:
            return
        raft = self.raft
        if raft is not None:
            if self._thread_sends and self.batches and self.writer.durable_id >= self.batches[0][0]:
                self._release_durable(self.writer.durable_id)  # batches that did not wake us
            if self.lease_reads and raft.role is Role.LEADER and BUG_LEASE_STALE_CLOCK not in raft.config.bugs:
                # A lease is judged by the clock now, not as of the last timer (this pass may follow
                # a stall in which another leader was elected).
                self._advance_clock()
            if self.forwards.items and raft.leader_id != self._fwd_leader:
                self._retry_forwards(True)  # a new leader (or none): re-send what went elsewhere
            rd = raft.ready()
            if self.lazy_ticks and self._next_tick + (raft.ticks_to_act() - 1) * self.tick_s < self._tick_due:
                self._arm_tick()  # acts sooner than planned (a new leader, a new election timeout)
            if raft.role is not self._role_seen:
                self._role_seen = raft.role
                log.info("%s in term %d (leader %s)", raft.role.value, raft.current_term, raft.leader_id)
            persist = rd.needs_persist()
            if not persist and rd.messages_after_persist and self.batches and self._thread_sends:
                persist = True  # behind earlier batches (never overtaking them): via the WAL thread
            if persist:
                after = rd.messages_after_persist
                extra: tuple = ()
                if self._thread_sends:
                    # The WAL thread sends these itself right after the fsync; only a leader (its
                    # commit waits on its own durable index) needs the loop woken for it.
                    lines = b"".join([self._raft_line(m) for m in after])
                    extra = (lines, raft.role is Role.LEADER)
                    after = []
                try:
                    if rd.entries:
                        last_index = rd.entries_start + len(rd.entries) - 1
                        last_term = rd.entries[-1][0]
                        bid = self.writer.submit(rd.hard_state, rd.entries_start, rd.entries,
                                                 *extra)
                    else:
                        last_index = last_term = 0
                        bid = self.writer.submit(rd.hard_state, None, (), *extra)
                except WalWriterError as exc:  # the writer failed since the last wake
                    self._disk_failed(exc)
                self.batches.append((bid, last_index, last_term, after))
            elif rd.messages_after_persist:
                if self.batches:  # must not overtake what earlier batches still make durable
                    self.batches[-1][3].extend(rd.messages_after_persist)
                else:
                    self._send_raft(rd.messages_after_persist)
            self._send_raft(rd.messages)
            if self._reconf:
                self._check_reconf()
            if rd.committed:
                self._apply(rd.committed)
                self._since_snapshot_bytes += sum(len(c[2]) for c in rd.committed)
                if self._snapshot_fd is None:
                    self._maybe_snapshot()
            if raft.snapshot_wanted and self._snapshot_fd is None and raft.applied_index >= raft.snapshot_wanted:
                self._maybe_snapshot(force=True)  # (applied above) a learner catches up from it
            if self._snapshot_job is not None:
                self._snapshot_slice()
            if rd.snapshot_chunks:
                self._on_snapshot_chunks(rd.snapshot_chunks)
            if rd.read_states:
                applied = raft.applied_index
                for ctx, index in rd.read_states:
                    if index <= applied:
                        self._serve_read(ctx)
                    else:
                        self._read_seq += 1
                        heapq.heappush(self.reads_waiting, (index, self._read_seq, ctx))
            self._reads_in_core -= len(rd.read_states) + len(rd.dropped_reads)
            assert self._reads_in_core >= 0, self._reads_in_core
            for ctx in rd.dropped_reads:
                src, msg_id, _ = ctx
                self._error_reply(src, msg_id, kv.ERR_TEMPORARILY_UNAVAILABLE,
                                  "leadership lost before the read was confirmed")
        if self.out:
            data = b"".join(self.out)
            self.out = []
            self.write_out(data)

    def _apply(self, committed: list[tuple[int, int, bytes]]) -> None:
        store = self.kv
        pending = self.pending
        node_id = self.node_id
        me = name_json(node_id)
        out = self.out
        for index, term, data in committed:
            code, value = store.apply(data)
            p = pending.pop(index, None) if pending else None
            if p is None:
                continue
            pterm, client, msg_id, created, command = p
            if pterm != term:
                self._superseded(client, msg_id, command, created)
                continue
            if code is None:
                out.append((_WRITE_OK if data[2:3] == b"w" else _CAS_OK) % (me, name_json(client), msg_id))
            else:
                body = {"type": "error", "in_reply_to": msg_id, "code": code, "text": value}
                out.append(encode(node_id, client, body))
        waiting = self.reads_waiting
        applied = committed[-1][0]
        while waiting and waiting[0][0] <= applied:
            self._serve_read(heapq.heappop(waiting)[2])

    def _serve_read(self, ctx: tuple[str, int, Any]) -> None:
        src, msg_id, key = ctx
        code, value = self.kv.read(key)
        if code is None:
            self.out.append(_READ_OK % (name_json(self.node_id), name_json(src), msg_id, value))
            return
        body = {"type": "error", "in_reply_to": msg_id, "code": code, "text": value}
        self.out.append(encode(self.node_id, src, body))

    def _send_raft(self, msgs: list[Message]) -> None:
        out = self.out
        for m in msgs:
            out.append(self._raft_line(m))

    @staticmethod
    def _raft_line(m: Message) -> bytes:
        line = _encode_raft(m)
        assert len(line) <= LINE_BYTES_MAX, f"a {type(m).__name__} of {len(line)} bytes"
        return line

    def expire_pending(self) -> None:
        """Forget writes whose clients gave up long ago (bounded memory under long partitions)."""
        cutoff = self.loop.clock() - PENDING_AGE_MAX_S
        stale = [i for i, p in self.pending.items() if p[3] < cutoff]
        for i in stale:
            del self.pending[i]
        if stale:
            log.info("forgot %d writes pending for over %.0f s", len(stale), PENDING_AGE_MAX_S)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.snapshots is not None:
            self.snapshots.close()  # a child still writing a snapshot is killed; its temp file swept
        if self.writer is not None:
            try:
                self.writer.close()  # writes and fsyncs what is queued; closes the log too
            except Exception as exc:  # closing after a failure: report, keep shutting down
                log.error("closing the WAL: %r", exc)


    # ------------------------------------------------------------------ snapshots

    def _maybe_snapshot(self, force: bool = False) -> None:
        """Take a snapshot (in a forked child, see runtime/snapshot.py) once the log since the last
        one passes `--snapshot-entries` entries or `--snapshot-bytes` bytes of commands (or, with
        `force`, now: the core wants one for a learner)."""
        args = self.args
        raft = self.raft
        if getattr(args, "no_snapshots", False) or self._snapshot_job is not None:
            return  # (the last one's overlay is still being folded back)
        base = raft.log.first_index - 1
        index = raft.applied_index
        if (not force and index - base < max(args.snapshot_entries, self._snapshot_keys)
                and self._since_snapshot_bytes < max(args.snapshot_bytes, self._snapshot_size)):
            return
        if BUG_SNAPSHOT_PAST_APPLIED in raft.config.bugs:
            index = raft.log.last_index()  # planted bug: the label runs ahead of the state
        if index <= base:
            return
        term = raft.log.term_at(index)
        self._since_snapshot_bytes = 0
        self._snapshot_keys = len(self.kv.data)
        conf = raft.conf_at(index)
        meta_args = (index, term, conf.voters)
        try:
            if getattr(args, "snapshot_fork", False):
                fd = self.snapshots.take(*meta_args, self.state.sections, conf.learners)
            else:
                writer = self.snapshots.begin(*meta_args, conf.learners)
                fd = writer.fd
                self._snapshot_job = SnapshotJob(self.state, writer, **self.snapshot_slices)
        except OSError as exc:  # no fork (memory), no thread: the log keeps growing; say so
            self._snapshot_failed(exc)
            return
        self._snapshot_fd = fd
        self.loop.add_reader(fd, self._on_snapshot_taken)

    def _snapshot_slice(self) -> None:
        """End of a pass with a snapshot job: one bounded slice of it (runtime cost per pass is
        bounded whatever the state's size), and another pass soon while work is left."""
        job = self._snapshot_job
        if not job.step():
            self._snapshot_job = None
            return
        if self._snapshot_timer is None:
            self._snapshot_timer = self.loop.call_later(self.snapshot_pass_s, self._snapshot_pass)

    def _snapshot_pass(self) -> None:
        self._snapshot_timer = None  # (the pass's end does the slice)

    def _snapshot_failed(self, exc: BaseException) -> None:
        self._snapshot_failures += 1
        log.error("taking a snapshot failed (%s); the log is not compacted (%d failures)", exc,
                  self._snapshot_failures)

    def _on_snapshot_taken(self) -> None:
        fd, self._snapshot_fd = self._snapshot_fd, None
        self.loop.remove_reader(fd)
        try:
            snap = self.snapshots.taken()
        except OSError as exc:
            if self._snapshot_job is not None:
                self._snapshot_job.abort()  # (fold what went to the overlay)
            self._snapshot_failed(exc)
            return
        meta = SnapshotMeta(snap.index, snap.term, snap.voters, snap.size, snap.learners)
        self._snapshot_size = snap.size
        if self.raft.compact(meta, self.snapshots.reader(snap)):
            self.snapshots_taken += 1
            self._compact_storage(snap.index)
            log.info("snapshot through %d taken (%d bytes); log compacted (%d snapshots taken)",
                     snap.index, snap.size, self.snapshots_taken)

    def _compact_storage(self, index: int) -> None:
        """A durable snapshot through `index`: WAL segments and older snapshots it covers go."""
        try:
            self.writer.compact(index)
            self.snapshots.prune(index)
        except WalWriterError as exc:
            self._disk_failed(exc)
        except OSError as exc:
            self._fatal(EXIT_DISK_FAILED, f"deleting covered files in {self.data_dir} failed: {exc}")

    def _on_snapshot_chunks(self, chunks: list[tuple[SnapshotMeta, int, bytes]]) -> None:
        """Chunks from a leader, written where they belong as they come; a complete snapshot is
        checked, made durable, then installed (or refused, and received again from its start)."""
        raft = self.raft
        store = self.snapshots
        for meta, offset, data in chunks:
            try:
                store.receive(offset, data)
                done = offset + len(data) == meta.size
                got = store.finish_receive(meta.index, meta.term) if done else None
            except OSError as exc:
                self._fatal(EXIT_DISK_FAILED, f"writing a received snapshot in {self.data_dir} failed: {exc}")
            if not done:
                continue
            if got is None:
                log.warning("the snapshot through %d from %s failed its checks; receiving it again",
                            meta.index, raft.leader_id)
                raft.snapshot_refused()
                continue
            snap, sections = got
            if not raft.install_snapshot(meta, store.reader(snap)):
                continue  # no newer than what we committed: nothing changes
            self.state.restore(sections)
            self._snapshot_keys, self._snapshot_size = len(self.kv.data), snap.size
            self.snapshots_installed += 1
            try:
                self.writer.reset(meta.index + 1, meta.term)
            except WalWriterError as exc:
                self._disk_failed(exc)
            self._compact_storage(meta.index)
            self.pending = {i: p for i, p in self.pending.items() if i > meta.index}  # (never applied here)
            waiting = self.reads_waiting
            while waiting and waiting[0][0] <= meta.index:
                self._serve_read(heapq.heappop(waiting)[2])
            log.info("installed the snapshot through %d (term %d, %d bytes) from %s (%d installed)",
                     meta.index, meta.term, meta.size, raft.leader_id, self.snapshots_installed)


class _WalStorage:
    """The production storage: a WriteAheadLog behind its WalWriter thread, and the snapshot files.
    With `send` (the node's thread-safe stdout write) the thread itself sends what waits on a batch
    once it is durable."""

    def __init__(self, wal: WriteAheadLog, snapshots: SnapshotStore,
                 send: Callable[[bytes], None] | None = None) -> None:
        self.wal = wal
        self.snapshots = snapshots
        self.writer = WalWriter(wal, send=send)
        self.sends_after = send is not None
        self.wake_fd = self.writer.wake_fd
        self.submit = self.writer.submit
        self.reset = self.writer.reset
        self.compact = self.writer.compact
        self.drain_wake = self.writer.drain_wake

    @property
    def durable_id(self) -> int:
        return self.writer.durable_id

    @property
    def error(self) -> BaseException | None:
        return self.writer.error

    def close(self) -> None:
        try:
            self.writer.close()
        finally:
            self.wal.close()


def _open_wal(data_dir: str, fsync: bool, io: FileIO = REAL,
              send: Callable[[bytes], None] | None = None) -> tuple[Recovered, _WalStorage]:
    wal = WriteAheadLog(data_dir, fsync=fsync, io=io)  # takes the directory's lock first
    try:
        snapshots = SnapshotStore(wal.dir_path, fsync=fsync, io=io)
        rec = recover_with_snapshots(snapshots, wal.recover)
    except BaseException:
        wal.close()  # releases the lock; a damaged file is left as it is
        raise
    return rec, _WalStorage(wal, snapshots, send)


def recover_with_snapshots(snapshots: Any, recover_log: Callable[[int, int], Recovered]) -> Recovered:
    """Recovery: the newest snapshot that loads, then the log after it (`recover_log(index, term)`).
    A damaged snapshot is passed over only if the log still covers what it held; otherwise
    DamagedFile (refuse to start: acknowledged writes may be in it and nowhere else). A damaged
    file is left untouched for whoever looks into it."""
    snap = sections = damaged = None
    for index in snapshots.indexes():
        try:
            snap, sections = snapshots.load(index)
            break
        except DamagedFile as exc:
            damaged = damaged or exc
    try:
        rec = recover_log(snap.index if snap else 0, snap.term if snap else 0)
    except DamagedFile as exc:
        if damaged is not None:
            raise DamagedFile(damaged.path, damaged.offset,
                              f"{damaged.reason}; and the WAL does not cover it ({exc.reason})") from None
        raise
    if damaged is not None:
        log.warning("passed over the damaged snapshot %s (%s): the WAL covers it (left untouched)",
                    damaged.path, damaged.reason)
    rec.snapshot, rec.sections = snap, sections
    return rec


def _open_wal_with_faults(faults: list[DiskFault], send: Callable[[bytes], None] | None = None,
                          ) -> Callable[[str, bool], tuple[Recovered, _WalStorage]]:
    """Test-only (`--disk-fault`): the real WAL over a file layer whose planned calls fail."""
    io = FaultyFileIO(*faults)
    return lambda data_dir, fsync: _open_wal(data_dir, fsync, io, send)


# ---------------------------------------------------------------------- raft message codec


# The hot replies and Raft messages as whole-line byte templates, formatted with the names' JSON
# (`name_json`): the bytes `encode` makes of the same dict, at half its cost. Entries' data are
# spliced in as they are stored, never re-encoded.
_WRITE_OK = b'{"src":%b,"dest":%b,"body":{"type":"write_ok","in_reply_to":%d}}\n'
_CAS_OK = b'{"src":%b,"dest":%b,"body":{"type":"cas_ok","in_reply_to":%d}}\n'
_READ_OK = b'{"src":%b,"dest":%b,"body":{"type":"read_ok","in_reply_to":%d,"value":%b}}\n'
_AE = b'{"src":%b,"dest":%b,"body":{"type":"ae","term":%d,"pi":%d,"pt":%d,"c":%d,"e":[%b]}}\n'
_AE_ENTRY = b"[%d,%b]"
_AER_OK = b'{"src":%b,"dest":%b,"body":{"type":"aer","term":%d,"ok":true,"m":%d}}\n'
_HB = b'{"src":%b,"dest":%b,"body":{"type":"hb","term":%d,"c":%d,"rs":%d}}\n'
_HBR = b'{"src":%b,"dest":%b,"body":{"type":"hbr","term":%d,"rs":%d}}\n'


def _encode_raft(m: Message) -> bytes:
    t = type(m)
    if t is AppendEntries:
        e = b",".join([_AE_ENTRY % ent for ent in m.entries])
        return _AE % (name_json(m.src), name_json(m.dest), m.term, m.prev_index, m.prev_term,
                      m.commit_index, e)
    if t is Heartbeat:
        return _HB % (name_json(m.src), name_json(m.dest), m.term, m.commit_index, m.read_seq)
    if t is HeartbeatResponse:
        return _HBR % (name_json(m.src), name_json(m.dest), m.term, m.read_seq)
    if t is AppendResponse:
        if m.success:
            return _AER_OK % (name_json(m.src), name_json(m.dest), m.term, m.match_index)
        body = {"type": "aer", "term": m.term, "ok": False, "ri": m.reject_index,
                "ci": m.conflict_index, "ct": m.conflict_term}
    elif t is RequestVote:
        body = {"type": "rv", "term": m.term, "li": m.last_log_index, "lt": m.last_log_term,
                "pre": m.pre_vote}
        if m.transfer:
            body["tr"] = True
    elif t is VoteResponse:
        body = {"type": "rvr", "term": m.term, "g": m.granted, "pre": m.pre_vote}
    elif t is InstallSnapshot:  # the file's bytes, as they are on disk, in base64
        body = {"type": "is", "term": m.term, "li": m.last_index, "lt": m.last_term, "v": list(m.voters),
                "sz": m.size, "o": m.offset, "d": base64.b64encode(m.data).decode(), "lr": list(m.learners)}
    elif t is TimeoutNow:
        body = {"type": "tn", "term": m.term}
    else:
        assert t is SnapshotResponse
        body = {"type": "isr", "term": m.term, "li": m.last_index, "o": m.next_offset, "done": m.done}
    return encode(m.src, m.dest, body)


_decode_request = msgspec.json.Decoder(Union[schema.Write, schema.Cas]).decode  # a retried forward


def _decode_raft(src: str, dest: str, b: Any) -> Message:
    t = type(b)
    if t is schema.AE:
        # The entries' bytes exactly as they came: what the leader encoded is what lands in our WAL.
        return AppendEntries(src, dest, b.term, b.pi, b.pt, [(et, bytes(ed)) for et, ed in b.e], b.c)
    if t is schema.AER:
        if b.ok:
            return AppendResponse(src, dest, b.term, True, match_index=b.m)
        return AppendResponse(src, dest, b.term, False, reject_index=b.ri, conflict_index=b.ci,
                              conflict_term=b.ct)
    if t is schema.HB:
        return Heartbeat(src, dest, b.term, b.c, b.rs)
    if t is schema.HBR:
        return HeartbeatResponse(src, dest, b.term, b.rs)
    if t is schema.RV:
        return RequestVote(src, dest, b.term, b.li, b.lt, b.pre, b.tr)
    if t is schema.IS:
        return InstallSnapshot(src, dest, b.term, b.li, b.lt, tuple(b.v), b.sz, b.o, b.d, tuple(b.lr))
    if t is schema.TN:
        return TimeoutNow(src, dest, b.term)
    if t is schema.ISR:
        return SnapshotResponse(src, dest, b.term, b.li, b.o, b.done)
    assert t is schema.RVR
    return VoteResponse(src, dest, b.term, b.g, b.pre)


# ---------------------------------------------------------------------- process


def _private_temp_dir(node_id: str) -> str:
    """A fresh data directory removed at exit. Maelstrom SIGKILLs nodes, so exit handlers may never
    run: directories left by dead processes are swept at the next start."""
    import shutil  # (here: with --data-dir, as after every restart, they are never needed)
    import tempfile

    base = tempfile.gettempdir()
    for name in os.listdir(base):
        if not name.startswith("rast-") or name.count("-") < 2:
            continue
        try:
            pid = int(name.split("-")[1])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        except PermissionError:
            pass
    path = tempfile.mkdtemp(prefix=f"rast-{os.getpid()}-{node_id}-")
    atexit.register(shutil.rmtree, path, True)
    return path


def _disk_fault_arg(text: str) -> DiskFault:
    try:
        return DiskFault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="rast",
        description="Rast: a Raft lin-kv node for Maelstrom (JSON lines on stdin/stdout).",
    )
    p.add_argument("--version", action="version", version=f"rast {__version__}")
    p.add_argument("--data-dir", help="keep the WAL in DIR/<node id> (default: a private temp dir removed at exit)")
    p.add_argument("--log-level", default=os.environ.get("RAST_LOG_LEVEL", "WARNING"),
                   help="stderr log level (default WARNING, or $RAST_LOG_LEVEL)")
    p.add_argument("--tick-ms", type=float, default=10.0, help="Raft tick (default 10 ms)")
    p.add_argument("--election-ms", type=float, default=300.0,
                   help="minimum election timeout; each one is drawn from [t, 2t) (default 300 ms)")
    p.add_argument("--heartbeat-ms", type=float, default=50.0, help="leader heartbeat interval (default 50 ms)")
    p.add_argument("--inflight-max", type=int, default=32, help="AppendEntries in flight per follower")
    p.add_argument("--append-entries-max", type=int, default=1024, help="entries per AppendEntries")
    p.add_argument("--lease-reads", action=argparse.BooleanOptionalAction, default=True,
                   help="serve reads from a leader lease instead of a heartbeat round (fewer hops; the "
                        "default); assumes any two nodes' monotonic clocks advance at rates within a "
                        "factor (E-1)/(E-3) of each other, E the election timeout in ticks (7%% at the "
                        "defaults); pauses are fine (a resumed leader catches up on its clock first); "
                        "--no-lease-reads: a heartbeat round (ReadIndex) per batch of reads")
    p.add_argument("--lazy-ticks", action=argparse.BooleanOptionalAction, default=True,
                   help="a node that is not the leader wakes only when its election timeout is due, "
                        "not every tick (the default; --no-lazy-ticks: every tick, for comparisons)")
    p.add_argument("--no-fsync", action="store_true", help="skip fsync (unsafe; for comparisons only)")
    p.add_argument("--no-batching", action="store_true",
                   help="for comparisons: one Ready (WAL batch, stdout write) per input message, one entry "
                        "per AppendEntries and one AppendEntries in flight per follower")
    p.add_argument("--seed", type=int, help="seed for election timeouts (default: random)")
    p.add_argument("--snapshot-entries", type=int, default=10_000,
                   help="take a snapshot once this many entries were applied since the last one, and "
                        "at least as many as it had keys (default 10000)")
    p.add_argument("--snapshot-bytes", type=int, default=8 << 20,
                   help="... or once the commands applied since the last one take this many bytes, and "
                        "at least its size (default 8 MiB)")
    p.add_argument("--no-snapshots", action="store_true",
                   help="never take a snapshot (the log and WAL grow forever; for comparisons)")
    p.add_argument("--snapshot-fork", action="store_true",
                   help="take snapshots in a forked child (its pause grows with memory: about 75 us "
                        "per MB here) instead of in bounded slices in the loop (the default)")
    p.add_argument("--disk-fault", type=_disk_fault_arg, action="append", default=[], help=argparse.SUPPRESS)
    # (test-only: "write:N:ERRNO" / "fsync:N:ERRNO" makes the WAL's N-th write or fsync fail)
    p.add_argument("--bug", dest="bugs", choices=sorted(CORE_BUGS | sessions.BUGS), action="append",
                   default=[], help=argparse.SUPPRESS)
    # (test-only: plant a named bug, e.g. "no-dedup": the state machine ignores sessions)
    args = p.parse_args(argv)
    if args.no_batching:
        args.inflight_max = 1
        args.append_entries_max = 1
    problem = _flag_problem(args)
    if problem:
        p.error(problem)  # exit 2, before anything starts
    return args


def _heartbeat_ticks(args: argparse.Namespace) -> int:
    return max(1, round(args.heartbeat_ms / args.tick_ms))


def _election_ticks(args: argparse.Namespace) -> int:
    return max(2, round(args.election_ms / args.tick_ms))


def _flag_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with a flag combination the core's Config would refuse, in the flags' words."""
    for name in ("tick_ms", "heartbeat_ms", "election_ms"):
        v = getattr(args, name)
        if not (math.isfinite(v) and v > 0):
            return f"--{name.replace('_', '-')} must be a positive number of milliseconds, not {v}"
    if not args.tick_ms <= args.heartbeat_ms < args.election_ms:
        return "need 0 < tick-ms <= heartbeat-ms < election-ms"
    hb, el = _heartbeat_ticks(args), _election_ticks(args)
    margin = Config().lease_margin_ticks
    if el <= max(hb, margin):
        return (f"--election-ms {args.election_ms:g} is {el} ticks of {args.tick_ms:g} ms; it must be more "
                f"than --heartbeat-ms ({hb} ticks) and more than the {margin}-tick lease margin")
    for name in ("inflight_max", "append_entries_max", "snapshot_entries", "snapshot_bytes"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    loop = EventLoop()
    stdin_fd = sys.stdin.fileno()
    stdout_fd = sys.stdout.fileno()
    os.set_blocking(stdin_fd, False)

    out_lock = threading.Lock()  # the loop and the WAL thread both write whole lines to stdout

    def write_out(data: bytes) -> None:
        view = memoryview(data)
        with out_lock:
            while view:
                try:
                    n = os.write(stdout_fd, view)
                except BlockingIOError:
                    time.sleep(0.0005)
                    continue
                view = view[n:]

    if args.disk_fault:
        open_storage = _open_wal_with_faults(args.disk_fault, write_out)
    else:
        def open_storage(data_dir: str, fsync: bool) -> tuple[Recovered, _WalStorage]:
            return _open_wal(data_dir, fsync, REAL, write_out)
    node = Node(args, write_out, loop, open_storage)
    splitter = LineSplitter()
    unbatched = args.no_batching
    state = {"eof": False}

    def on_stdin() -> None:
        for _ in range(READS_PER_PASS_MAX):
            try:
                data = os.read(stdin_fd, READ_BYTES_MAX)
            except BlockingIOError:
                break
            if not data:
                state["eof"] = True
                tail = splitter.pending()
                if tail.strip():
                    node.on_line(tail)
                loop.remove_reader(stdin_fd)
                loop.stop()
                break
            oversized = splitter.oversized
            for line in splitter.feed(data):
                node.on_line(line)
                if unbatched:
                    node.flush()
            if splitter.oversized != oversized:
                log.warning("dropped %d line(s) longer than %d bytes", splitter.oversized - oversized,
                            splitter.line_bytes_max)
            if len(data) < READ_BYTES_MAX:
                break

    def expire() -> None:
        node.expire_pending()
        loop.call_later(5.0, expire)

    loop.add_reader(stdin_fd, on_stdin)
    loop.on_pass_end = node.flush
    loop.call_later(5.0, expire)
    signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    try:
        loop.run()
    except BrokenPipeError:
        log.warning("stdout closed; exiting")
    finally:
        try:
            node.flush()
        except BrokenPipeError:
            pass
        node.stop()
    if state["eof"]:
        log.info("stdin closed; exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
