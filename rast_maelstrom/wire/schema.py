"""The node's wire schema: every message body Rast understands, as typed msgspec Structs.

Owns: the shapes of client requests (Maelstrom's lin-kv RPCs and `init`) and of Raft's peer
messages, and the one-pass typed decoder for an incoming line. Decoding is lazy where it pays:
client values (`value`, `from`, `to`) and log entries' data stay `msgspec.Raw` — the exact bytes
of the line — so a command is spliced into the log from the bytes it arrived in, and a follower
writes the entry bytes it received to its WAL as they came (the bytes on the wire are the bytes on
disk). Unknown envelope keys (the network's `id`) and unknown body keys are skipped, not built.

Ranges are part of the schema: every integer the node stores or echoes (a key, a `msg_id`, a Raft
term or index) must be a signed 64-bit integer, and Raft's counters are never negative, so nothing
out of range gets past the decoder (the WAL stores terms and indexes as u64; orjson, which writes
replies, cannot encode a larger integer). Names (`src`, `dest`) are bounded so that every reply fits
under the receiver's line limit. Client values are arbitrary JSON and stay exact (`Raw`).

A line that does not fit the schema raises; `codec.diagnose` then says why, for the error reply.

May not touch: Raft rules, IO. Field names on the Raft messages are short because every one of
them is on the hot path.
"""

from __future__ import annotations

from typing import Annotated, Union

import msgspec
from msgspec import Meta, Raw

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
NAME_CHARS_MAX = 1024  # src, dest and node ids (a reply to any name fits under the line limit)

I64 = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]  # a client's integer: stored or echoed
U63 = Annotated[int, Meta(ge=0, le=INT64_MAX)]  # a Raft term, index or counter; a forward count
Name = Annotated[str, Meta(max_length=NAME_CHARS_MAX)]
Key = Union[I64, str]


class Init(msgspec.Struct, tag="init", tag_field="type"):
    msg_id: I64
    node_id: Name
    node_ids: list[Name]
    members: Union[list[Name], None] = None  # extension: the voters at start (absent: everyone)


class Members(msgspec.Struct, tag="members", tag_field="type"):
    """Extension: the committed configuration (`members_ok` with members and learners)."""

    msg_id: I64
    fwd: U63 = 0


class Reconfigure(msgspec.Struct, tag="reconfigure", tag_field="type"):
    """Extension: change the voters to `members` (`reconfigure_ok` once committed and in force)."""

    msg_id: I64
    members: list[Name]
    fwd: U63 = 0
    cont: bool = False  # handed on by a leader that lost leadership: steps may have been taken


class Read(msgspec.Struct, tag="read", tag_field="type"):
    msg_id: I64
    key: Key
    fwd: U63 = 0  # hops this request was forwarded (node to node)


class Write(msgspec.Struct, tag="write", tag_field="type"):
    msg_id: I64
    key: Key
    value: Raw
    fwd: U63 = 0


class Cas(msgspec.Struct, tag="cas", tag_field="type"):
    msg_id: I64
    key: Key
    frm: Raw = msgspec.field(name="from")
    to: Raw = msgspec.field()
    fwd: U63 = 0


class AE(msgspec.Struct, tag="ae", tag_field="type"):
    """AppendEntries: term, prev index/term, leader commit, entries as (term, raw data)."""

    term: U63
    pi: U63
    pt: U63
    c: U63
    e: list[tuple[U63, Raw]]


class AER(msgspec.Struct, tag="aer", tag_field="type"):
    """AppendEntries response: ok + match index, or the rejected prev index and the conflict hint."""

    term: U63
    ok: bool
    m: U63 = 0
    ri: U63 = 0
    ci: U63 = 0
    ct: Union[U63, None] = None


class HB(msgspec.Struct, tag="hb", tag_field="type"):
    term: U63
    c: U63
    rs: U63


class HBR(msgspec.Struct, tag="hbr", tag_field="type"):
    term: U63
    rs: U63


class RV(msgspec.Struct, tag="rv", tag_field="type"):
    term: U63
    li: U63
    lt: U63
    pre: bool
    tr: bool = False  # a campaign started by TimeoutNow (leadership transfer)


class RVR(msgspec.Struct, tag="rvr", tag_field="type"):
    term: U63
    g: bool
    pre: bool


class IS(msgspec.Struct, tag="is", tag_field="type"):
    """InstallSnapshot: the snapshot's last index/term, voters and size; one chunk (base64) at `o`."""

    term: U63
    li: U63
    lt: U63
    v: list[str]
    sz: U63
    o: U63
    d: bytes
    lr: list[str] = msgspec.field(default_factory=list)  # the snapshot's learners


class ISR(msgspec.Struct, tag="isr", tag_field="type"):
    """InstallSnapshot response: send from `o` on; `done`: the follower holds through `li`."""

    term: U63
    li: U63
    o: U63
    done: bool


class TN(msgspec.Struct, tag="tn", tag_field="type"):
    """TimeoutNow: the leader hands leadership to the receiver."""

    term: U63


Body = Union[Read, Write, Cas, Members, Reconfigure, AE, AER, HB, HBR, RV, RVR, IS, ISR, TN, Init]
CLIENT_BODIES = (Read, Write, Cas, Members, Reconfigure)
RAFT_BODIES = (AE, AER, HB, HBR, RV, RVR, IS, ISR, TN)
TYPE_NAMES = frozenset(("read", "write", "cas", "members", "reconfigure", "ae", "aer", "hb", "hbr", "rv",
                        "rvr", "is", "isr", "tn", "init"))
CLIENT_TYPES = ("read", "write", "cas", "members", "reconfigure", "init")  # a malformed one gets 12


class Envelope(msgspec.Struct):
    src: Name
    dest: Name
    body: Body


_decoder = msgspec.json.Decoder(Envelope)
decode_envelope = _decoder.decode  # raises one of DecodeError
# msgspec.DecodeError (incl. ValidationError), and UnicodeDecodeError for invalid UTF-8 in a string.
DecodeError = (msgspec.DecodeError, UnicodeDecodeError)
encode_struct = msgspec.json.encode  # splices Raw fields as they are
