"""Membership changes end to end: five bin/rast processes (three members, two spares) through the
router of tests/procnet.py, clients writing to every node the whole time. The cluster grows from
3 to 5 voters, the leader is removed (it hands leadership over first), it shrinks back to 3, a
removed node is wiped (its data directory deleted, started again as a spare) and added back,
and in the end every node reads every key back: each holds the last acknowledged write or a later one.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from procnet import ProcNet

IDS = ["n0", "n1", "n2", "n3", "n4"]
KEYS = 6  # one write in flight per key, so a key's values are acknowledged in the order sent
WRITE_TIMEOUT_S = 2.0
RECONF_TIMEOUT_S = 30.0
RECONF_TRY_S = 5.0
MEMBERS_TIMEOUT_S = 30.0
NODE_ARGS = ("--snapshot-entries", "100")  # learners catch up by InstallSnapshot


class Driver:
    def __init__(self, net: ProcNet, rng: random.Random) -> None:
        self.net = net
        self.rng = rng
        self.msg_id = 1000
        self.value = [0] * KEYS
        self.acked = [0] * KEYS  # the last acknowledged value per key
        self.in_flight: dict[int, tuple[int, int, float]] = {}  # msg_id -> (key, value, sent)
        self.ok = 0
        self.answered_by: set[str] = set()  # nodes the clients' requests reached (any node)

    def _next_id(self) -> int:
        self.msg_id += 1
        return self.msg_id

    def step(self) -> None:
        """Keep one write per key in flight (to a random live node); collect answers."""
        busy = {k for k, _, _ in self.in_flight.values()}
        for key in range(KEYS):
            if key not in busy:
                self.value[key] += 1
                mid = self._next_id()
                node = self.rng.choice(sorted(self.net.procs))
                self.answered_by.add(node)
                self.in_flight[mid] = (key, self.value[key], time.monotonic())
                self.net.send("c1", node, {"type": "write", "msg_id": mid, "key": key, "value": self.value[key]})
        self.net.pump(0.01)
        now = time.monotonic()
        for mid, (key, value, sent) in list(self.in_flight.items()):
            reply = self.net.replies.pop(("c1", mid), None)
            if reply is not None and reply["body"]["type"] == "write_ok":
                self.acked[key] = value
                self.ok += 1
            if reply is not None or now - sent > WRITE_TIMEOUT_S:
                del self.in_flight[mid]  # (an error or no answer: the next write goes on)

    def reconfigure(self, members: list[str]) -> str:
        """Until some node answers reconfigure_ok (retrying on 11 and on no answer); returns the
        node that answered (the leader that completed it). Writes go on meanwhile."""
        deadline = time.monotonic() + RECONF_TIMEOUT_S
        while time.monotonic() < deadline:
            mid = self._next_id()
            node = self.rng.choice(sorted(self.net.procs))
            self.net.send("cm", node, {"type": "reconfigure", "msg_id": mid, "members": members})
            tried = time.monotonic()
            while time.monotonic() - tried < RECONF_TRY_S and ("cm", mid) not in self.net.replies:
                self.step()
            reply = self.net.replies.pop(("cm", mid), None)
            if reply is not None and reply["body"]["type"] == "reconfigure_ok":
                assert reply["body"] == {"type": "reconfigure_ok", "in_reply_to": mid, "members": sorted(members)}
                return reply["src"]
            if reply is not None:
                assert reply["body"]["type"] == "error" and reply["body"]["code"] == 11, reply
            for _ in range(10):
                self.step()
        raise AssertionError(f"reconfigure to {members} not done in {RECONF_TIMEOUT_S} s")

    def members(self) -> tuple[dict, str]:
        deadline = time.monotonic() + MEMBERS_TIMEOUT_S  # (a first election may take a while under load)
        while time.monotonic() < deadline:
            mid = self._next_id()
            reply = self.net.rpc("cm", self.rng.choice(sorted(self.net.procs)), {"type": "members", "msg_id": mid})
            if reply is not None and reply["body"]["type"] == "members_ok":
                return reply["body"], reply["src"]
            self.step()
        raise AssertionError("no members_ok")

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step()


@pytest.mark.e2e
def test_grow_to_5_remove_the_leader_shrink_to_3_wipe_and_re_add_with_writes_going_on(tmp_path: Path) -> None:
    net = ProcNet(tmp_path, IDS, ["n0", "n1", "n2"], NODE_ARGS)
    d = Driver(net, random.Random(11))
    try:
        d.run(2.0)
        conf, leader = d.members()
        assert conf["members"] == ["n0", "n1", "n2"] and conf["learners"] == [] and leader in conf["members"]
        ok0 = d.ok
        assert ok0 > 0, "no write acknowledged before any change"

        d.reconfigure(IDS)  # 3 -> 5: n3, n4 learners, caught up, promoted
        conf, leader = d.members()
        assert conf == {"type": "members_ok", "in_reply_to": conf["in_reply_to"], "members": IDS, "learners": []}

        rest = [n for n in IDS if n != leader]
        heir = d.reconfigure(rest)  # the leader removes itself: it hands leadership over first
        assert heir != leader
        conf, new_leader = d.members()
        assert conf["members"] == rest and new_leader != leader

        three = sorted(rest[:3]) if new_leader in rest[:3] else sorted([new_leader, *rest[:2]])
        d.reconfigure(three)  # back to 3 voters
        conf, _ = d.members()
        assert conf["members"] == three
        d.run(1.0)

        gone = [n for n in IDS if n not in three]
        wiped = gone[0]
        installed: list[int] = []  # snapshots the wiped node acknowledged as installed
        net.on_peer = lambda src, body: installed.append(body["li"]) if (
            src == wiped and body["type"] == "isr" and body["done"]) else None
        net.wipe(wiped, three)  # a replaced machine: init names the configuration it rejoins
        d.run(1.5)
        back = sorted([*three, wiped])
        d.reconfigure(back)  # learner first (by a snapshot), then a voter
        conf, _ = d.members()
        assert conf["members"] == back and conf["learners"] == []
        assert installed, f"{wiped} was not caught up by a snapshot"
        d.run(1.0)
        assert d.ok > ok0 + 100, f"only {d.ok - ok0} writes acknowledged during the changes"

        # Every node reads every key back (a read is forwarded to the leader if need be).
        for deadline_s in (10.0,):
            end = time.monotonic() + deadline_s
            while d.in_flight and time.monotonic() < end:
                net.pump(0.02)
                d.in_flight = {m: v for m, v in d.in_flight.items() if ("c1", m) not in net.replies
                               and time.monotonic() - v[2] < WRITE_TIMEOUT_S}
        for node in IDS:
            for key in range(KEYS):
                for _ in range(50):
                    reply = net.rpc("c2", node, {"type": "read", "msg_id": d._next_id(), "key": key})
                    if reply is not None and reply["body"]["type"] == "read_ok":
                        break
                    net.pump(0.05)
                else:
                    raise AssertionError(f"{node} never read key {key}")
                assert reply["body"]["value"] >= d.acked[key], (node, key, reply, d.acked[key])
        assert d.answered_by >= set(IDS)  # clients talked to members and spares alike
    finally:
        net.close()
