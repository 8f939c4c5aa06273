"""bin/rast and the membership extension, one process at a time: init with `members`, the shapes
of `members_ok` and `reconfigure_ok`, the definite errors (11 with no leader, 12 for malformed
input) and the configuration surviving a restart from the data directory."""

from __future__ import annotations

import time

import pytest

from test_node_protocol import NodeProc


def _init(n: NodeProc, node_id: str, node_ids: list[str], members) -> dict:
    body = {"type": "init", "msg_id": 1, "node_id": node_id, "node_ids": node_ids}
    if members is not None:
        body["members"] = members
    n.send("c0", node_id, body)
    return n.recv_reply(1, "c0")["body"]


def _until(n: NodeProc, body: dict, want, dest: str = "n0", timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    msg_id = body["msg_id"]
    while True:
        reply = n.rpc(dict(body, msg_id=msg_id), dest=dest)
        if want(reply) or time.monotonic() > deadline:
            return reply
        msg_id += 1000
        time.sleep(0.05)


def test_a_lone_member_leads_and_reports_the_configuration_with_its_spares_outside_it(tmp_path) -> None:
    n = NodeProc("--data-dir", str(tmp_path))
    try:
        assert _init(n, "n0", ["n0", "n1", "n2"], ["n0"])["type"] == "init_ok"
        ok = _until(n, {"type": "write", "msg_id": 10, "key": 1, "value": 5}, lambda r: r["type"] == "write_ok")
        assert ok == {"type": "write_ok", "in_reply_to": ok["in_reply_to"]}
        assert n.rpc({"type": "members", "msg_id": 20}) == {
            "type": "members_ok", "in_reply_to": 20, "members": ["n0"], "learners": []}
        # Already in force: answered at once.
        assert n.rpc({"type": "reconfigure", "msg_id": 21, "members": ["n0"]}) == {
            "type": "reconfigure_ok", "in_reply_to": 21, "members": ["n0"]}
        # n1 is added as a learner (committed at once: n0 is the only voter); it never answers, so
        # it is never promoted and the request gets no answer.
        n.send("c1", "n0", {"type": "reconfigure", "msg_id": 22, "members": ["n1", "n0"]})
        got = _until(n, {"type": "members", "msg_id": 30}, lambda r: r["learners"] == ["n1"])
        assert got["members"] == ["n0"] and got["learners"] == ["n1"]
        # The learner's catch-up never stalls commits.
        assert n.rpc({"type": "write", "msg_id": 40, "key": 1, "value": 6})["type"] == "write_ok"
        # Another target replaces one that is waiting on a learner (no step is in flight).
        n.send("c1", "n0", {"type": "reconfigure", "msg_id": 23, "members": ["n0", "n2"]})
        got = _until(n, {"type": "members", "msg_id": 50}, lambda r: r["learners"] == ["n2"])
        assert got == {"type": "members_ok", "in_reply_to": got["in_reply_to"], "members": ["n0"],
                       "learners": ["n2"]}
    finally:
        n.close()
    # The configuration is in the WAL: a restart comes back with it (and the write).
    n = NodeProc("--data-dir", str(tmp_path))
    try:
        assert _init(n, "n0", ["n0", "n1", "n2"], ["n0"])["type"] == "init_ok"
        got = _until(n, {"type": "members", "msg_id": 60}, lambda r: r["type"] == "members_ok")
        assert (got["members"], got["learners"]) == (["n0"], ["n2"])
        assert _until(n, {"type": "read", "msg_id": 70, "key": 1}, lambda r: r["type"] == "read_ok")["value"] == 6
    finally:
        n.close()


def test_a_spare_with_no_leader_answers_11_to_everything_and_never_campaigns() -> None:
    n = NodeProc("--election-ms", "50", "--heartbeat-ms", "10")
    try:
        assert _init(n, "n1", ["n0", "n1"], ["n0"])["type"] == "init_ok"
        time.sleep(0.6)  # a dozen election timeouts
        for body in ({"type": "write", "msg_id": 2, "key": 1, "value": 1}, {"type": "read", "msg_id": 3, "key": 1},
                     {"type": "members", "msg_id": 4}, {"type": "reconfigure", "msg_id": 5, "members": ["n1"]}):
            reply = n.rpc(body, dest="n1")
            assert reply["type"] == "error" and reply["code"] == 11, (body, reply)
        assert not [ln for ln in n.lines if b'"type":"rv"' in ln]  # no vote request ever left
    finally:
        n.close()


BAD_RECONFIGURES = [
    ({"type": "reconfigure", "msg_id": 9, "members": []}, "empty"),
    ({"type": "reconfigure", "msg_id": 9, "members": ["n0", "n9"]}, "unknown node"),
    ({"type": "reconfigure", "msg_id": 9, "members": ["n0", "n0"]}, "twice"),
    ({"type": "reconfigure", "msg_id": 9, "members": "n0"}, "not a list"),
    ({"type": "reconfigure", "msg_id": 9, "members": [0, 1]}, "not strings"),
    ({"type": "reconfigure", "msg_id": 9}, "missing"),
    ({"type": "members", "msg_id": "x"}, "bad msg_id"),
]


def test_malformed_membership_requests_get_12_and_change_nothing() -> None:
    n = NodeProc()
    try:
        assert _init(n, "n0", ["n0", "n1"], ["n0"])["type"] == "init_ok"
        for body, why in BAD_RECONFIGURES:
            n.send("c1", "n0", body)
            reply = n.recv_reply(9, "c1")["body"] if body["msg_id"] == 9 else n.recv()["body"]
            assert reply["type"] == "error" and reply["code"] == 12, (why, reply)
        got = _until(n, {"type": "members", "msg_id": 20}, lambda r: r["type"] == "members_ok")
        assert (got["members"], got["learners"]) == (["n0"], [])
    finally:
        n.close()


@pytest.mark.parametrize("members", [[], ["n9"], ["n0", "n0"], "n0"])
def test_an_init_with_malformed_members_gets_12(members) -> None:
    n = NodeProc()
    try:
        reply = _init(n, "n0", ["n0", "n1"], members)
        assert reply["type"] == "error" and reply["code"] == 12, reply
    finally:
        n.close()
