"""The node's hot-path byte templates (replies, forwards, AppendEntries and its acknowledgement,
heartbeats) make exactly the bytes the generic envelope encoder makes of the same message, for any
name (quotes, backslashes, non-ASCII) and any 64-bit counter, so a peer or Maelstrom cannot tell
them apart."""

from __future__ import annotations

import orjson
import pytest

from rast_maelstrom import node
from rast_maelstrom.core import AppendEntries, AppendResponse, Heartbeat, HeartbeatResponse
from rast_maelstrom.wire import codec
from rast_maelstrom.wire.codec import encode, encode_body, name_json

NAMES = ["n0", "c12", 'we"ird', "back\\slash", "ünï\u2028code", "tab\there", ""]
BIG = (1 << 63) - 1


@pytest.mark.parametrize("src,dest", [(a, b) for a in NAMES for b in NAMES[:3]])
def test_raft_templates_equal_the_generic_encoding(src: str, dest: str) -> None:
    entries = [(2, b'["w",1,2,"c1",3]'), (BIG, b"null"), (3, b'["c","k",{"a":[1]},"\\u00e9","c\\"q",9]')]
    cases = [
        (AppendEntries(src, dest, 7, 5, 2, entries, BIG),
         {"type": "ae", "term": 7, "pi": 5, "pt": 2, "c": BIG,
          "e": [[t, orjson.Fragment(d)] for t, d in entries]}),  # the stored bytes, as they are
        (AppendEntries(src, dest, 1, 0, 0, [], 0),
         {"type": "ae", "term": 1, "pi": 0, "pt": 0, "c": 0, "e": []}),
        (AppendResponse(src, dest, BIG, True, match_index=BIG),
         {"type": "aer", "term": BIG, "ok": True, "m": BIG}),
        (Heartbeat(src, dest, 3, 4, BIG), {"type": "hb", "term": 3, "c": 4, "rs": BIG}),
        (HeartbeatResponse(src, dest, 3, 0), {"type": "hbr", "term": 3, "rs": 0}),
    ]
    for msg, body in cases:
        line = node._encode_raft(msg)
        assert line == encode(src, dest, body), msg
        assert orjson.loads(line) == orjson.loads(encode(src, dest, body))


@pytest.mark.parametrize("src,dest", [(a, b) for a in NAMES[:3] for b in NAMES])
def test_reply_templates_equal_the_generic_encoding(src: str, dest: str) -> None:
    s, d = name_json(src), name_json(dest)
    for msg_id in (0, 1, BIG, -(1 << 63)):
        assert node._WRITE_OK % (s, d, msg_id) == encode(src, dest, {"type": "write_ok", "in_reply_to": msg_id})
        assert node._CAS_OK % (s, d, msg_id) == encode(src, dest, {"type": "cas_ok", "in_reply_to": msg_id})
        for value in (b"1", b'"x\\"y"', b'{"a":[1,2.5,null]}', b"-0"):
            assert node._READ_OK % (s, d, msg_id, value) == encode(
                src, dest, {"type": "read_ok", "in_reply_to": msg_id, "value": orjson.Fragment(value)})
    body = b'{"type":"write","msg_id":3,"key":"k","value":[1],"fwd":1}'
    assert encode_body(src, dest, body) == encode(src, dest, orjson.Fragment(body))


def test_name_cache_is_bounded() -> None:
    codec._NAME_JSON.clear()
    for i in range(codec.NAME_JSON_MAX + 10):
        assert name_json(f"c{i}") == orjson.dumps(f"c{i}")
        assert len(codec._NAME_JSON) <= codec.NAME_JSON_MAX
