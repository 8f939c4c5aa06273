"""Unit tests (virtual time, no processes) of the places where maelstrom-py follows the jar to the
letter (issue 13): op choice under load, error replies, envelope leniency."""
from __future__ import annotations

import random

import orjson
import pytest

from rast_maelstrom.harness.network import BadLine, Network, parse_envelope
from rast_maelstrom.harness.workload import History, Workload, complete_op

from test_runner_units import MS, S, VirtualLoop


class _ReadsOnlyKV:
    """Answers reads after `read_delay_ns`; writes and cas after `write_delay_ns` (None: never)."""

    def __init__(self, loop, read_delay_ns, write_delay_ns):
        self.loop, self.clients = loop, {}
        self.read_delay_ns, self.write_delay_ns = read_delay_ns, write_delay_ns

    def register_client(self, cid, cb):
        self.clients[cid] = cb

    def unregister(self, cid):
        self.clients.pop(cid, None)

    def send_body(self, src, dest, body):
        t = body["type"]
        delay = self.read_delay_ns if t == "read" else self.write_delay_ns
        if delay is None:
            return
        reply = {"type": "read_ok", "value": None} if t == "read" else {"type": f"{t}_ok"}
        reply["in_reply_to"] = body["msg_id"]
        self.loop.call_later(delay, self.clients[src], dest, reply)


def _run(read_delay_ns, write_delay_ns, rate, seconds, nemesis_every_ns=None):
    loop = VirtualLoop()
    hist = History(loop, None)
    ops = []
    orig = hist.append
    hist.append = lambda *a, **k: ops.append(orig(*a, **k)) or ops[-1]
    wl = Workload(loop, _ReadsOnlyKV(loop, read_delay_ns, write_delay_ns), hist,
                  random.Random(7), nodes=["n0", "n1", "n2"], concurrency=6, rate=rate,
                  timeout_ms=1000, first_client_index=6)
    wl.open()
    if nemesis_every_ns:
        def nemesis():
            ops.append({"nemesis": True})
            wl.note_nemesis_op()
            loop.call_later(nemesis_every_ns, nemesis)
        loop.call_later(nemesis_every_ns, nemesis)
    wl.start(seconds * S)
    loop.run_for(seconds * S + 2 * S)
    return ops


def test_each_op_goes_to_the_first_free_thread_of_its_range_after_the_rotating_index():
    # Everything answers in 0.1 ms and slots are ~100 ms apart: every thread is free at each slot,
    # so the thread is fixed by the jar's rule: the rotating index (one step per op, nemesis ops
    # included, modulo 6 threads + the nemesis), then the first thread of the op's range
    # (readers 0-2, writers 3-5) at or after it, wrapping round.
    ops = _run(MS // 10, MS // 10, rate=10, seconds=60, nemesis_every_ns=700 * MS)
    index = 0
    checked = 0
    for op in ops:
        if op.get("nemesis"):
            index = (index + 1) % 7
            continue
        if op["type"] != "invoke":
            continue
        rng = [0, 1, 2] if op["f"] == "read" else [3, 4, 5]
        expected = next((t for t in rng if t >= index), rng[0])
        assert op["process"] == expected, (checked, index, op)
        index = (index + 1) % 7
        checked += 1
    assert checked > 500
    reads = sum(1 for op in ops if op.get("type") == "invoke" and op["f"] == "read")
    assert 0.45 < reads / checked < 0.55


def test_blocked_writers_do_not_shift_the_read_share_away_from_the_jars_half():
    # Writes and cas never answer (each blocks its thread for the 1 s timeout) while reads answer
    # at once. Whenever a writer thread is free the jar picks read or write with weights 3:3,
    # whatever the number of free threads in each range; picking a random free thread would
    # write with probability 1/4 when one writer of three is free.
    ops = _run(MS // 10, None, rate=200, seconds=120)
    busy_until = {t: 0 for t in range(3, 6)}
    both_free = writes_then = 0
    for op in ops:
        if op["type"] != "invoke":
            continue
        free_writers = [t for t, until in busy_until.items() if until <= op["time"]]
        if free_writers:
            both_free += 1
            writes_then += op["f"] != "read"
        if op["f"] != "read":
            busy_until[op["process"] % 6] = op["time"] + S
    assert both_free > 600, both_free
    assert 0.42 < writes_then / both_free < 0.58, writes_then / both_free


# -- item 4: error replies without an integer code ----------------------------------------------
@pytest.mark.parametrize("code", [None, "22", 22.0, True, [20]])
@pytest.mark.parametrize("f,type_", [("read", "fail"), ("write", "info"), ("cas", "info")])
def test_an_error_reply_without_an_integer_code_is_an_unknown_indefinite_error(code, f, type_):
    body = {"type": "error", "in_reply_to": 1, "text": "odd"}
    if code is not None:
        body["code"] = code
    value = [0, None] if f == "read" else [0, 2] if f == "write" else [0, [1, 2]]
    done = complete_op(f, value, body)
    # As the jar's client: looked up in the error registry, not found, so :unknown, indefinite.
    assert done == {"type": type_, "value": value, "error": ["unknown", "odd"]}


# -- item 5: envelope leniency ------------------------------------------------------------------
@pytest.mark.parametrize("line,body", [
    (b'{"src": "n0", "dest": "n1"}', {}),
    (b'{"src": "n0", "dest": "n1", "body": null}', {}),
    (b'{"src": "n0", "dest": "n1", "body": []}', {}),
    (b'{"src": "n0", "dest": "n1", "body": ""}', {}),
    (b'{"src": "n0", "dest": "n1", "body": [["type", "x"], ["k", [1]], ["v"]]}',
     {"type": "x", "k": [1], "v": None}),
    (b'[["src", "n0"], ["dest", "n1"], ["body", {"a": 1}]]', {"a": 1}),
])
def test_a_missing_null_or_pairs_body_is_accepted_as_the_jar_does(line, body):
    loop = VirtualLoop()
    net = Network(loop)
    got = []
    net.register_node("n0", got.append)
    net.register_node("n1", got.append)
    assert net.on_node_line("n0", line)
    assert orjson.loads(got[0]) == {"id": 0, "src": "n0", "dest": "n1", "body": body}
    assert parse_envelope(line)["body"] == body


@pytest.mark.parametrize("body", [b'"x"', b"5", b"true", b"[1, 2]", b'[{"a": 1}]', b"[[1, 2]]"])
def test_a_body_that_is_no_map_still_stops_the_sender(body):
    net = Network(VirtualLoop())
    net.register_node("n0", lambda b: None)
    assert not net.on_node_line("n0", b'{"src": "n0", "dest": "n0", "body": %s}' % body)
    with pytest.raises(BadLine):
        parse_envelope(b'{"src": "n0", "dest": "n0", "body": %s}' % body)


# -- item 7: results.edn in the jar's shape ------------------------------------------------------
def test_results_edn_nests_knossos_fields_under_linearizable_and_fails_only_invalid_keys(
        tmp_path, monkeypatch):
    from rast_maelstrom.harness import analysis, linearizability
    from test_analysis import Kw, invalid_history, make_store, read_edn

    h = invalid_history()
    h.seq(20, 21, 2, "write", [2, 4])   # key 2: the checker gives up on it (stubbed below)
    real = linearizability.check_independent

    def check(history, **kw):
        out = real(history, **kw)
        out["results"][2] = {"valid?": "unknown", "cause": "search-limit", "op-count": 1}
        out["valid?"] = False
        return out
    monkeypatch.setattr(linearizability, "check_independent", check)
    store = make_store(tmp_path, h.ops)
    results = analysis.analyze(store)
    text = (store / "results.edn").read_text()
    edn = read_edn(text)
    workload = edn[Kw("workload")]
    assert workload[Kw("failures")] == [1]            # the unknown key 2 is not a failure
    good = workload[Kw("results")][0]
    assert good[Kw("valid?")] is True and good[Kw("timeline")] == {Kw("valid?"): True}
    lin = good[Kw("linearizable")]
    assert lin[Kw("valid?")] is True and lin[Kw("final-paths")] == []
    assert lin[Kw("analyzer")] == Kw("wgl")     # the witness search decided: depth first, as WGL
    assert lin[Kw("configs")][0][Kw("model")] == {Kw("value"): 1}
    assert lin[Kw("configs")][0][Kw("last-op")][Kw("value")] == 1
    assert "#knossos.model.CASRegister{:value 1}" in text and ":final-paths ()" in text
    bad = workload[Kw("results")][1][Kw("linearizable")]
    assert bad[Kw("valid?")] is False
    assert bad[Kw("op")][Kw("f")] == Kw("read") and bad[Kw("op")][Kw("value")] == 3
    assert bad[Kw("previous-ok")][Kw("value")] == 2 == bad[Kw("last-op")][Kw("value")]
    assert bad[Kw("configs")][0][Kw("model")] == {Kw("value"): 2}
    path = bad[Kw("final-paths")][0]
    assert path[1][Kw("model")] == {Kw("msg"): "can't read 3 from register 2"}
    # The runner's own fields stay beside the jar's.
    assert "explanation" in results["workload"]["results"][1]
    assert workload[Kw("results")][2][Kw("linearizable")][Kw("valid?")] == Kw("unknown")


# -- item 10: arguments as the jar takes them -----------------------------------------------------
def _options(*flags):
    from rast_maelstrom.harness import cli
    ns = cli._build_parser().parse_args(["test", "--bin", "/bin/true", *flags])
    return cli.test_options(ns)[0]


@pytest.mark.parametrize("flags,message", [
    (["--time-limit", "0"], 'Failed to validate "--time-limit 0": Must be positive'),
    (["--time-limit", "1.5"], 'Error while parsing option "--time-limit 1.5": '
                              'java.lang.NumberFormatException: For input string: "1.5"'),
    (["--test-count", "0"], 'Failed to validate "--test-count 0": Must be positive'),
    (["--rate", "-1"], 'Failed to validate "--rate -1": Can\'t be negative'),
    (["--latency", "-5"], 'Failed to validate "--latency -5": Must be non-negative'),
    (["--latency-dist", "normal"],
     'Failed to validate "--latency-dist normal": Must be constant, uniform, or exponential'),
    (["--nemesis-interval", "0"], 'Failed to validate "--nemesis-interval 0": Must be positive'),
    (["--node-count", "0"], 'Failed to validate "--node-count 0": Must be positive.'),
    (["--concurrency", "2x"],
     'Failed to validate "--concurrency 2x": Must be an integer, optionally followed by n.'),
    (["--availability", "2"], 'Failed to validate "--availability 2": must be either \'total\' '
                              'or a number between 0 and 1.'),
    (["-w", "nope"], 'Failed to validate "-w nope": Must be one of broadcast, echo, '
                     'g-counter, g-set, kafka, lin-kv, pn-counter, txn-list-append, '
                     'txn-rw-register, unique-ids'),
    (["--bogus"], 'Unknown option: "--bogus"'),
    (["--time-limit"], 'Missing required argument for "--time-limit SECONDS"'),
])
def test_bad_values_exit_254_with_the_jars_message_on_stdout(flags, message, capsys):
    from rast_maelstrom.harness import cli
    assert cli.main(["test", "--bin", "/bin/true", *flags]) == 254
    out, err = capsys.readouterr()
    assert out.splitlines() == [message] and err == ""


def test_every_bad_value_is_reported_at_once(capsys):
    from rast_maelstrom.harness import cli
    assert cli.main(["test", "--time-limit", "0", "--rate", "-1"]) == 254
    assert capsys.readouterr().out.splitlines() == [
        'Failed to validate "--time-limit 0": Must be positive',
        'Failed to validate "--rate -1": Can\'t be negative',
        "Expected a --bin PATH_TO_BINARY to test"]


def test_ratios_are_accepted_where_the_jar_reads_them_as_numbers():
    o = _options("--availability", "1/2", "--nemesis-interval", "1/4", "--node-count", "1",
                 "--concurrency", "2n")
    assert o.availability == 0.5 and o.nemesis_interval == 0.25
    assert _options("--availability", "total").availability == "total"
    assert _options("--nemesis-interval", "0.5").nemesis_interval == 0.5


def test_node_count_combines_with_the_node_lists_as_the_jars_does(tmp_path):
    nodes_file = tmp_path / "nodes"
    nodes_file.write_text("x1\n  x2  \n\n")
    assert _options("--node-count", "3", "-n", "foo").nodes == ["n0", "n1", "n2", "foo"]
    assert _options("--node-count", "2", "--nodes", "a,b").nodes == ["n0", "n1"]
    assert _options("--node-count", "2", "--nodes-file", str(nodes_file)).nodes == [
        "x1", "x2", "n0", "n1"]
    assert _options("--nodes", "a, b", "-n", "z").nodes == ["a", "b", "z"]
    assert _options("-n", "a", "-n", "b").nodes == ["a", "b"]
    assert _options().nodes == ["n1", "n2", "n3", "n4", "n5"]


# -- item 11: analyze as the jar's --------------------------------------------------------------
def test_analyze_takes_the_jars_t_rewrites_results_and_exits_0_without_a_verdict(tmp_path, capsys):
    from rast_maelstrom.harness import cli
    from test_analysis import invalid_history, make_store

    store = make_store(tmp_path, invalid_history().ops)
    for args in (["-t", str(store)], ["--test", str(store / "test.json")],
                 ["-t", "-1", "--store", str(tmp_path / "store")], ["-t", "0", "--store",
                                                                      str(tmp_path / "store")]):
        (store / "results.edn").unlink(missing_ok=True)
        assert cli.main(["analyze", *args]) == 0, args       # invalid, yet 0: as the jar
        out = capsys.readouterr().out
        assert "Analysis invalid!" not in out and "Analysis complete" in out
        assert ":valid? false" in (store / "results.edn").read_text()
    # [extension] --verdict prints the results and the verdict and exits as `test` does.
    assert cli.main(["analyze", "-t", str(store), "--verdict"]) == 1
    assert "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻" in capsys.readouterr().out
    assert cli.main(["analyze", "-t", str(tmp_path)]) == 254


# -- item 12: serve -------------------------------------------------------------------------------
def _get(url: str) -> tuple[int, str, str]:
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], ""


def test_serve_shows_the_store_over_real_http(tmp_path):
    import threading

    from rast_maelstrom.harness import analysis
    from rast_maelstrom.harness.web import make_server
    from test_analysis import invalid_history, make_store

    test_dir = make_store(tmp_path, invalid_history().ops)
    analysis.analyze(test_dir)
    root = tmp_path / "store"
    (tmp_path / "secret").write_text("not served")
    (test_dir / "escape").symlink_to(tmp_path / "secret")
    server = make_server(root, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        status, ctype, page = _get(base + "/")
        assert status == 200 and ctype.startswith("text/html")
        assert test_dir.name in page and "invalid" in page and "results.edn" in page
        rel = test_dir.relative_to(root).as_posix()
        status, ctype, text = _get(f"{base}/files/{rel}/results.edn")
        assert status == 200 and ctype.startswith("text/plain") and ":valid? false" in text
        status, ctype, listing = _get(f"{base}/files/{rel}/")
        assert status == 200 and "history.txt" in listing and "independent/" in listing
        status, ctype, _ = _get(f"{base}/files/{rel}/timeline.html")
        assert status == 200 and ctype.startswith("text/html")
        assert _get(f"{base}/files/{rel}/escape")[0] == 404          # points outside the store
        assert _get(f"{base}/files/%2e%2e/%2e%2e/secret")[0] == 404
        assert _get(f"{base}/files/{rel}/nope.txt")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_serve_command_binds_and_answers(tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import time
    from pathlib import Path

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([str(root / "bin" / "maelstrom-py"), "serve", "-b", "127.0.0.1", "-p",
                             str(port), "--store", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, _, page = _get(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert status == 200 and "No tests in the store yet" in page
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    assert f"Listening on http://127.0.0.1:{port}/" in proc.stdout.read().decode()


# -- item 9: messages.svg, the Lamport diagram ----------------------------------------------------
def _journal(*events) -> list[bytes]:
    return [orjson.dumps(e) for e in events]


def _send(i, src, dest, body, ns):
    return {"t": "send", "ns": ns, "msg": {"id": i, "src": src, "dest": dest, "body": body}}


def _recv(i, ns):
    return {"t": "recv", "ns": ns, "id": i}


def test_lamport_diagram_draws_each_delivered_message_as_the_jar_does():
    import xml.etree.ElementTree as ET

    from rast_maelstrom.harness.lamport import render, select_events, sort_key

    journal = _journal(
        _send(0, "c0", "n0", {"type": "init", "msg_id": 1, "node_id": "n0"}, 0), _recv(0, 1),
        _send(1, "n0", "c0", {"type": "init_ok", "in_reply_to": 1}, 2), _recv(1, 3),
        {"t": "time-zero", "ns": 10},
        _send(2, "c10", "n1", {"type": "write", "msg_id": 1, "key": 0, "value": 3}, 11),
        _recv(2, 12),
        _send(3, "n1", "lin-kv", {"type": "write", "msg_id": 7, "key": 0, "value": 3}, 13),
        _recv(3, 14),
        _send(4, "lin-kv", "n1", {"type": "write_ok", "in_reply_to": 7}, 15), _recv(4, 16),
        _send(5, "n1", "n0", {"type": "gossip", "msg_id": 8}, 17), {"t": "drop", "ns": 18, "id": 5},
        _send(6, "n1", "c10", {"type": "error", "in_reply_to": 1, "code": 11, "text": "busy"}, 19),
        _recv(6, 20),
        _send(7, "c2", "n0", {"type": "read", "msg_id": 1, "key": 0}, 21), _recv(7, 22))
    events, truncated = select_events(journal)
    assert not truncated and len(events) == 11        # init and init_ok are left out
    assert [k for k, _ in events[:3]] == ["send", "recv", "send"]
    svg = render(events, truncated, "t")
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    rects = root.findall(".//s:rect", ns)
    assert len(rects) == 5                            # the dropped gossip draws no arrow
    fills = [r.get("fill") for r in rects]
    assert fills == ["#81BFFC", "#000", "#000", "#FF1E90", "#81BFFC"]
    tips = [r.find("s:title", ns).text for r in rects]
    assert tips[1] == 'n1 → lin-kv {:type "write", :msg_id 7, :key 0, :value 3}'
    labels = [t.text for t in root.findall(".//s:g/s:g/s:text", ns)][1::2]
    assert labels[:2] == ["write {:key 0, :value 3}", "write {:key 0, :value 3}"]
    assert labels[3] == "error busy"
    names = [t.text for t in root.findall("./s:g/s:text", ns)]
    assert names == ["c2", "c10", "n0", "n1", "lin-kv"]   # clients, servers, then services
    assert sorted(["lin-kv", "n10", "c1", "n2"], key=sort_key) == ["c1", "n2", "n10", "lin-kv"]
    # The first N events, or a window of history time; a notice says when some are left out.
    few, cut = select_events(journal, events_max=4)
    assert len(few) == 4 and cut and "Additional network events not shown" in render(few, cut)
    window, cut = select_events(journal, window_s=(3e-9, 8e-9))
    assert [m["id"] for _, m in window] == [3, 3, 4, 4, 5] and cut
