"""The node's limits at its edges: flag combinations the core would refuse are refused at parse time
(exit 2, a clear message, before anything starts); READS_PENDING_MAX counts reads already in a
heartbeat round; the buffer of lines that arrive before init is bounded in bytes, not only lines."""

from __future__ import annotations

import subprocess

import orjson
import pytest

from rast_maelstrom import kv
from rast_maelstrom import node as node_mod
from rast_maelstrom.core import Role
from test_node_clock import make_node
from test_node_protocol import RAST

INIT = b'{"src":"c0","dest":"n0","body":{"type":"init","msg_id":1,"node_id":"n0","node_ids":["n0"]}}\n'


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--tick-ms", "10", "--heartbeat-ms", "10", "--election-ms", "30"], "--election-ms 30 is 3 ticks"),
        (["--tick-ms", "10", "--heartbeat-ms", "14", "--election-ms", "16"], "--election-ms 16 is 2 ticks"),
        (["--inflight-max", "0"], "--inflight-max must be at least 1"),
        (["--append-entries-max", "-1"], "--append-entries-max must be at least 1"),
        (["--tick-ms", "nan"], "--tick-ms must be a positive number"),
        (["--election-ms", "inf"], "--election-ms must be a positive number"),
        (["--election-ms", "40", "--heartbeat-ms", "50"], "heartbeat-ms < election-ms"),
    ],
)
def test_flags_the_core_would_refuse_exit_2_with_a_clear_message(flags: list[str], words: str) -> None:
    p = subprocess.run([RAST, *flags], input=INIT, capture_output=True, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert "rast: error: " in err and words in err
    assert p.stdout == b""  # refused before init: nothing answered


def test_the_smallest_valid_election_timeout_starts() -> None:
    p = subprocess.run([RAST, "--tick-ms", "10", "--heartbeat-ms", "10", "--election-ms", "40"],
                       input=INIT, capture_output=True, timeout=30)
    assert p.returncode == 0 and b"init_ok" in p.stdout, p.stderr.decode()


def _lead(n, loop, out) -> None:
    """Make n0 of [n0, n1, n2] lead term 1 with its no-op committed (the test plays n1)."""
    raft = n.raft
    for _ in range(10 * raft.randomized_election_ticks):
        raft.tick()
        n.flush()
        if raft.role is Role.PRE_CANDIDATE:
            break
    for pre in (True, False):
        n.on_line(orjson.dumps({"src": "n1", "dest": "n0", "body": {
            "type": "rvr", "term": 1, "g": True, "pre": pre}}))
        n.flush()
    assert raft.role is Role.LEADER
    n.on_line(orjson.dumps({"src": "n1", "dest": "n0", "body": {"type": "aer", "term": 1, "ok": True, "m": 1}}))
    n.flush()
    for durable in list(loop.readers.values()):  # the no-op is on our disk too
        durable()
    n.flush()
    assert raft.commit_index == 1
    out.clear()


def test_reads_pending_max_counts_reads_already_in_a_round(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_mod, "READS_PENDING_MAX", 5)
    n, loop, out = make_node(["n0", "n1", "n2"])
    _lead(n, loop, out)
    for i in range(8):  # one read per pass: each starts its own heartbeat round, none confirmed
        n.on_line(orjson.dumps({"src": "c1", "dest": "n0", "body": {"type": "read", "msg_id": i, "key": 1}}))
        n.flush()
    assert sum(len(r.ctxs) for r in n.raft.read_rounds) == 5
    refused = [orjson.loads(x)["body"] for x in b"".join(out).splitlines() if b'"dest":"c1"' in x]
    assert [(b["in_reply_to"], b["code"]) for b in refused] == [(i, kv.ERR_TEMPORARILY_UNAVAILABLE) for i in (5, 6, 7)]


def test_the_pre_init_buffer_is_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(node_mod, "PRE_INIT_BUFFER_BYTES_MAX", 50_000)
    from test_node_clock import ManualLoop

    out: list[bytes] = []
    n = node_mod.Node(node_mod.parse_args(["--data-dir", "/nonexistent-unused"]), out.append, ManualLoop())
    line = orjson.dumps({"src": "c1", "dest": "n0", "body": {
        "type": "write", "msg_id": 0, "key": 1, "value": "x" * 9_900}})
    with caplog.at_level("WARNING", logger="rast"):
        for _ in range(20):  # 20 lines of ~10 KB: only five fit in 50,000 bytes
            n.on_line(line)
    assert len(n.pre_init) == 5 and sum(map(len, n.pre_init)) <= 50_000
    assert caplog.text.count("before init: buffer full") == 15


def test_a_request_too_large_to_forward_is_refused_not_sent_to_be_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    n, _, out = make_node(["n0", "n1", "n2"])
    n.on_line(orjson.dumps({"src": "n1", "dest": "n0", "body": {"type": "hb", "term": 1, "c": 0, "rs": 0}}))
    n.flush()
    assert n.raft.leader_id == "n1"
    monkeypatch.setattr(node_mod, "LINE_BYTES_MAX", 300)  # the receiver's limit, scaled down
    out.clear()
    for msg_id, size in ((1, 10), (2, 300)):
        n.on_line(orjson.dumps({"src": "c1", "dest": "n0", "body": {
            "type": "write", "msg_id": msg_id, "key": 1, "value": "x" * size}}))
    n.flush()
    lines = b"".join(out).splitlines()
    sent = [orjson.loads(x) for x in lines]
    assert [(m["dest"], m["body"]["type"], m["body"]["msg_id"]) for m in sent if m["dest"] == "n1"] == [("n1", "write", 1)]
    refused = [m["body"] for m in sent if m["dest"] == "c1"]
    assert [(b["in_reply_to"], b["code"]) for b in refused] == [(2, kv.ERR_MALFORMED_REQUEST)]
    assert all(len(x) <= 300 for x in lines)
