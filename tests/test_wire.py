"""The wire layer: line framing under arbitrary chunking, the oversized-line bound, the typed schema,
and the encoded-once property (an entry's bytes survive leader -> wire -> follower unchanged)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rast_maelstrom import kv
from rast_maelstrom.core import AppendEntries
from rast_maelstrom.node import _decode_raft, _encode_raft
from rast_maelstrom.wire import schema
from rast_maelstrom.wire.codec import LineSplitter, MalformedMessage, diagnose


@given(
    lines=st.lists(st.binary(min_size=0, max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=20),
)
def test_any_chunking_yields_the_same_lines(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(ln + b"\n" for ln in lines)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    sp = LineSplitter()
    out: list[bytes] = []
    for c in chunks:
        if c:
            out.extend(sp.feed(c))
    assert out == lines and sp.pending() == b"" and sp.oversized == 0


def test_an_oversized_line_is_skipped_whole_even_across_chunks() -> None:
    sp = LineSplitter(line_bytes_max=10)
    got = sp.feed(b"ok1\n" + b"x" * 8) + sp.feed(b"y" * 8) + sp.feed(b"z" * 50) + sp.feed(b"tail\nok2\n")
    assert got == [b"ok1", b"ok2"] and sp.oversized == 1
    assert sp.feed(b"a" * 11 + b"\nb\n") == [b"b"] and sp.oversized == 2


@pytest.mark.parametrize(
    "line, why",
    [
        (b"nope", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"src":"c1","dest":5,"body":{}}', "src and dest"),
        (b'{"src":"c1","dest":"n0","body":3}', "body must be"),
        (b'{"src":"c1","dest":"n0","body":{"msg_id":1}}', "type"),
    ],
)
def test_diagnose_says_what_is_wrong(line: bytes, why: str) -> None:
    with pytest.raises(MalformedMessage, match=why):
        diagnose(line)


def test_typed_decoding_keeps_client_values_as_the_bytes_sent() -> None:
    env = schema.decode_envelope(
        b'{"id":9,"src":"c3","dest":"n1","body":{"type":"cas","msg_id":4,"key":"k","from":[1, {"a":2}],"to":null}}'
    )
    body = env.body
    assert type(body) is schema.Cas and env.src == "c3" and body.key == "k"
    assert bytes(body.frm) == b'[1, {"a":2}]' and bytes(body.to) == b"null"
    assert kv.encode_cas(body.key, body.frm, body.to) == b'["c","k",[1, {"a":2}],null]'


@pytest.mark.parametrize(
    "body",
    [
        {"type": "read", "msg_id": 1, "key": True},  # a bool is not a key
        {"type": "read", "msg_id": 1, "key": 1.5},
        {"type": "write", "msg_id": 1, "key": 1},  # no value
        {"type": "ae", "term": 1, "pi": 0, "pt": 0, "c": 0, "e": [[1]]},
        {"type": "frob", "msg_id": 1},
    ],
)
def test_the_schema_refuses_what_does_not_fit(body: dict) -> None:
    with pytest.raises(schema.DecodeError):
        schema.decode_envelope(orjson.dumps({"src": "c1", "dest": "n0", "body": body}))


def test_entries_are_encoded_once_leader_bytes_reach_the_follower_unchanged() -> None:
    cmds = [kv.encode_write(1, b"[1, 2,3]"), kv.encode_cas("x", b'{"b": 1, "a": 2}', b"4"), kv.NOOP]
    ae = AppendEntries("n0", "n1", 3, 7, 2, [(3, c) for c in cmds], 6)
    line = _encode_raft(ae).rstrip(b"\n")
    for c in cmds:
        assert c in line  # spliced, not re-encoded (key order and spacing kept)
    env = schema.decode_envelope(line)
    got = _decode_raft(env.src, env.dest, env.body)
    assert got == ae
    assert [d for _, d in got.entries] == cmds
