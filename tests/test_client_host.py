"""Clients in a process of their own (harness/clienthost.py, bench/driver.py's `clients_in`): a
client's message routed from a client host gets exactly what `send_body` in the router gives it
(id, journal bytes, delivery, counts); a reply reaches the hosted client as the same (src, body);
a host speaking for someone else is refused; and a benchmark cell run with its clients in a host
issues the same ops per client as one run in the router's loop, and is checked the same way."""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmods import bench_module
from rast_maelstrom.harness.clienthost import ClientHost, RemoteNetwork
from rast_maelstrom.harness.eventloop import Loop
from rast_maelstrom.harness.network import Network

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ("c3", "c4")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)
bodies = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
sends = st.lists(st.tuples(st.sampled_from(CLIENTS), st.sampled_from(("n0", "n1")), bodies),
                 min_size=1, max_size=12)


def _router(journal: bool):
    loop = Loop()
    out = io.BytesIO() if journal else None
    net = Network(loop, journal=out)
    got: list = []
    for node in ("n0", "n1"):
        net.register_node(node, lambda framed, node=node: got.append((node, framed)))
    return loop, net, out, got


def _host_lines(messages) -> list[bytes]:
    """What a RemoteNetwork writes for these sends (its own send_body, into its buffer)."""
    r, w = os.pipe()
    loop = Loop()
    try:
        remote = RemoteNetwork(loop, r, w)
        for src, dest, body in messages:
            remote.send_body(src, dest, body)
        lines = bytes(remote.out).split(b"\n")
        assert lines.pop() == b""
        return lines
    finally:
        loop.close()
        os.close(r)
        os.close(w)


@settings(max_examples=60, deadline=None)
@given(sends, st.booleans())
def test_a_hosted_clients_message_gets_what_send_body_gives_it_in_the_router(messages, journal):
    loop_a, direct, journal_a, got_a = _router(journal)
    ids_a = [direct.send_body(src, dest, body) for src, dest, body in messages]
    loop_b, routed, journal_b, got_b = _router(journal)
    host = ClientHost(loop_b, routed, ["unused"], Path(os.devnull), list(CLIENTS))
    for cid in CLIENTS:
        routed.register_client(cid, lambda src, body: None)
    lines = _host_lines(messages)
    assert host._route("client-host", lines) == len(messages)
    assert not host.bad
    assert routed.next_id == direct.next_id == len(messages) and ids_a == list(range(len(messages)))
    assert got_b == got_a                          # the same framed bytes to the same nodes
    assert routed.stats() == direct.stats()
    if journal:
        assert _without_times(journal_b.getvalue()) == _without_times(journal_a.getvalue())
    loop_a.close()
    loop_b.close()


def _without_times(journal: bytes) -> list[bytes]:
    """The journal's lines with their ns field cut out (the rest byte for byte)."""
    out = []
    for line in journal.splitlines():
        start = line.index(b',"ns":')
        end = line.index(b",", start + 1)
        out.append(line[:start] + line[end:])
    return out


def test_the_journal_of_hosted_sends_is_the_messages_as_sent_with_dense_ids():
    messages = [("c3", "n0", {"type": "read", "msg_id": 1, "key": 0}),
                ("c4", "n1", {"type": "cas", "msg_id": 7, "key": 1, "from": 2, "to": [3, "é"]})]
    _, direct, ja, _ = _router(True)
    for src, dest, body in messages:
        direct.send_body(src, dest, body)
    loop, routed, jb, _ = _router(True)
    host = ClientHost(loop, routed, ["unused"], Path(os.devnull), list(CLIENTS))
    for cid in CLIENTS:
        routed.register_client(cid, lambda src, body: None)
    host._route("client-host", _host_lines(messages))
    assert _without_times(jb.getvalue()) == _without_times(ja.getvalue())
    sent = [e for e in map(orjson.loads, jb.getvalue().splitlines()) if e["t"] == "send"]
    assert [e["msg"] for e in sent] == [
        {"id": i, "src": s, "dest": d, "body": b} for i, (s, d, b) in enumerate(messages)]


def test_a_host_speaking_for_a_client_not_its_own_is_refused_and_not_read_further():
    loop, net, _, got = _router(False)
    host = ClientHost(loop, net, ["unused"], Path(os.devnull), ["c3"])
    net.register_client("c3", lambda src, body: None)
    net.register_client("c9", lambda src, body: None)
    lines = _host_lines([("c3", "n0", {"a": 1}), ("c9", "n0", {"a": 2}), ("c3", "n1", {"a": 3})])
    assert host._route("client-host", lines) == 1   # the first line only
    assert host.bad and len(got) == 1 and net.next_id == 1


def test_replies_reach_the_hosted_client_as_the_same_src_and_body(tmp_path):
    """The router writes a hosted client's deliveries as lines; the host hands each to its client
    as (src, body), exactly what an in-loop client's deliver gets."""
    loop, net, _, _ = _router(False)
    to_host_r, to_host_w = os.pipe()
    host = ClientHost(loop, net, ["unused"], tmp_path / "host.log", list(CLIENTS))
    # start() registers the clients' deliveries; reproduce them without a process:
    direct: list = []
    net.register_client("c3", lambda src, body: host.proc.deliver(
        orjson.dumps({"src": src, "dest": "c3", "body": body})))
    net.register_client("c4", lambda src, body: direct.append((src, body)))
    replies = [{"type": "read_ok", "value": [1, None], "in_reply_to": 5},
               {"type": "error", "code": 20, "text": "ñ", "in_reply_to": 6}]
    for body in replies:
        net.on_node_line("n0", orjson.dumps({"src": "n0", "dest": "c3", "body": body}))
        net.on_node_line("n0", orjson.dumps({"src": "n0", "dest": "c4", "body": body}))
    os.write(to_host_w, bytes(host.proc._out))
    host_loop = Loop()
    hosted: list = []
    remote = RemoteNetwork(host_loop, to_host_r, os.open(os.devnull, os.O_WRONLY))
    remote.register_client("c3", lambda src, body: hosted.append((src, body)))
    host_loop.run_until(lambda: len(hosted) == len(replies), host_loop.now_ns() + 2 * 10**9)
    assert hosted == direct == [("n0", b) for b in replies]
    os.close(to_host_w)
    host_loop.run_until(lambda: remote.closed, host_loop.now_ns() + 2 * 10**9)
    assert remote.closed
    remote.close()
    os.close(remote.fd_out)
    os.close(to_host_r)
    host_loop.close()
    loop.close()


# -- the benchmark driver's cells --------------------------------------------------------------------
def _driver():
    return bench_module("driver")


def _ops_by_client(history: list[dict], clients: int) -> dict:
    """Each client's invocations in order: client index (process mod clients) -> [(f, value)]."""
    out: dict = {}
    for op in history:
        if op["type"] == "invoke":
            out.setdefault(op["process"] % clients, []).append((op["f"], op["value"], op["node"]))
    return out


@pytest.mark.e2e
def test_a_cell_with_its_clients_in_a_host_issues_the_same_ops_and_checks_the_same(tmp_path):
    driver = _driver()
    system = driver.System("null", [sys.executable, str(ROOT / "bench" / "null_node.py")],
                           routing="by-key")
    results = {}
    for where in ("loop", "process"):
        cluster = driver.Cluster(system, 3, tmp_path / where)
        try:
            cluster.start()
            res = driver.run_cell(cluster, 12, 0.6, warmup_s=0.2, key_base=0, seed=3,
                                  check_time_limit_s=20, keep_history=True, clients_in=where)
            assert not cluster.any_exited()
        finally:
            cluster.stop()
        assert res.clients_in == where
        assert res.linearizable is True, res.explanation
        assert res.ok > 100 and res.history_ops > 2 * res.ok
        hist = res.history
        assert [op["index"] for op in hist] == list(range(len(hist)))
        times = [op["time"] for op in hist]
        assert times == sorted(times) and times[0] >= 0
        invokes = sum(op["type"] == "invoke" for op in hist)
        assert invokes == len(hist) - invokes          # every op completed (drained)
        assert res.all_msgs_per_op == pytest.approx(2.0, abs=0.05)   # request + reply
        if where == "process":
            assert res.clients_cpu_s_per_kop > 0
            assert not list((tmp_path / where).glob("clients-*.json"))   # its figures, removed
        else:
            assert res.clients_cpu_s_per_kop == 0 and res.router_cpu_s_per_kop > 0
        results[where] = res
    a, b = (_ops_by_client(results[w].history, 12) for w in ("loop", "process"))
    assert set(a) == set(b) == set(range(12))
    for client in a:
        n = min(len(a[client]), len(b[client]))
        assert n > 5
        assert b[client][:n] == a[client][:n]   # the same spec: the same ops per client


@pytest.mark.parametrize("script", ["print('not the ready line', flush=True); import time; "
                                    "time.sleep(5)",
                                    "import sys; sys.exit(3)"])
def test_a_host_that_does_not_say_ready_fails_its_start_and_is_stopped(tmp_path, script):
    loop, net, _, _ = _router(False)
    host = ClientHost(loop, net, [sys.executable, "-c", script], tmp_path / "host.log", ["c3"])
    with pytest.raises(RuntimeError, match="did not get ready"):
        host.start(b'{"spec":1}')
    assert host.t0_ns is None and net.next_id == 0
    host.stop()
    assert host.exited()
    loop.close()
