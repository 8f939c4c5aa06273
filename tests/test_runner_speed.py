"""The runner's fast paths (issue 14, item 3) decide exactly what the checked paths decide:
a chunk of node lines routed in one call gives the same ids, journal, deliveries, counts and
stopping point as line-by-line routing through the full envelope parser; a node process stops
reading at a bad line inside a chunk and reports the lines up to it; the completion fast path for
well-formed success replies gives the same records as the checked one."""
from __future__ import annotations

import io
import os
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
    # the fast path's own edges: unhashable or non-string ids, three keys but not those three
    b'{"src":["n0"],"dest":"n1","body":{}}',
    b'{"src":"n0","dest":{"n1":1},"body":{}}',
    b'{"src":"n0","dest":1,"body":{}}',
    b'{"src":true,"dest":"n1","body":{}}',
    b'{"dest":"n1","body":{},"id":1}',
    b'{"body":{},"dest":"n1","src":"n0"}',
    b'"n0"',
    b'null',
    b'7',
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
            assert _ns_zeroed(out_a.getvalue()) == _ns_zeroed(out_b.getvalue())
        # the one-line entry point says the same
        if lines:
            _, one, _, _ = _network(journal)
            assert one.on_node_line("n0", lines[0]) == reference_route(
                _network(journal)[1], "n0", lines[0])
    finally:
        loop_a.close()
        loop_b.close()


def _one_node(tmp_path, script: str):
    """A Python child `script` as node n0 on a fresh network, and the bodies client c7 receives."""
    loop = Loop()
    net = Network(loop)
    got: list = []
    proc = NodeProcess(loop, "n0", [sys.executable, "-c", script], tmp_path / "n0.log")
    connect_to_network(loop, net, [proc])
    net.register_client(CLIENT, lambda src, body: got.append(body))
    return loop, net, proc, got


def test_a_node_process_stops_at_a_bad_line_inside_a_chunk_and_keeps_the_lines_up_to_it(tmp_path):
    chunk = (b'{"src":"n0","dest":"c7","body":{"a":1}}\n'
             b'{"src":"n0","dest":"c7","body":{"a":2}}\n'
             b'not json\n'
             b'{"src":"n0","dest":"c7","body":{"a":3}}\n')
    script = ("import os, time\n"
              f"os.write(1, {chunk!r})\n"
              "time.sleep(30)\n")
    loop, net, proc, got = _one_node(tmp_path, script)
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


# -- op lines of jepsen.log without the logging machinery -----------------------------------------
import logging  # noqa: E402
import re  # noqa: E402

from rast_maelstrom.harness import oplog  # noqa: E402
from rast_maelstrom.harness.runner import BufferedFileHandler, JarLogFormatter  # noqa: E402
from rast_maelstrom.harness.workload import History  # noqa: E402

_STAMP = re.compile(rb"^INFO \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] ")


def _ops_into(history: History) -> None:
    history.append("invoke", 3, "write", [0, 2])
    history.append("ok", 3, "write", [0, 2])
    history.append("invoke", 4, "cas", [1, [0, 1]])
    history.append("fail", 4, "cas", [1, [0, 1]], error=["precondition-failed", "no: 'x' \"y\" %s"])
    history.append("info", "nemesis", "start-partition", {"n1": ["n0"]})
    history.append("info", 9, "read", [0, None], error="net-timeout")


def _jepsen_log(tmp_path, name: str, fast: bool, monkeypatch) -> bytes:
    # pytest's own capture handlers sit on the root logger; this run has only its file handler
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.INFO)
    handler = BufferedFileHandler(tmp_path / name)
    handler.setFormatter(JarLogFormatter())
    root.addHandler(handler)
    try:
        history = History(Loop(), None, threads=5)
        assert history.write_ops_to(handler if fast else None) is fast
        _ops_into(history)
    finally:
        root.removeHandler(handler)
        handler.close()
    return (tmp_path / name).read_bytes()


def test_op_lines_written_directly_are_the_lines_logging_writes(tmp_path, monkeypatch):
    slow = _jepsen_log(tmp_path, "slow.log", False, monkeypatch)
    fast = _jepsen_log(tmp_path, "fast.log", True, monkeypatch)
    assert len(fast.splitlines()) == 6
    for line in fast.splitlines():
        assert _STAMP.match(line), line
    assert [_STAMP.sub(b"", x) for x in fast.splitlines()] == [
        _STAMP.sub(b"", x) for x in slow.splitlines()]
    assert b"jepsen worker 3 - jepsen.util 3\t:invoke\t:write\t[0 2]" in fast
    assert b"jepsen nemesis - jepsen.util :nemesis\t:info\t:start-partition" in fast


def test_the_direct_path_is_off_when_another_handler_would_see_op_lines(tmp_path, monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.INFO)
    handler = BufferedFileHandler(tmp_path / "j.log")
    handler.setFormatter(JarLogFormatter())
    root.addHandler(handler)

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__()
            self.seen: list[str] = []

        def emit(self, record):
            self.seen.append(record.getMessage())
    console = Collect()
    console.addFilter(lambda record: record.name != "jepsen.util")   # as the console's
    root.addHandler(console)
    try:
        history = History(Loop(), None, threads=5)
        assert history.write_ops_to(handler)            # the console drops op lines: fast
        history.append("invoke", 0, "read", [0, None])
        late = Collect()
        root.addHandler(late)                            # e.g. a test's capture, added later
        history.append("invoke", 1, "read", [0, None])
        assert late.seen == ["1\t:invoke\t:read\t[0 nil]"] and console.seen == []
        assert not history.write_ops_to(handler)        # another handler takes op lines: slow
        history.append("invoke", 2, "read", [0, None])
        assert late.seen[-1] == "2\t:invoke\t:read\t[0 nil]" and console.seen == []
        assert oplog.fast_op_sink(None) is None
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        handler.close()
    lines = (tmp_path / "j.log").read_text().splitlines()
    assert [x.split(" - ", 1)[1] for x in lines] == [
        f"jepsen.util {i}\t:invoke\t:read\t[0 nil]" for i in range(3)]


def test_stdin_back_pressure_waits_for_writability_and_stops_waiting_once_drained(tmp_path):
    line = b"x" * 999
    count = 300                       # 300 kB: more than a pipe holds
    script = ("import sys, time\n"
              "time.sleep(0.5)\n"
              f"data = sys.stdin.buffer.read({(count + 1) * (len(line) + 1)})\n"
              "sys.stdout.write('{\"src\":\"n0\",\"dest\":\"c7\",\"body\":{\"n\":%d}}\\n' % len(data))\n"
              "sys.stdout.flush()\n"
              "time.sleep(30)\n")
    loop, net, proc, got = _one_node(tmp_path, script)
    try:
        proc.start()
        for _ in range(count):
            proc.deliver(line)
        proc.flush()
        stdin_fd = proc.proc.stdin.fileno()
        assert proc._out and proc._stdin_writer_on        # the pipe is full: wait to write
        writes = []
        real_write = os.write
        try:   # while it waits, delivering more does not try the full pipe again
            os.write = lambda fd, data: writes.append(fd) or real_write(fd, data)
            proc.deliver(line)
        finally:
            os.write = real_write
        assert stdin_fd not in writes
        assert loop.callbacks(stdin_fd)[1] is not None
        assert loop.run_until(lambda: got, loop.now_ns() + 20 * 10**9)
        assert got == [{"n": (count + 1) * (len(line) + 1)}]
        assert not proc._out and not proc._stdin_writer_on
        assert loop.callbacks(stdin_fd) is None      # no busy wakeups on a drained pipe
    finally:
        proc.kill()
        proc.close()
        loop.close()


def test_a_failing_op_line_write_is_reported_as_logging_reports_it_and_the_run_goes_on(
        tmp_path, monkeypatch, capsys):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.INFO)
    monkeypatch.setattr(logging, "raiseExceptions", True)
    handler = BufferedFileHandler(tmp_path / "j.log")
    handler.setFormatter(JarLogFormatter())
    root.addHandler(handler)
    try:
        history = History(Loop(), None, threads=5)
        assert history.write_ops_to(handler)
        handler.stream.close()                     # e.g. the disk went away
        op = history.append("invoke", 1, "read", [0, None])
        assert op["index"] == 0 and history.counts["invoke"] == 1
    finally:
        root.removeHandler(handler)
    assert "--- Logging error ---" in capsys.readouterr().err


# -- a client's request from bytes, and the inline client paths, against the general path ----------
def _ns_zeroed(journal: bytes) -> bytes:
    return re.sub(rb'"ns":\d+', b'"ns":0', journal)


def reference_send_body(net: Network, src: str, dest: str, body: dict) -> int:
    """`send_body` as it was before its inline paths: encode the message, then `_send`."""
    inbox = net.inboxes[dest]
    mid = net.next_id
    net.next_id = mid + 1
    framed = orjson.dumps({"id": mid, "src": src, "dest": dest, "body": body})
    net._send(mid, src, inbox, body if inbox.client else framed, framed)
    return mid


_json_bodies = st.dictionaries(st.sampled_from(["type", "msg_id", "key", "value", "from", "to",
                                                "é\"x"]),
                               st.one_of(st.integers(-5, 10**12), st.text(max_size=3), st.none(),
                                         st.lists(st.integers(0, 4), max_size=2)), max_size=5)
_steps = st.lists(st.one_of(
    st.tuples(st.just("request"), st.sampled_from(NODES), _json_bodies),
    st.tuples(st.just("reply"), st.sampled_from(NODES), _json_bodies),
    st.tuples(st.just("partition"), st.sampled_from(NODES), st.booleans()),
    st.tuples(st.just("block"), st.sampled_from(NODES), st.booleans()),
    st.tuples(st.just("down"), st.sampled_from(NODES), st.booleans()),
), max_size=25)


@settings(max_examples=300, deadline=None)
@given(_steps, st.booleans(), st.booleans())
def test_requests_from_bytes_and_inline_replies_match_the_general_path(steps, journal, log_recv):
    """A client's request sent as bytes (`send_json`, as the benchmark's clients send) and a
    node's reply to a client (routed inline) give the ids, deliveries, counts and journal bytes of
    the general path, with partitions, a blocked stdin, a node down and the recv log in play."""
    nets = []
    for _ in range(2):
        loop = Loop()
        out = io.BytesIO() if journal else None
        net = Network(loop, journal=out, log_recv=log_recv)
        got: list = []
        blocked = {node: False for node in NODES}
        for node in NODES:
            net.register_node(node, lambda framed, node=node: got.append((node, framed)),
                              lambda node=node, b=blocked: b[node])
        net.register_client(CLIENT, lambda src, body: got.append((CLIENT, src, body)))
        nets.append((loop, net, out, got, blocked))
    try:
        for kind, node, arg in steps:
            for side, (loop, net, out, got, blocked) in enumerate(nets):
                if kind == "request":
                    if side == 0:
                        net.send_json(CLIENT, node, orjson.dumps(arg))
                    else:
                        reference_send_body(net, CLIENT, node, arg)
                elif kind == "reply":
                    line = orjson.dumps({"src": node, "dest": CLIENT, "body": arg})
                    if side == 0:
                        assert net.on_node_lines(node, [line]) == 1
                    else:
                        assert reference_route(net, node, line)
                elif kind == "partition":
                    if arg:
                        net.drop_grudge({node: [CLIENT], CLIENT: [node]})
                    else:
                        net.heal()
                elif kind == "block":
                    blocked[node] = arg
                    if not arg:
                        net.resume(node)
                else:
                    net.set_node_down(node, arg)
        (_, a, out_a, got_a, _), (_, b, out_b, got_b, _) = nets
        assert got_a == got_b
        assert a.stats() == b.stats() and a.next_id == b.next_id
        assert a.drop_count == b.drop_count and a.down_drop_count == b.down_drop_count
        if journal:   # the same bytes, but for the clock's readings
            assert _ns_zeroed(out_a.getvalue()) == _ns_zeroed(out_b.getvalue())
    finally:
        for loop, *_ in nets:
            loop.close()


def test_send_body_to_a_node_writes_the_bytes_it_wrote_before():
    loop = Loop()
    out = io.BytesIO()
    net = Network(loop, journal=out)
    got: list = []
    net.register_node("n0", got.append)
    net.register_client(CLIENT, lambda src, body: None)
    body = {"type": "cas", "msg_id": 3, "key": "k\u00e9", "from": [1, None], "to": 2.5}
    try:
        assert net.send_body(CLIENT, "n0", body) == 0
        assert net.send_json(CLIENT, "n0", orjson.dumps(body)) == 1
        expected = [orjson.dumps({"id": i, "src": CLIENT, "dest": "n0", "body": body})
                    for i in (0, 1)]
        assert got == expected
        lines = out.getvalue().splitlines()
        assert [orjson.loads(x)["t"] for x in lines] == ["send", "recv", "send", "recv"]
        assert lines[0].endswith(b',"msg":' + expected[0] + b"}")
    finally:
        loop.close()


def test_history_lines_are_the_bytes_the_keyword_path_wrote():
    """History.append with its explicit node/error/exception writes what the old `**extra` loop
    wrote: the extras that are not None, in that order, after the six fixed fields."""
    out = io.BytesIO()
    loop = Loop()
    history = History(loop, out, threads=2)
    calls = [("invoke", 0, "read", [0, None], "n0", None, None),
             ("ok", 0, "read", [0, 3], "n0", None, None),
             ("fail", 1, "cas", [0, [1, 2]], "n1", ["precondition-failed", "x"], None),
             ("info", 2, "write", [1, 4], "n0", "indeterminate: x", {"class": "c", "body": {}}),
             ("info", "nemesis", "start-partition", {"n0": ["n1"]}, None, None, None)]
    try:
        ops = [history.append(t, p, f, v, node=n, error=e, exception=x)
               for t, p, f, v, n, e, x in calls]
    finally:
        loop.close()
    expected = []
    for index, ((t, p, f, v, n, e, x), op) in enumerate(zip(calls, ops)):
        ref = {"index": index, "time": op["time"], "type": t, "process": p, "f": f, "value": v}
        for k, val in (("node", n), ("error", e), ("exception", x)):
            if val is not None:
                ref[k] = val
        assert op == ref and list(op) == list(ref)
        expected.append(orjson.dumps(ref) + b"\n")
    assert out.getvalue() == b"".join(expected)
    assert history.counts == {"invoke": 1, "ok": 1, "fail": 1, "info": 1}


def test_a_node_gets_its_stdin_once_a_few_kilobytes_wait_without_waiting_for_the_pass(tmp_path):
    """deliver() writes the buffered lines as soon as `stdin_flush_bytes` are waiting (the node
    starts on them while the router routes the rest of its chunk); less waits for the pass end."""
    from rast_maelstrom.harness import process
    script = ("import os, sys\n"
              "data = b''\n"
              "while data.count(b'\\n') < 5:\n"
              "    data += os.read(0, 1 << 16)\n"
              "sys.stdout.write('{\"src\":\"n0\",\"dest\":\"c7\",\"body\":{\"n\":%d}}\\n' % len(data))\n"
              "sys.stdout.flush()\n"
              "os.read(0, 1)\n")
    loop, net, proc, got = _one_node(tmp_path, script)
    line = b"x" * 999
    try:
        proc.start()
        proc.eager = False    # under heavy load (light load writes the first at once: below)
        for _ in range(4):
            proc.deliver(line)
        assert len(proc._out) == 4000 < process.stdin_flush_bytes    # still buffered
        proc.deliver(line)
        assert not proc._out                                          # written at once
        assert loop.run_until(lambda: got, loop.now_ns() + 20 * 10**9)
        assert got == [{"n": 5000}]
    finally:
        proc.kill()
        proc.close()
        loop.close()


def test_under_light_load_a_nodes_messages_are_written_at_once(tmp_path):
    """After a pass that delivered at most `eager_pass_messages_max` messages, each message of
    the next pass goes to the node's stdin at once; after a busier pass they wait for the pass
    end (or `stdin_flush_bytes`), so the nodes' batches stay whole under load."""
    from rast_maelstrom.harness import process
    script = ("import os, sys\n"
              "data = b''\n"
              "while not data.endswith(b'd\\n'):\n"
              "    data += os.read(0, 1 << 16)\n"
              "sys.stdout.write('{\"src\":\"n0\",\"dest\":\"c7\",\"body\":{\"n\":%d}}\\n' % len(data))\n"
              "sys.stdout.flush()\n"
              "os.read(0, 1)\n")
    loop, net, proc, got = _one_node(tmp_path, script)
    writes = []
    real_write = os.write
    try:
        proc.start()
        stdin_fd = proc.proc.stdin.fileno()
        os.write = lambda fd, data: writes.append((fd, bytes(data))) or real_write(fd, data)
        assert proc.eager                                  # a fresh process: light load
        proc.deliver(b"a")
        proc.deliver(b"b")
        assert writes == [(stdin_fd, b"a\n"), (stdin_fd, b"b\n")] and not proc._out
        process.end_pass([proc])                           # 2 delivered: light
        assert proc.eager and proc.batch == 0
        proc.eager = False
        for i in range(process.eager_pass_messages_max + 1):   # one over the bound
            proc.deliver(b"c")
        assert len(writes) == 2 and len(proc._out) == 2 * (process.eager_pass_messages_max + 1)
        process.end_pass([proc])                           # heavy: written now, in one write
        assert len(writes) == 3 and not proc._out and not proc.eager
        proc.deliver(b"d")
        assert proc._out == b"d\n" and len(writes) == 3    # heavy load: buffered
        process.end_pass([proc])
        assert proc.eager and writes[-1] == (stdin_fd, b"d\n")   # one message: light again
        os.write = real_write
        assert loop.run_until(lambda: got, loop.now_ns() + 20 * 10**9)
        assert got == [{"n": 6 + 2 * (process.eager_pass_messages_max + 1)}]   # all, in order
    finally:
        os.write = real_write
        proc.kill()
        proc.close()
        loop.close()
