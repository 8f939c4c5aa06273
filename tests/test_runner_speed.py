"""The runner's fast paths (issue 14, item 3) decide exactly what the checked paths decide:
a chunk of node lines routed in one call gives the same ids, journal, deliveries, counts and
stopping point as line-by-line routing through the full envelope parser; a node process stops
reading at a bad line inside a chunk and reports the lines up to it; the completion fast path for
well-formed success replies gives the same records as the checked one."""
from __future__ import annotations

import io
import sys
import time

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from rast_maelstrom.harness.eventloop import Loop
from rast_maelstrom.harness.network import BadLine, Network, parse_envelope_lenient
from rast_maelstrom.harness.process import NodeProcess, connect_to_network
from rast_maelstrom.harness.workload import complete_op, complete_op_checked

NODES = ("n0", "n1")
CLIENT = "c7"

LINES = [
    b'{"src":"n0","dest":"n1","body":{"k":1}}',
    b'{"src":"n0","dest":"c7","body":{"type":"read_ok","value":3,"in_reply_to":1}}',
    b'  {"dest":"n0","src":"n1","body":{}}\r',
    b'{"src":"n0","dest":"n1","body":{"k":2},"id":99}',
    b'{"src":"n0","dest":"c7","body":null}',
    b'{"src":"n0","dest":"n1"}',
    b'[["src","n0"],["dest","n1"],["body",[["a",1]]]]',
    b'{"src":"n0","dest":"n1","body":[["type","x"]]}',
    b'{"src":"n0","dest":"n1","body":{},"extra":1}',
    b'{"src":"n0","dest":"n9","body":{}}',
    b'{"src":"n9","dest":"n1","body":{}}',
    b'{"src":1,"dest":"n1","body":{}}',
    b'{"src":"n0","dest":"n1","body":{},"id":"x"}',
    b'{"src":"n0","dest":"n1","body":5}',
    b'{"src":"n0","dest":"n1","body":{}',
    b'garbage',
    b'',
    b'[1,2]',
]


def reference_route(net: Network, node_id: str, line: bytes) -> bool:
    """The line-by-line routing the runner had before its fast path (full parse, always framed)."""
    try:
        msg, rewritten = parse_envelope_lenient(line)
        if msg["src"] not in net.inboxes or msg["dest"] not in net.inboxes:
            raise BadLine("unregistered")
    except BadLine:
        return False
    mid = net.next_id
    net.next_id = mid + 1
    inbox = net.inboxes[msg["dest"]]
    if "id" in msg or rewritten:
        msg["id"] = mid
        framed = orjson.dumps(msg)
    else:
        framed = b'{"id":%d,%s' % (mid, line.strip()[1:])
    net._send(mid, msg["src"], inbox, msg["body"] if inbox.client else framed, framed)
    return True


def _network(journal: bool):
    loop = Loop()
    out = io.BytesIO() if journal else None
    net = Network(loop, journal=out)
    got: list = []
    for node in NODES:
        net.register_node(node, lambda framed, node=node: got.append((node, framed)))
    net.register_client(CLIENT, lambda src, body: got.append((CLIENT, src, body)))
    return loop, net, out, got


def _without_times(journal: bytes) -> list:
    entries = [orjson.loads(x) for x in journal.splitlines()]
    for e in entries:
        e.pop("ns", None)
    return entries


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(LINES), max_size=12), st.booleans())
def test_a_chunk_routed_at_once_matches_line_by_line_routing(lines, journal):
    loop_a, fast, out_a, got_a = _network(journal)
    loop_b, ref, out_b, got_b = _network(journal)
    try:
        routed = fast.on_node_lines("n0", lines)
        expected = 0
        for line in lines:
            if not reference_route(ref, "n0", line):
                break
            expected += 1
        assert routed == expected
        assert got_a == got_b
        assert fast.stats() == ref.stats() and fast.next_id == ref.next_id
        if journal:
            assert _without_times(out_a.getvalue()) == _without_times(out_b.getvalue())
        # the one-line entry point says the same
        if lines:
            _, one, _, _ = _network(journal)
            assert one.on_node_line("n0", lines[0]) == reference_route(
                _network(journal)[1], "n0", lines[0])
    finally:
        loop_a.close()
        loop_b.close()


def test_a_node_process_stops_at_a_bad_line_inside_a_chunk_and_keeps_the_lines_up_to_it(tmp_path):
    chunk = (b'{"src":"n0","dest":"c7","body":{"a":1}}\n'
             b'{"src":"n0","dest":"c7","body":{"a":2}}\n'
             b'not json\n'
             b'{"src":"n0","dest":"c7","body":{"a":3}}\n')
    script = ("import os, time\n"
              f"os.write(1, {chunk!r})\n"
              "time.sleep(30)\n")
    loop = Loop()
    net = Network(loop)
    got = []
    proc = NodeProcess(loop, "n0", [sys.executable, "-c", script], tmp_path / "n0.log")
    connect_to_network(loop, net, [proc])
    net.register_client(CLIENT, lambda src, body: got.append(body))
    try:
        proc.start()
        assert loop.run_until(lambda: proc.stdout_bad, loop.now_ns() + 20 * 10**9)
        loop.run_until(lambda: False, loop.now_ns() + 200 * 10**6)   # nothing more is read
        assert got == [{"a": 1}, {"a": 2}]
        assert list(proc.stdout_lines)[-1] == b"not json"
        assert len(proc.stdout_lines) == 3
        assert net.next_id == 2
    finally:
        t0 = time.monotonic()
        proc.kill()
        proc.close()
        loop.close()
        assert proc.proc.poll() is not None and time.monotonic() - t0 < 10


_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=2),
                    st.lists(st.integers(0, 4), max_size=2))
_bodies = st.one_of(
    st.none(), st.integers(), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["type", "in_reply_to", "value", "msg_id", "code", "text",
                                     "extra"]),
                    st.one_of(_values, st.sampled_from(["read_ok", "write_ok", "cas_ok",
                                                        "error"])), max_size=5),
    st.fixed_dictionaries({"type": st.sampled_from(["read_ok", "write_ok", "cas_ok"]),
                           "in_reply_to": st.one_of(st.integers(0, 9), st.booleans())},
                          optional={"value": _values, "msg_id": _values, "extra": _values}),
)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(["read", "write", "cas"]), _bodies, st.booleans())
def test_the_completion_fast_path_gives_the_checked_paths_records(f, body, copied):
    value = {"read": [0, None], "write": [0, 3], "cas": [0, [1, 2]]}[f]
    assert complete_op(f, value, body, copied) == complete_op_checked(f, value, body, copied)
