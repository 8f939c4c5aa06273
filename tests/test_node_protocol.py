"""bin/rast as a subprocess, spoken to exactly as Maelstrom does: init, every bad input, exact reply
key sets, buffering before init, EOF, and restart from the data directory after kill -9."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from rast_maelstrom import kv

ROOT = Path(__file__).resolve().parent.parent
RAST = str(ROOT / "bin" / "rast")
REPLY_TIMEOUT_S = 10.0


class NodeProc:
    def __init__(self, *args: str, cwd: str = "/tmp") -> None:
        self.proc = subprocess.Popen(
            [RAST, *args], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._buf = b""
        self.lines: list[bytes] = []  # every stdout line seen, raw

    def send(self, src: str, dest: str, body: dict) -> None:
        self.send_raw(orjson.dumps({"id": 0, "src": src, "dest": dest, "body": body}))

    def send_raw(self, line: bytes) -> None:
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def recv(self, timeout_s: float = REPLY_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            assert left > 0, "no reply from the node in time"
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, "node closed stdout"
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        self.lines.append(line)
        return orjson.loads(line)

    def recv_reply(self, msg_id: int, dest: str = "c1", timeout_s: float = REPLY_TIMEOUT_S) -> dict:
        """The reply to msg_id addressed to `dest`, skipping peer traffic."""
        deadline = time.monotonic() + timeout_s
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if msg["dest"] == dest and msg["body"].get("in_reply_to") == msg_id:
                return msg

    def rpc(self, body: dict, src: str = "c1", dest: str = "n0") -> dict:
        self.send(src, dest, body)
        return self.recv_reply(body["msg_id"], src)["body"]

    def init(self, node_id: str = "n0", node_ids: list[str] | None = None) -> dict:
        self.send("c0", node_id, {"type": "init", "msg_id": 1, "node_id": node_id,
                                  "node_ids": node_ids or [node_id]})
        return self.recv_reply(1, "c0")

    def stderr_text(self) -> str:
        self.kill()
        return self.proc.stderr.read().decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> None:
        self.kill()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


@pytest.fixture
def node():
    n = NodeProc()
    yield n
    n.close()


def wait_leader(n: NodeProc, src: str = "c1", dest: str = "n0") -> None:
    """Single-node cluster: retry a read until the node has elected itself (it answers 11 before)."""
    for msg_id in range(1000, 1200):
        body = n.rpc({"type": "read", "msg_id": msg_id, "key": "__probe__"}, src, dest)
        if body.get("code") != kv.ERR_TEMPORARILY_UNAVAILABLE:
            return
        time.sleep(0.05)
    raise AssertionError("node never became leader")


def test_init_ok_exact_and_immediate(node: NodeProc) -> None:
    t0 = time.monotonic()
    reply = node.init()
    assert time.monotonic() - t0 < 5
    assert reply == {"src": "n0", "dest": "c0", "body": {"type": "init_ok", "in_reply_to": 1}}


def test_reply_bodies_have_exact_key_sets(node: NodeProc) -> None:
    node.init()
    wait_leader(node)
    assert node.rpc({"type": "write", "msg_id": 1, "key": 7, "value": 3}) == {"type": "write_ok", "in_reply_to": 1}
    assert node.rpc({"type": "read", "msg_id": 2, "key": 7}) == {"type": "read_ok", "in_reply_to": 2, "value": 3}
    assert node.rpc({"type": "cas", "msg_id": 3, "key": 7, "from": 3, "to": 4}) == {"type": "cas_ok", "in_reply_to": 3}
    assert node.rpc({"type": "read", "msg_id": 4, "key": 7})["value"] == 4


def test_definite_errors_for_missing_key_and_failed_precondition(node: NodeProc) -> None:
    node.init()
    wait_leader(node)
    assert node.rpc({"type": "read", "msg_id": 1, "key": 99})["code"] == kv.ERR_KEY_DOES_NOT_EXIST
    assert node.rpc({"type": "cas", "msg_id": 2, "key": 99, "from": 1, "to": 2})["code"] == kv.ERR_KEY_DOES_NOT_EXIST
    node.rpc({"type": "write", "msg_id": 3, "key": 99, "value": 1})
    body = node.rpc({"type": "cas", "msg_id": 4, "key": 99, "from": 2, "to": 3})
    assert body["type"] == "error" and body["code"] == kv.ERR_PRECONDITION_FAILED
    assert set(body) == {"type", "in_reply_to", "code", "text"}
    assert node.rpc({"type": "read", "msg_id": 5, "key": 99})["value"] == 1  # the failed cas changed nothing


def test_string_keys_and_arbitrary_node_names() -> None:
    n = NodeProc()
    try:
        assert n.init("alpha", ["alpha"])["body"]["type"] == "init_ok"
        wait_leader(n, dest="alpha")
        assert n.rpc({"type": "write", "msg_id": 1, "key": "k", "value": [1, 2]}, dest="alpha")["type"] == "write_ok"
        assert n.rpc({"type": "read", "msg_id": 2, "key": "k"}, dest="alpha")["value"] == [1, 2]
    finally:
        n.close()


@pytest.mark.parametrize(
    "body, code",
    [
        ({"type": "write", "msg_id": 5, "key": 1}, kv.ERR_MALFORMED_REQUEST),  # no value
        ({"type": "cas", "msg_id": 5, "key": 1, "from": 1}, kv.ERR_MALFORMED_REQUEST),  # no to
        ({"type": "read", "msg_id": 5}, kv.ERR_MALFORMED_REQUEST),  # no key
        ({"type": "read", "msg_id": 5, "key": [1]}, kv.ERR_MALFORMED_REQUEST),  # unhashable key
        ({"type": "write", "msg_id": 5, "key": {"a": 1}, "value": 1}, kv.ERR_MALFORMED_REQUEST),
        ({"type": "frobnicate", "msg_id": 5}, kv.ERR_NOT_SUPPORTED),
        ({"msg_id": 5, "key": 1}, kv.ERR_MALFORMED_REQUEST),  # no type at all
    ],
)
def test_bad_requests_get_definite_errors_and_a_stderr_line(node: NodeProc, body: dict, code: int) -> None:
    node.init()
    reply = node.rpc(body)
    assert reply["type"] == "error" and reply["code"] == code and reply["in_reply_to"] == 5
    # the node is still serving
    assert node.rpc({"type": "read", "msg_id": 6, "key": 1})["type"] == "error"
    assert node.stderr_text().strip(), "every bad input leaves a line on stderr"


def test_garbage_lines_are_dropped_and_the_node_carries_on(node: NodeProc) -> None:
    node.init()
    for junk in [b"not json", b"[1,2,3]", b'{"src":"c1"}', b'{"src":1,"dest":"n0","body":{}}',
                 b'{"src":"c1","dest":"n0","body":[]}', b"\xff\xfe", b"{" * 5000]:
        node.send_raw(junk)
    wait_leader(node)
    assert node.rpc({"type": "write", "msg_id": 1, "key": 1, "value": 2})["type"] == "write_ok"
    err = node.stderr_text()
    assert err.count("malformed") >= 7
    for line in node.lines:  # stdout held nothing but messages
        assert set(orjson.loads(line)) == {"src", "dest", "body"}


def test_oversized_line_is_dropped_with_a_stderr_line(node: NodeProc) -> None:
    node.init()
    huge = b'{"src":"c1","dest":"n0","body":{"type":"write","msg_id":9,"key":1,"value":"' + b"x" * (17 << 20) + b'"}}'
    node.send_raw(huge)
    wait_leader(node)
    assert node.rpc({"type": "read", "msg_id": 2, "key": 1})["code"] == kv.ERR_KEY_DOES_NOT_EXIST
    assert "longer than" in node.stderr_text()


def test_malformed_peer_messages_do_not_crash(node: NodeProc) -> None:
    node.init("n0", ["n0", "n1", "n2"])
    for body in [{"type": "ae", "term": "x"}, {"type": "ae", "term": 1, "pi": 0, "pt": 0, "c": 0, "e": 5},
                 {"type": "rv", "term": 1}, {"type": "hbr"}, {"type": "aer", "term": 1, "ok": "yes"}]:
        node.send("n1", "n0", body)
    node.send("n9", "n0", {"type": "hb", "term": 5, "c": 0, "rs": 0})  # not a member
    # still alive: with no leader it refuses definitely
    assert node.rpc({"type": "read", "msg_id": 3, "key": 1})["code"] == kv.ERR_TEMPORARILY_UNAVAILABLE
    assert node.proc.poll() is None
    assert node.stderr_text().count("malformed") >= 5


def test_peer_messages_before_init_are_buffered_not_dropped(node: NodeProc) -> None:
    node.send("n1", "n0", {"type": "rv", "term": 1, "li": 0, "lt": 0, "pre": True})
    time.sleep(0.2)
    assert node.proc.poll() is None
    node.init("n0", ["n0", "n1"])
    msg = node.recv()
    assert msg["dest"] == "n1" and msg["body"]["type"] == "rvr" and msg["body"]["g"] is True


def test_eof_on_stdin_exits_cleanly(node: NodeProc) -> None:
    node.init()
    node.proc.stdin.close()
    assert node.proc.wait(timeout=10) == 0


def test_follower_without_leader_answers_11_definite(node: NodeProc) -> None:
    node.init("n0", ["n0", "n1", "n2"])  # peers never answer: no leader can exist
    for i, body in enumerate([{"type": "write", "key": 1, "value": 1}, {"type": "read", "key": 1},
                              {"type": "cas", "key": 1, "from": 1, "to": 2}]):
        body["msg_id"] = 10 + i
        assert node.rpc(body)["code"] == kv.ERR_TEMPORARILY_UNAVAILABLE


def test_follower_forwards_to_the_leader_keeping_the_client_as_src(node: NodeProc) -> None:
    node.init("n0", ["n0", "n1", "n2"])
    # n1 becomes leader of term 1 (as far as n0 can tell)
    node.send("n1", "n0", {"type": "hb", "term": 1, "c": 0, "rs": 0})
    node.send("c7", "n0", {"type": "write", "msg_id": 4, "key": 1, "value": 2})
    while True:
        msg = node.recv()
        if msg["body"]["type"] == "write":
            break
    assert msg["src"] == "c7" and msg["dest"] == "n1"
    assert {k: v for k, v in msg["body"].items() if k != "fwd"} == {"type": "write", "msg_id": 4, "key": 1, "value": 2}


def test_restart_after_kill9_recovers_acknowledged_writes(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    n = NodeProc("--data-dir", data)
    try:
        n.init()
        wait_leader(n)
        for i in range(50):
            assert n.rpc({"type": "write", "msg_id": i + 1, "key": i % 5, "value": i})["type"] == "write_ok"
        n.kill()
    finally:
        n.close()
    n2 = NodeProc("--data-dir", data)
    try:
        n2.init()
        wait_leader(n2)
        for k in range(5):
            assert n2.rpc({"type": "read", "msg_id": 100 + k, "key": k})["value"] == 45 + k
    finally:
        n2.close()
    assert os.path.isdir(os.path.join(data, "n0"))


def test_apply_exception_is_deterministic_error_13() -> None:
    a, b = kv.KVStore(), kv.KVStore()
    for store in (a, b):
        store.apply(kv.encode_write(1, b"1"))
    bad = [b'["w"]', b'["zz",1]', b"not json", b'{"x":1}']
    for cmd in bad:
        ra, rb = a.apply(cmd), b.apply(cmd)
        assert ra == rb and ra[0] == kv.ERR_CRASH
    assert a.data == b.data == {1: b"1"}
