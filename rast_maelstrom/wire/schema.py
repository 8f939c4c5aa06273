"""The node's wire schema: every message body Rast understands, as typed msgspec Structs.

Owns: the shapes of client requests (Maelstrom's lin-kv RPCs and `init`) and of Raft's peer
messages, and the one-pass typed decoder for an incoming line. Decoding is lazy where it pays:
client values (`value`, `from`, `to`) and log entries' data stay `msgspec.Raw` — the exact bytes
of the line — so a command is spliced into the log from the bytes it arrived in, and a follower
writes the entry bytes it received to its WAL as they came (the bytes on the wire are the bytes on
disk). Unknown envelope keys (the network's `id`) and unknown body keys are skipped, not built.

A line that does not fit the schema raises; `codec.diagnose` then says why, for the error reply.

May not touch: Raft rules, IO. Field names on the Raft messages are short because every one of
them is on the hot path.
"""

from __future__ import annotations

from typing import Union

import msgspec
from msgspec import Raw

Key = Union[int, str]


class Init(msgspec.Struct, tag="init", tag_field="type"):
    msg_id: int
    node_id: str
    node_ids: list[str]


class Read(msgspec.Struct, tag="read", tag_field="type"):
    msg_id: int
    key: Key
    fwd: int = 0  # hops this request was forwarded (node to node)


class Write(msgspec.Struct, tag="write", tag_field="type"):
    msg_id: int
    key: Key
    value: Raw
    fwd: int = 0


class Cas(msgspec.Struct, tag="cas", tag_field="type"):
    msg_id: int
    key: Key
    frm: Raw = msgspec.field(name="from")
    to: Raw = msgspec.field()
    fwd: int = 0


class AE(msgspec.Struct, tag="ae", tag_field="type"):
    """AppendEntries: term, prev index/term, leader commit, entries as (term, raw data)."""

    term: int
    pi: int
    pt: int
    c: int
    e: list[tuple[int, Raw]]


class AER(msgspec.Struct, tag="aer", tag_field="type"):
    """AppendEntries response: ok + match index, or the rejected prev index and the conflict hint."""

    term: int
    ok: bool
    m: int = 0
    ri: int = 0
    ci: int = 0
    ct: Union[int, None] = None


class HB(msgspec.Struct, tag="hb", tag_field="type"):
    term: int
    c: int
    rs: int


class HBR(msgspec.Struct, tag="hbr", tag_field="type"):
    term: int
    rs: int


class RV(msgspec.Struct, tag="rv", tag_field="type"):
    term: int
    li: int
    lt: int
    pre: bool


class RVR(msgspec.Struct, tag="rvr", tag_field="type"):
    term: int
    g: bool
    pre: bool


Body = Union[Read, Write, Cas, AE, AER, HB, HBR, RV, RVR, Init]
CLIENT_BODIES = (Read, Write, Cas)
RAFT_BODIES = (AE, AER, HB, HBR, RV, RVR)
TYPE_NAMES = frozenset(("read", "write", "cas", "ae", "aer", "hb", "hbr", "rv", "rvr", "init"))


class Envelope(msgspec.Struct):
    src: str
    dest: str
    body: Body


_decoder = msgspec.json.Decoder(Envelope)
decode_envelope = _decoder.decode  # raises msgspec.DecodeError (incl. ValidationError)
DecodeError = msgspec.DecodeError
encode_struct = msgspec.json.encode  # splices Raw fields as they are
