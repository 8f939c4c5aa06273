"""The jar's services (lin-kv, seq-kv, lww-kv, lin-tso) as nodes on the runner's network: their
replies, error codes and texts, consistency, and how the network counts and delays their traffic.
Unit tests on virtual time; the end-to-end runs of a proxy node are in test_runner_compat.py."""
from __future__ import annotations

import random

import orjson

from rast_maelstrom.harness import services
from rast_maelstrom.harness.network import Network
from rast_maelstrom.harness.services.consistency import Sequential
from rast_maelstrom.harness.services.kv import LwwKv, PersistentKv

from test_runner_units import MS, VirtualLoop


READ_1 = b'{"src":"n0","dest":"lin-kv","body":{"type":"read","key":1,"msg_id":1}}'
READ_2_AS_C5 = b'{"src":"c5","dest":"lin-kv","body":{"type":"read","key":1,"msg_id":2}}'


def _setup(latency_ms=0, seed=0):
    loop = VirtualLoop()
    net = Network(loop, latency_ms=latency_ms, rng=random.Random(0))
    got: dict[str, list] = {"n0": [], "n1": []}
    for node in got:
        net.register_node(node, got[node].append)
    services.start(net, random.Random(seed))
    return loop, net, got


def _rpc(loop, net, got, node, dest, body, wait_ms=100):
    """Send `body` from `node` to a service; return the reply bodies delivered to `node`."""
    before = len(got[node])
    line = orjson.dumps({"src": node, "dest": dest, "body": body})
    assert net.on_node_line(node, line)
    loop.run_for(wait_ms * MS)
    return [orjson.loads(x)["body"] for x in got[node][before:]]


def test_lin_kv_answers_reads_writes_and_cas_with_the_jars_codes_and_texts():
    loop, net, got = _setup()
    call = lambda body: _rpc(loop, net, got, "n0", "lin-kv", body)   # noqa: E731
    assert call({"type": "read", "key": "k", "msg_id": 1}) == [
        {"type": "error", "code": 20, "text": "key does not exist", "in_reply_to": 1}]
    assert call({"type": "cas", "key": "k", "from": 1, "to": 2, "msg_id": 2}) == [
        {"type": "error", "code": 20, "text": "key does not exist", "in_reply_to": 2}]
    assert call({"type": "cas", "key": "k", "from": 1, "to": 2, "create_if_not_exists": True,
                 "msg_id": 3}) == [{"type": "cas_ok", "in_reply_to": 3}]
    assert call({"type": "read", "key": "k", "msg_id": 4}) == [
        {"type": "read_ok", "value": 2, "in_reply_to": 4}]
    assert call({"type": "write", "key": "k", "value": [1, "a"], "msg_id": 5}) == [
        {"type": "write_ok", "in_reply_to": 5}]
    assert call({"type": "cas", "key": "k", "from": [1, "b"], "to": 0, "msg_id": 6}) == [
        {"type": "error", "code": 22, "text": 'current value [1 "a"] is not [1 "b"]',
         "in_reply_to": 6}]
    # JSON equality, as Clojure's `=`: 2 is not 2.0 nor true, as values and as keys.
    call({"type": "write", "key": 1, "value": 2, "msg_id": 7})
    assert call({"type": "cas", "key": 1, "from": 2.0, "to": 3, "msg_id": 8})[0]["code"] == 22
    assert call({"type": "read", "key": 1.0, "msg_id": 9})[0]["code"] == 20
    assert call({"type": "read", "key": True, "msg_id": 10})[0]["code"] == 20
    # No msg_id: the reply still comes, with a null in_reply_to.
    assert call({"type": "read", "key": 1}) == [
        {"type": "read_ok", "value": 2, "in_reply_to": None}]


def test_unknown_requests_get_no_reply_so_the_caller_times_out(caplog):
    loop, net, got = _setup()
    assert _rpc(loop, net, got, "n0", "lin-kv", {"type": "frob", "msg_id": 1}) == []
    assert _rpc(loop, net, got, "n0", "lin-tso", {"type": "read", "key": 1, "msg_id": 2}) == []
    assert "Error in service worker lin-kv" in caplog.text


def test_lin_tso_hands_out_0_1_2_to_every_caller():
    loop, net, got = _setup()
    a = _rpc(loop, net, got, "n0", "lin-tso", {"type": "ts", "msg_id": 7})
    b = _rpc(loop, net, got, "n1", "lin-tso", {"type": "ts", "msg_id": 7})
    c = _rpc(loop, net, got, "n0", "lin-tso", {"type": "ts", "msg_id": 8})
    assert [a, b, c] == [[{"type": "ts_ok", "ts": 0, "in_reply_to": 7}],
                         [{"type": "ts_ok", "ts": 1, "in_reply_to": 7}],
                         [{"type": "ts_ok", "ts": 2, "in_reply_to": 8}]]


def test_service_links_have_the_configured_latency_and_count_as_server_traffic():
    loop, net, got = _setup(latency_ms=10)
    net.on_node_line("n0", READ_1)
    loop.run_for(19 * MS)
    assert got["n0"] == []                 # 10 ms there, 10 ms back
    loop.run_for(2 * MS)
    assert len(got["n0"]) == 1
    net.heal()
    net.drop_grudge({"n0": ["n1"]})        # grudges name servers only: services are never cut
    assert _rpc(loop, net, got, "n0", "lin-kv", {"type": "read", "key": 1, "msg_id": 2})
    stats = net.stats()
    assert stats["servers"] == {"send-count": 4, "recv-count": 4, "msg-count": 4}
    assert stats["clients"]["send-count"] == 0


def test_seq_kv_reads_may_be_stale_for_others_but_each_caller_is_monotonic():
    loop, net, got = _setup(seed=3)
    for v in range(10):
        _rpc(loop, net, got, "n0", "seq-kv", {"type": "write", "key": 0, "value": v, "msg_id": v})
    # The writer always sees its own last write...
    for i in range(20):
        assert _rpc(loop, net, got, "n0", "seq-kv",
                    {"type": "read", "key": 0, "msg_id": 100 + i})[0]["value"] == 9
    # ... another caller sees older states, never going back in time.
    seen = []
    for i in range(60):
        reply = _rpc(loop, net, got, "n1", "seq-kv", {"type": "read", "key": 0, "msg_id": i})[0]
        seen.append(reply.get("value", -1))   # -1: the state before the first write
    assert seen == sorted(seen) and seen[0] < 9 and seen[-1] == 9
    # A cas is a change: it runs on the newest state.
    assert _rpc(loop, net, got, "n1", "seq-kv",
                {"type": "cas", "key": 0, "from": 9, "to": 5, "msg_id": 99})[0]["type"] == "cas_ok"


def test_seq_kv_keeps_32_states_and_a_no_op_write_may_run_on_an_old_state():
    seq = Sequential(PersistentKv.empty(), random.Random(1))
    for v in range(40):
        seq.handle("w", {"type": "write", "key": 0, "value": v})
    assert len(seq.buffer) == 32 and seq.last_index == 40
    # A caller far behind lands on a retained state (the ring buffer's wrap-around).
    values = {seq.handle(f"r{i}", {"type": "read", "key": 0}).get("value") for i in range(200)}
    assert values <= set(range(8, 40)) and len(values) > 10
    before = seq.last_index
    seq.handle("x", {"type": "write", "key": 0, "value": 39})   # same value as the newest state
    assert seq.last_index == before or seq.clients["x"] == seq.last_index


def test_lww_kv_has_two_replicas_that_the_jar_never_merges():
    loop, net, got = _setup(seed=4)
    _rpc(loop, net, got, "n0", "lww-kv", {"type": "write", "key": 0, "value": 1, "msg_id": 1})
    answers = [_rpc(loop, net, got, "n1", "lww-kv", {"type": "read", "key": 0, "msg_id": i})[0]
               for i in range(40)]
    found = [a for a in answers if a["type"] == "read_ok"]
    missing = [a for a in answers if a["type"] == "error"]
    assert found and missing and all(a["code"] == 20 for a in missing)   # it never converges
    replica = LwwKv.empty()
    replica, _ = replica.handle({"type": "write", "key": 0, "value": 7})
    replica, ok = replica.handle({"type": "cas", "key": 0, "from": 7, "to": 8})
    assert ok == {"type": "cas_ok"} and replica.clock == 2 and replica.m[b"0"][0] == 1
    _, err = replica.handle({"type": "cas", "key": 0, "from": "x", "to": 1})
    assert err == {"type": "error", "code": 22, "text": "current value 8 is not x"}
    _, err = replica.handle({"type": "cas", "key": 5, "from": 1, "to": 2,
                             "create_if_not_exists": True})
    assert err["code"] == 20                 # lww-kv has no create_if_not_exists


def test_a_reply_to_a_vanished_caller_is_dropped(caplog):
    loop, net, got = _setup(latency_ms=10)
    net.register_client("c5", lambda src, body: None)
    # The first request holds the service's inbox for 10 ms; the spoofed one queues behind it.
    net.on_node_line("n0", READ_1)
    net.on_node_line("n0", READ_2_AS_C5)
    net.unregister("c5")
    loop.run_for(30 * MS)
    assert len(got["n0"]) == 1
    assert "reply to unregistered c5 dropped" in caplog.text
