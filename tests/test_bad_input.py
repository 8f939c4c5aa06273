"""What bad input gets, through bin/rast as a subprocess: a table of malformed lines (framing, types,
ranges, client and peer semantics), each with its expected reply or drop and the one stderr line it
leaves, and the node still answering after every case. Three node processes serve the whole table:
a single-node cluster for client input, a leader whose two peers the test plays (cooperative peers
answering every vote, append and heartbeat, plus a hostile one sending the bad cases), and a
follower holding committed entries that a hostile new leader contradicts."""

from __future__ import annotations

import os
import re
import select
import time

import orjson
import pytest

from rast_maelstrom import kv
from rast_maelstrom.wire import schema
from test_node_protocol import NodeProc, wait_leader

BIG = 2**70
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
PROBE_TIMEOUT_S = 10.0


class Watched(NodeProc):
    """A NodeProc whose stderr is read as it comes, so each case's log lines can be told apart."""

    def __init__(self, *args: str) -> None:
        super().__init__(*args)
        os.set_blocking(self.proc.stderr.fileno(), False)
        self._err = b""

    def new_stderr_lines(self) -> list[str]:
        while True:
            r, _, _ = select.select([self.proc.stderr], [], [], 0)
            if not r:
                break
            try:
                chunk = os.read(self.proc.stderr.fileno(), 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._err += chunk
        *done, self._err = self._err.split(b"\n")
        return [ln.decode(errors="replace") for ln in done if ln.strip()]


def env(src: str, body: dict, dest: str = "n0") -> bytes:
    return orjson.dumps({"id": 0, "src": src, "dest": dest, "body": body})


def raw_env(src: str, body: bytes, dest: str = "n0") -> bytes:
    return b'{"id":0,"src":"%s","dest":"%s","body":%s}' % (src.encode(), dest.encode(), body)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


# ---------------------------------------------------------------------- client input (single node)
# (case id, the line, expected): expected is ("reply", code, echoes_msg_id, stderr words),
# ("drop", stderr words) or ("ok", reply type). Every client case uses msg_id 5 where it has one.

CLIENT_CASES = [
    ("not-json", b"this is not json", ("drop", "not JSON")),
    ("json-array", b"[1,2,3]", ("drop", "not a JSON object")),
    ("json-number", b"42", ("drop", "not a JSON object")),
    ("json-string", b'"hello"', ("drop", "not a JSON object")),
    ("trailing-garbage", env("c1", {"type": "read", "msg_id": 5, "key": 1}) + b" x", ("drop", "not JSON")),
    ("invalid-utf8", b'{"src":"c1","dest":"n0","body":{"type":"read","msg_id":5,"key":"\xff"}}', ("drop", "not JSON")),
    ("truncated-object", b'{"src":"c1","dest":"n0","body":{"type":"read"', ("drop", "not JSON")),
    ("nan-value", b'{"src":"c1","dest":"n0","body":{"type":"write","msg_id":5,"key":1,"value":NaN}}', ("drop", "not JSON")),
    ("nesting-bomb", b"[" * 5000, ("drop", "not JSON")),
    ("no-src", b'{"dest":"n0","body":{"type":"read","msg_id":5,"key":1}}', ("drop", "src and dest")),
    ("src-not-string", b'{"src":7,"dest":"n0","body":{"type":"read","msg_id":5,"key":1}}', ("drop", "src and dest")),
    ("body-array", b'{"src":"c1","dest":"n0","body":[1]}', ("drop", "body must be")),
    ("body-missing", b'{"src":"c1","dest":"n0"}', ("drop", "body must be")),
    ("no-type", env("c1", {"msg_id": 5, "key": 1}), ("reply", 12, True, "no string 'type'")),
    ("type-not-string", env("c1", {"type": 3, "msg_id": 5}), ("reply", 12, True, "no string 'type'")),
    ("unknown-type", env("c1", {"type": "frobnicate", "msg_id": 5}), ("reply", 10, True, "unsupported")),
    ("unknown-type-no-msg-id", env("c1", {"type": "frobnicate"}), ("drop", "unknown type")),
    ("read-no-key", env("c1", {"type": "read", "msg_id": 5}), ("reply", 12, True, "malformed read")),
    ("read-no-msg-id", env("c1", {"type": "read", "key": 1}), ("reply", 12, False, "malformed read")),
    ("key-float", env("c1", {"type": "read", "msg_id": 5, "key": 1.5}), ("reply", 12, True, "malformed read")),
    ("key-bool", env("c1", {"type": "read", "msg_id": 5, "key": True}), ("reply", 12, True, "malformed read")),
    ("key-null", env("c1", {"type": "read", "msg_id": 5, "key": None}), ("reply", 12, True, "malformed read")),
    ("key-list", env("c1", {"type": "read", "msg_id": 5, "key": [1]}), ("reply", 12, True, "malformed read")),
    ("key-object", env("c1", {"type": "write", "msg_id": 5, "key": {"a": 1}, "value": 1}), ("reply", 12, True, "malformed write")),
    ("key-2^70-write", raw_env("c1", b'{"type":"write","msg_id":5,"key":%d,"value":1}' % BIG), ("reply", 12, True, "malformed write")),
    ("key-2^70-read", raw_env("c1", b'{"type":"read","msg_id":5,"key":%d}' % BIG), ("reply", 12, True, "malformed read")),
    ("key-2^63", raw_env("c1", b'{"type":"write","msg_id":5,"key":%d,"value":1}' % 2**63), ("reply", 12, True, "malformed write")),
    ("key-below-int64", raw_env("c1", b'{"type":"cas","msg_id":5,"key":%d,"from":1,"to":2}' % (I64_MIN - 1)), ("reply", 12, True, "malformed cas")),
    ("key-int64-max-ok", raw_env("c1", b'{"type":"write","msg_id":5,"key":%d,"value":1}' % I64_MAX), ("ok", "write_ok")),
    ("key-int64-min-ok", raw_env("c1", b'{"type":"write","msg_id":5,"key":%d,"value":1}' % I64_MIN), ("ok", "write_ok")),
    ("msg-id-2^70", raw_env("c1", b'{"type":"write","msg_id":%d,"key":1,"value":1}' % BIG), ("reply", 12, False, "malformed write")),
    ("msg-id-float", env("c1", {"type": "read", "msg_id": 5.5, "key": 1}), ("reply", 12, False, "malformed read")),
    ("msg-id-string", env("c1", {"type": "read", "msg_id": "5", "key": 1}), ("reply", 12, False, "malformed read")),
    ("write-no-value", env("c1", {"type": "write", "msg_id": 5, "key": 1}), ("reply", 12, True, "malformed write")),
    ("cas-no-from", env("c1", {"type": "cas", "msg_id": 5, "key": 1, "to": 2}), ("reply", 12, True, "malformed cas")),
    ("cas-no-to", env("c1", {"type": "cas", "msg_id": 5, "key": 1, "from": 1}), ("reply", 12, True, "malformed cas")),
    ("fwd-negative", env("c1", {"type": "read", "msg_id": 5, "key": 1, "fwd": -1}), ("reply", 12, True, "malformed read")),
    ("fwd-2^70", raw_env("c1", b'{"type":"read","msg_id":5,"key":1,"fwd":%d}' % BIG), ("reply", 12, True, "malformed read")),
    ("value-too-deep", raw_env("c1", b'{"type":"write","msg_id":5,"key":1,"value":%s}' % nested(kv.VALUE_DEPTH_MAX + 1)),
     ("reply", 12, True, "deeper than")),
    ("cas-to-too-deep", raw_env("c1", b'{"type":"cas","msg_id":5,"key":1,"from":1,"to":%s}' % nested(kv.VALUE_DEPTH_MAX + 1)),
     ("reply", 12, True, "deeper than")),
    ("value-deepest-ok", raw_env("c1", b'{"type":"write","msg_id":5,"key":"deep","value":%s}' % nested(kv.VALUE_DEPTH_MAX)),
     ("ok", "write_ok")),
    ("value-2^70-ok", raw_env("c1", b'{"type":"write","msg_id":5,"key":"big","value":%d}' % BIG), ("ok", "write_ok")),
    ("src-too-long", env("c" * 2000, {"type": "read", "msg_id": 5, "key": 1}), ("reply", 12, True, "malformed read")),
    ("init-other-identity", env("c1", {"type": "init", "msg_id": 5, "node_id": "n0", "node_ids": ["n0", "n1"]}),
     ("reply", 12, True, "different identity")),
    ("init-node-ids-not-list", env("c1", {"type": "init", "msg_id": 5, "node_id": "n0", "node_ids": "n0"}),
     ("reply", 12, True, "malformed init")),
    ("unknown-body-keys-ok", env("c1", {"type": "read", "msg_id": 5, "key": "big", "extra": [1, 2]}), ("ok", "read_ok")),
]


def _run_cases(n: Watched, cases, probe, check_reply) -> None:
    """Send each case, then `probe(i)` (which must succeed: the node still answers); check what the
    case got among the lines that came before the probe's reply, and the stderr lines it left."""
    failures = []
    for i, (name, line, expected) in enumerate(cases):
        n.send_raw(line)
        before = len(n.lines)
        probe(i)
        got = [orjson.loads(ln) for ln in n.lines[before:]]
        err = n.new_stderr_lines()
        why = check_reply(name, expected, got, err)
        if why:
            failures.append(f"{name}: {why}\n    stdout {got}\n    stderr {err}")
    assert n.proc.poll() is None, "the node died"
    assert not failures, "\n".join(failures)


def _check_client(name, expected, got, err) -> str | None:
    replies = [m["body"] for m in got if m["dest"] in ("c1", "c" * 2000)]
    kind = expected[0]
    if kind == "drop":
        if replies:
            return f"expected no reply, got {replies}"
        if len(err) != 1 or expected[1] not in err[0]:
            return f"expected one stderr line with {expected[1]!r}"
        return None
    if kind == "ok":
        if len(replies) != 1 or replies[0]["type"] != expected[1] or replies[0].get("in_reply_to") != 5:
            return f"expected one {expected[1]}"
        return f"expected no stderr, got {err}" if err else None
    _, code, echoes, words = expected
    if len(replies) != 1:
        return f"expected one error reply, got {replies}"
    r = replies[0]
    if r["type"] != "error" or r["code"] != code:
        return f"expected error {code}"
    if echoes != ("in_reply_to" in r) or (echoes and r["in_reply_to"] != 5):
        return "in_reply_to " + ("missing" if echoes else "echoes a msg_id that cannot be echoed")
    if len(err) != 1 or words not in err[0]:
        return f"expected one stderr line with {words!r}"
    return None


def test_every_bad_client_input_gets_its_reply_or_drop_and_the_node_carries_on() -> None:
    assert len(CLIENT_CASES) >= 40
    n = Watched()
    try:
        n.init()
        wait_leader(n, src="p")
        n.new_stderr_lines()

        def probe(i: int) -> None:
            body = n.rpc({"type": "write", "msg_id": 10_000 + i, "key": "probe", "value": i}, src="p")
            assert body["type"] == "write_ok", body

        _run_cases(n, CLIENT_CASES, probe, _check_client)
        # The accepted cases were stored exactly, and nothing else was.
        line = _read_line(n, "big")
        assert line.endswith(b'"value":%d}}' % BIG), line
        assert _read_line(n, "deep").endswith(b'"value":%s}}' % nested(kv.VALUE_DEPTH_MAX))
        assert n.rpc({"type": "read", "msg_id": 3, "key": I64_MAX}, src="p")["value"] == 1
        assert n.rpc({"type": "read", "msg_id": 4, "key": 1}, src="p")["code"] == kv.ERR_KEY_DOES_NOT_EXIST
    finally:
        n.close()


def _read_line(n: NodeProc, key, msg_id: int = 77) -> bytes:
    n.send("p", "n0", {"type": "read", "msg_id": msg_id, "key": key})
    n.recv_reply(msg_id, "p")
    return n.lines[-1]


# ---------------------------------------------------------------------- peer input (a leader)


class Peers:
    """The test plays n1 and n2 for node n0 of [n0, n1, n2]: they grant every vote, acknowledge every
    append (once n0 sent it, as a follower would after persisting) and answer every heartbeat, so n0
    leads term 1 and commits with their acknowledgements."""

    def __init__(self, n: Watched) -> None:
        self.n = n
        self.term = 0

    def answer(self, msg: dict) -> None:
        src, b = msg["dest"], msg["body"]
        if src not in ("n1", "n2"):
            return
        t = b["type"]
        if t == "rv":
            self.n.send(src, "n0", {"type": "rvr", "term": b["term"], "g": True, "pre": b["pre"]})
        elif t == "ae":
            self.term = b["term"]
            self.n.send(src, "n0", {"type": "aer", "term": b["term"], "ok": True, "m": b["pi"] + len(b["e"])})
        elif t == "hb":
            self.n.send(src, "n0", {"type": "hbr", "term": b["term"], "rs": b["rs"]})

    def rpc(self, body: dict, timeout_s: float = PROBE_TIMEOUT_S) -> dict:
        self.n.send("p", "n0", body)
        deadline = time.monotonic() + timeout_s
        while True:
            msg = self.n.recv(max(0.01, deadline - time.monotonic()))
            self.answer(msg)
            if msg["dest"] == "p" and msg["body"].get("in_reply_to") == body["msg_id"]:
                return msg["body"]


def ae(term=1, pi=0, pt=0, c=0, e=()) -> dict:
    return {"type": "ae", "term": term, "pi": pi, "pt": pt, "c": c, "e": [list(x) for x in e]}


NOOP = orjson.Fragment(b"null")
W = orjson.Fragment(b'["w","x",1]')

# (case id, sender, body (dict or raw bytes), words in the drop line). The leader is n0 in term 1 with
# a few entries; nothing here may change its term, its role or its log.
PEER_CASES = [
    ("ae-term-string", "n1", {"type": "ae", "term": "x", "pi": 0, "pt": 0, "c": 0, "e": []}, "malformed"),
    ("ae-entries-not-list", "n1", {"type": "ae", "term": 9, "pi": 0, "pt": 0, "c": 0, "e": 5}, "malformed"),
    ("ae-entry-not-pair", "n1", {"type": "ae", "term": 9, "pi": 0, "pt": 0, "c": 0, "e": [[1]]}, "malformed"),
    ("ae-term-2^70", "n1", b'{"type":"ae","term":%d,"pi":0,"pt":0,"c":0,"e":[]}' % BIG, "malformed"),
    ("ae-term-2^63", "n1", b'{"type":"ae","term":%d,"pi":0,"pt":0,"c":0,"e":[]}' % 2**63, "malformed"),
    ("ae-term-negative", "n1", ae(term=-1), "malformed"),
    ("ae-term-0", "n1", ae(term=0), "term 0"),
    ("ae-prev-index-negative", "n1", ae(term=9, pi=-1), "malformed"),
    ("ae-prev-term-negative", "n1", ae(term=9, pi=1, pt=-1), "malformed"),
    ("ae-commit-negative", "n1", ae(term=9, c=-1), "malformed"),
    ("ae-commit-2^70", "n1", b'{"type":"ae","term":9,"pi":0,"pt":0,"c":%d,"e":[]}' % BIG, "malformed"),
    ("ae-prev-term-above-term", "n1", ae(term=9, pi=1, pt=10), "prev_term 10 above"),
    ("ae-index-0-with-term", "n1", ae(term=9, pi=0, pt=1), "only index 0 has term 0"),
    ("ae-entry-with-prev-term-0", "n1", ae(term=9, pi=3, pt=0), "only index 0 has term 0"),
    ("ae-entry-term-above-term", "n1", ae(term=9, e=[(10, W)]), "above the message term"),
    ("ae-entry-terms-decrease", "n1", ae(term=9, e=[(5, W), (4, W)]), "below the previous entry"),
    ("ae-entry-below-prev-term", "n1", ae(term=9, pi=2, pt=5, e=[(4, W)]), "below prev_term"),
    ("ae-entry-term-0", "n1", ae(term=9, e=[(0, W)]), "term 0 below"),
    ("ae-entries-past-int64", "n1", ae(term=9, pi=I64_MAX, pt=1, e=[(1, W)]), "past the largest index"),
    ("ae-second-leader", "n1", ae(term=1, pi=0, pt=0, e=[(1, W)]), "second leader in term 1"),
    ("hb-second-leader", "n2", {"type": "hb", "term": 1, "c": 0, "rs": 0}, "second leader in term 1"),
    ("hb-term-0", "n1", {"type": "hb", "term": 0, "c": 0, "rs": 0}, "term 0"),
    ("hb-commit-negative", "n1", {"type": "hb", "term": 9, "c": -1, "rs": 0}, "malformed"),
    ("hb-read-seq-2^70", "n1", b'{"type":"hb","term":9,"c":0,"rs":%d}' % BIG, "malformed"),
    ("hbr-read-seq-negative", "n1", {"type": "hbr", "term": 1, "rs": -1}, "malformed"),
    ("hbr-read-seq-never-sent", "n1", {"type": "hbr", "term": 1, "rs": 10**9}, "read_seq 1000000000"),
    ("aer-ok-not-bool", "n1", {"type": "aer", "term": 1, "ok": "yes"}, "malformed"),
    ("aer-match-beyond-log", "n1", {"type": "aer", "term": 1, "ok": True, "m": 10**6}, "beyond our last index"),
    ("aer-match-negative", "n1", {"type": "aer", "term": 1, "ok": True, "m": -1}, "malformed"),
    ("aer-reject-beyond-log", "n1", {"type": "aer", "term": 1, "ok": False, "ri": 10**6, "ci": 1}, "beyond our last index"),
    ("aer-conflict-index-above-reject", "n1", {"type": "aer", "term": 1, "ok": False, "ri": 1, "ci": 2}, "conflict_index 2"),
    ("aer-conflict-term-above-term", "n1", {"type": "aer", "term": 1, "ok": False, "ri": 1, "ci": 1, "ct": 7}, "conflict_term 7"),
    ("aer-conflict-term-0", "n1", {"type": "aer", "term": 1, "ok": False, "ri": 1, "ci": 1, "ct": 0}, "conflict_term 0"),
    ("rv-missing-fields", "n1", {"type": "rv", "term": 9}, "malformed"),
    ("rv-last-index-negative", "n1", {"type": "rv", "term": 9, "li": -1, "lt": 0, "pre": False}, "malformed"),
    ("rv-last-term-above-term", "n1", {"type": "rv", "term": 9, "li": 5, "lt": 10, "pre": True}, "last_log_term 10 above"),
    ("rv-empty-log-with-term", "n1", {"type": "rv", "term": 9, "li": 0, "lt": 3, "pre": False}, "last_log_index 0"),
    ("rvr-term-2^70", "n1", b'{"type":"rvr","term":%d,"g":true,"pre":false}' % BIG, "malformed"),
    ("hbr-missing-fields", "n1", {"type": "hbr"}, "malformed"),
    ("from-unknown-node", "n9", {"type": "hb", "term": 9, "c": 0, "rs": 0}, "not a peer of ours"),
    ("from-itself", "n0", {"type": "hb", "term": 9, "c": 0, "rs": 0}, "not a peer of ours"),
    ("from-a-client", "c1", {"type": "ae", "term": 9, "pi": 0, "pt": 0, "c": 0, "e": []}, "not a peer of ours"),
]


def _peer_line(src: str, body) -> bytes:
    return raw_env(src, body) if isinstance(body, bytes) else env(src, body)


def test_every_bad_peer_message_is_dropped_with_one_line_and_counted_and_the_leader_carries_on() -> None:
    n = Watched("--election-ms", "1000")
    peers = Peers(n)
    try:
        n.init("n0", ["n0", "n1", "n2"])
        for msg_id in range(100, 400):  # until n0 leads (the peers grant its votes)
            body = peers.rpc({"type": "write", "msg_id": msg_id, "key": "probe", "value": 0})
            if body["type"] == "write_ok":
                break
            time.sleep(0.05)
        assert body["type"] == "write_ok" and peers.term == 1
        n.new_stderr_lines()
        drops = [0]

        def probe(i: int) -> None:
            body = peers.rpc({"type": "write", "msg_id": 10_000 + i, "key": "probe", "value": i})
            assert body["type"] == "write_ok", body  # still the leader of term 1, still committing

        def check(name, words, got, err):
            drops[0] += 1
            stray = [m for m in got if m["dest"] not in ("n1", "n2", "p")]
            if stray or any(m["body"]["type"] == "error" for m in got):
                return f"expected a silent drop, got {stray}"
            if len(err) != 1 or words not in err[0] or f"({drops[0]} peer messages dropped)" not in err[0]:
                return f"expected one counted stderr line with {words!r}"
            return None

        cases = [(name, _peer_line(src, body), words) for name, src, body, words in PEER_CASES]
        _run_cases(n, cases, probe, check)
        assert peers.term == 1  # no case moved the term
        assert peers.rpc({"type": "read", "msg_id": 9, "key": "probe"})["value"] == len(cases) - 1
    finally:
        n.close()


# ---------------------------------------------------------------------- peer input (a follower)


def test_a_new_leader_contradicting_committed_entries_is_dropped_not_obeyed() -> None:
    n = Watched()
    try:
        n.init("n0", ["n0", "n1", "n2"])
        # n1 leads term 1: entries 1-2 reach n0, then a commit index of 2.
        n.send("n1", "n0", ae(term=1, e=[(1, NOOP), (1, W)]))
        while not (n.recv()["body"].get("m") == 2):
            pass
        n.send("n1", "n0", ae(term=1, pi=2, pt=1, c=2))
        while not (n.recv()["body"].get("m") == 2):
            pass
        n.new_stderr_lines()
        drops = [0]

        def probe(i: int) -> None:  # a client read is still forwarded to n1, the leader it knows
            n.send("c1", "n0", {"type": "read", "msg_id": 20_000 + i, "key": "x"})
            deadline = time.monotonic() + PROBE_TIMEOUT_S
            while True:
                m = n.recv(max(0.01, deadline - time.monotonic()))
                if m["dest"] == "n1" and m["body"].get("msg_id") == 20_000 + i:
                    return

        def check(name, words, got, err):
            drops[0] += 1
            answers = [m for m in got if m["dest"] == "n2"]
            if answers:
                return f"n0 answered the hostile leader: {answers}"
            if len(err) != 1 or words not in err[0] or f"({drops[0]} peer messages dropped)" not in err[0]:
                return f"expected one counted stderr line with {words!r}"
            return None

        cases = [
            ("prev-contradicts-commit", env("n2", ae(term=2, pi=1, pt=2)), "our committed entry has 1"),
            ("entry-overwrites-commit", env("n2", ae(term=2, pi=0, pt=0, e=[(2, W)])), "our committed one 1"),
            ("second-leader-same-term", env("n2", {"type": "hb", "term": 1, "c": 0, "rs": 0}), "second leader in term 1"),
        ]
        _run_cases(n, cases, probe, check)
        # n0 still follows n1 in term 1 with its log intact: n1's next append lands after entry 2.
        n.send("n1", "n0", ae(term=1, pi=2, pt=1, c=2, e=[(1, W)]))
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while True:
            m = n.recv(max(0.01, deadline - time.monotonic()))
            if m["dest"] == "n1" and m["body"]["type"] == "aer":
                assert m["body"] == {"type": "aer", "term": 1, "ok": True, "m": 3}
                break
    finally:
        n.close()


# ---------------------------------------------------------------------- the loop-boundary catch


def test_an_unexpected_exception_from_one_message_is_a_logged_drop_and_13_but_an_assertion_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from test_node_clock import make_node

    node, _, out = make_node(["n0"])
    boom = {"exc": RuntimeError("boom")}

    def broken(src, body):
        raise boom["exc"]

    node._handlers[schema.Read] = broken
    line = env("c1", {"type": "read", "msg_id": 5, "key": 1})
    with caplog.at_level("ERROR", logger="rast"):
        node.on_line(line)
    node.flush()
    reply = orjson.loads(out[-1])["body"]
    assert reply["code"] == kv.ERR_CRASH and reply["in_reply_to"] == 5
    assert re.search(r"dropping a read from c1 after an unexpected RuntimeError at test_bad_input.py:\d+: boom",
                     caplog.text)
    boom["exc"] = AssertionError("our own invariant")
    with pytest.raises(AssertionError):
        node.on_line(line)


def test_storage_that_cannot_be_opened_at_init_still_stops_the_node() -> None:
    from rast_maelstrom import node as node_mod
    from test_node_clock import ManualLoop

    def open_storage(_dir: str, _fsync: bool):
        raise OSError(5, "Input/output error")

    n = node_mod.Node(node_mod.parse_args(["--data-dir", "/nonexistent-unused"]), [].append, ManualLoop(),
                      open_storage)
    # Not swallowed by the per-message catch: the node stops with the disk-failure status (70).
    with pytest.raises(SystemExit) as stopped:
        n.on_line(env("c0", {"type": "init", "msg_id": 1, "node_id": "n0", "node_ids": ["n0"]}))
    assert stopped.value.code == 70
