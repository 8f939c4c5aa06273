"""Values compare as JSON values, as the Maelstrom jar's checker compares them (Clojure `=` on what
Cheshire parses), and a read returns the exact JSON that was written. Driven through bin/rast: each
row writes a value, tries a cas from another spelling, and reads back the bytes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rast_maelstrom import kv
from test_node_protocol import NodeProc, wait_leader

BIG = 2**70

# (stored value, cas "from", equal?) as the JSON text sent on the wire.
TABLE = [
    (b"1", b"1", True),
    (b"1", b"1.0", False),  # a long is not a double
    (b"1", b"true", False),
    (b"0", b"false", False),
    (b"true", b"true", True),
    (b"null", b"false", False),
    (b"1", b'"1"', False),
    (b"1.0", b"1.0", True),
    (b"1e2", b"100.0", True),  # both doubles
    (b"1E2", b"100", False),
    (b"0.0", b"-0.0", True),
    (b"-0", b"0", True),
    (b"0.1", b"0.1000000000000000055511151231257827", True),  # the same double
    (b"%d" % BIG, b"%d" % (BIG + 1), False),  # exact at any size (not rounded through a float)
    (b"%d" % BIG, b"%d" % BIG, True),
    (b"%d" % 10**40, b"1e40", False),
    (b"[1,2]", b"[1, 2]", True),
    (b"[1,2]", b"[1,2.0]", False),
    (b"[1,2]", b"[2,1]", False),
    (b"[1]", b"1", False),
    (b"[]", b"{}", False),
    (b'{"a":1,"b":[true,null]}', b'{ "b" : [true, null], "a" : 1 }', True),  # object key order is ignored
    (b'{"a":1}', b'{"a":1.0}', False),
    (b'{"a":1}', b'{"a":1,"b":2}', False),
    (b'{"a":1,"a":2}', b'{"a":2}', True),  # a repeated key keeps its last value
    (b'"A"', b'"\\u0041"', True),
    (b'"a"', b'"A"', False),
    (b'["i","1"]', b"1", False),
]


def test_cas_compares_json_values_as_the_checker_does_and_reads_return_the_bytes_written() -> None:
    n = NodeProc()
    try:
        n.init()
        wait_leader(n)
        wrong = []
        for i, (stored, frm, equal) in enumerate(TABLE):
            key = f"k{i}"
            n.send_raw(b'{"src":"c1","dest":"n0","body":{"type":"write","msg_id":%d,"key":"%s","value":%s}}'
                       % (3 * i + 1, key.encode(), stored))
            assert n.recv_reply(3 * i + 1)["body"]["type"] == "write_ok"
            n.send_raw(b'{"src":"c1","dest":"n0","body":{"type":"cas","msg_id":%d,"key":"%s","from":%s,"to":"new"}}'
                       % (3 * i + 2, key.encode(), frm))
            cas = n.recv_reply(3 * i + 2)["body"]
            n.send("c1", "n0", {"type": "read", "msg_id": 3 * i + 3, "key": key})
            n.recv_reply(3 * i + 3)
            read_line = n.lines[-1]
            expect_read = b'"new"' if equal else stored
            got_equal = cas["type"] == "cas_ok"
            if got_equal != equal or (not equal and cas.get("code") != kv.ERR_PRECONDITION_FAILED):
                wrong.append(f"{stored!r} vs {frm!r}: {cas}")
            if not read_line.endswith(b'"value":%s}}' % expect_read):
                wrong.append(f"{stored!r} read back as {read_line!r}")
        assert not wrong, "\n".join(wrong)
    finally:
        n.close()


@pytest.mark.parametrize("a, b, equal", TABLE)
def test_json_equal_is_symmetric_on_the_table(a: bytes, b: bytes, equal: bool) -> None:
    assert kv.json_equal(a, b) is equal and kv.json_equal(b, a) is equal


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=12,
)


def _int_to_float(v):
    """The same value with its first integer spelled as a float (`1` -> `1.0`): never equal."""
    if type(v) is int:
        return float(v), True
    if isinstance(v, list):
        for i, x in enumerate(v):
            y, done = _int_to_float(x)
            if done:
                return v[:i] + [y] + v[i + 1:], True
    if isinstance(v, dict):
        for k, x in v.items():
            y, done = _int_to_float(x)
            if done:
                return {**v, k: y}, True
    return v, False


@settings(max_examples=150, deadline=None)
@given(v=_json, data=st.data())
def test_any_respelling_is_equal_and_an_int_spelled_as_a_float_is_not(v, data) -> None:
    a = json.dumps(v).encode()
    keys = data.draw(st.randoms(use_true_random=False))
    def shuffled(x):
        if isinstance(x, dict):
            items = list(x.items())
            keys.shuffle(items)
            return {k: shuffled(y) for k, y in items}
        return [shuffled(y) for y in x] if isinstance(x, list) else x
    b = json.dumps(shuffled(v), indent=data.draw(st.sampled_from([None, 1])), ensure_ascii=True).encode()
    assert kv.json_equal(a, b) and kv.json_equal(b, a)
    w, changed = _int_to_float(v)
    if changed:
        c = json.dumps(w).encode()
        assert not kv.json_equal(a, c) and not kv.json_equal(c, a)
