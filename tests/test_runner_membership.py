"""Unit tests of the runner's membership extension without processes: the member nemesis's
choices (bounds, leader removals, wipes only of removed nodes, adds only of spares), its RPC
handling (11 retried, indefinite outcomes resolved by reading `members`, budgets, the end-of-run
cut), the one-nemesis-op-at-a-time rule, the init field and the CLI's validation.
Seeded and on virtual time."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from rast_maelstrom.harness import checkers, cli, membership, runner
from rast_maelstrom.harness.membership import MemberNemesis, MemberPlan, init_body, member_problem
from rast_maelstrom.harness.nemesis import NodeControl, majority_size

from test_runner_units import MS, S, VirtualLoop

NODES5 = ["n0", "n1", "n2", "n3", "n4"]


# -- choices --------------------------------------------------------------------------------------
@pytest.mark.parametrize("nodes,initial", [(NODES5, 3), (NODES5, 5), (NODES5, 1), (NODES5[:3], 2),
                                           (NODES5[:2], 1)])
def test_a_random_walk_stays_within_bounds_adds_only_spares_and_wipes_only_removed_nodes(nodes, initial):
    rng = random.Random(f"walk{len(nodes)}{initial}")
    plan = MemberPlan(nodes, nodes[:initial])
    floor = majority_size(initial)
    ever = set(nodes[:initial])
    sizes: Counter = Counter()
    wipes = grows = 0
    for _ in range(5000):
        members = list(plan.members)
        f = plan.direction(rng)
        if f == "grow":
            node, wipe = plan.grow_choice(rng)
            assert node not in members                       # only a spare is added
            if wipe:
                assert node in ever and node not in members  # only a node removed earlier is wiped
                wipes += 1
            grows += 1
        else:
            node = plan.shrink_choice(rng, leader=rng.choice(members))
            assert node in members
        target = plan.target(f, node)
        assert floor <= len(target) <= len(nodes)
        assert set(target) ^ set(members) == {node}
        plan.observe(target)                                  # the cluster did it
        ever |= set(target)
        sizes[len(target)] += 1
    assert set(sizes) == set(range(floor, len(nodes) + 1)), sizes   # the whole range is walked
    if len(nodes) > initial or initial > floor:
        assert 0.3 < wipes / grows < 0.6   # half the grows of a once-member, and most are


def test_direction_is_forced_at_the_bounds_and_none_when_nothing_can_change():
    rng = random.Random(1)
    assert {MemberPlan(NODES5, NODES5).direction(rng) for _ in range(50)} == {"shrink"}
    plan = MemberPlan(NODES5, NODES5[:3])
    plan.observe(["n0", "n4"])                           # at the floor, majority of 3
    assert {plan.direction(rng) for _ in range(50)} == {"grow"}
    assert MemberPlan(["n0", "n1"], ["n0", "n1"]).direction(rng) is None
    assert {MemberPlan(NODES5, NODES5[:3]).direction(rng) for _ in range(50)} == {"grow", "shrink"}


def test_a_shrink_removes_the_known_leader_at_the_documented_rate_and_only_a_member():
    rng = random.Random(2)
    plan = MemberPlan(NODES5, NODES5[:4])
    picks = Counter(plan.shrink_choice(rng, leader="n2") for _ in range(20_000))
    p = membership.leader_probability
    assert abs(picks["n2"] / 20_000 - (p + (1 - p) / 4)) < 0.02
    assert set(picks) == {"n0", "n1", "n2", "n3"}
    # a leader that is not a member (a spare answered) is never preferred
    picks = Counter(plan.shrink_choice(rng, leader="n4") for _ in range(4000))
    assert "n4" not in picks and all(abs(c / 4000 - 0.25) < 0.03 for c in picks.values())


def test_no_wipe_when_disabled_or_when_the_node_is_down_or_never_was_a_member():
    rng = random.Random(3)
    plan = MemberPlan(NODES5, NODES5[:3])
    plan.observe(["n0", "n1"])                            # n2 removed; n3, n4 never members
    seen = Counter(plan.grow_choice(rng) for _ in range(3000))
    assert {node for (node, wipe) in seen if wipe} == {"n2"}
    assert seen[("n2", True)] > 300
    assert not any(w for (_, w) in (plan.grow_choice(rng, lambda n: False) for _ in range(300)))
    off = MemberPlan(NODES5, NODES5[:3], wipe=False)
    off.observe(["n0", "n1"])
    assert not any(w for (_, w) in (off.grow_choice(rng) for _ in range(300)))


def test_member_problem_refuses_clusters_the_nemesis_cannot_change():
    assert "at least 2 nodes" in member_problem(1, None)
    assert "neither add nor remove" in member_problem(2, None)
    assert "neither add nor remove" in member_problem(2, 2)
    assert member_problem(2, 1) is None and member_problem(3, None) is None
    assert member_problem(5, 3) is None and member_problem(5, 5) is None


def test_init_carries_members_only_when_asked():
    assert init_body("n1", ["n0", "n1"]) == {"type": "init", "msg_id": 1, "node_id": "n1",
                                              "node_ids": ["n0", "n1"]}   # the jar's, unchanged
    assert init_body("n1", ["n0", "n1"], ["n0"])["members"] == ["n0"]
    assert runner.TestOptions(bin="x", nodes=NODES5).initial_member_list() is None
    assert runner.TestOptions(bin="x", nodes=NODES5, initial_members=3).initial_member_list() == [
        "n0", "n1", "n2"]


# -- the driver -----------------------------------------------------------------------------------
class _Cluster:
    """The network and a fake cluster for the member nemesis: one committed configuration; each
    reconfigure takes the next action of `script` ("ok" by default). The leader answers."""

    def __init__(self, loop, members, leader="n0"):
        self.loop = loop
        self.members = list(members)
        self.leader = leader
        self.script: list[str] = []
        self.members_reads_fail = False
        self.down: set[str] = set()
        self.sent: list[tuple[str, dict]] = []
        self.deliver = None

    def register_client(self, client_id, deliver):
        self.deliver = deliver

    def send_body(self, src, dest, body):
        self.sent.append((dest, body, self.loop.t))
        if body["type"] == "members":
            if self.members_reads_fail:
                return
            reply = {"type": "members_ok", "members": list(self.members), "learners": []}
        else:
            action = self.script.pop(0) if self.script else "ok"
            if action == "drop":
                return
            if action in ("busy", "bad", "crash"):
                code = {"busy": 11, "bad": 12, "crash": 13}[action]
                reply = {"type": "error", "code": code, "text": action}
            else:
                self.members = list(body["members"])
                if action == "silent":
                    return
                reply = {"type": "reconfigure_ok", "members": list(self.members)}
        reply["in_reply_to"] = body["msg_id"]
        self.loop.call_later(2 * MS, self.deliver, self.leader, reply)

    def reconfigures(self):
        return [body["members"] for _, body, _ in self.sent if body["type"] == "reconfigure"]


class _Control(NodeControl):
    def __init__(self, loop):
        self.loop = loop
        self.wipes: list[tuple[str, list]] = []
        self.pending: dict[str, int] = {}
        self.unavailable: set[str] = set()

    def wipe_node(self, node, members):
        self.wipes.append((node, list(members)))
        self.pending[node] = self.loop.now_ns() + 300 * MS     # init_ok 300 ms later

    def init_pending(self, node):
        return self.loop.now_ns() < self.pending.get(node, 0)

    def node_available(self, node):
        return node not in self.unavailable


def _member_nemesis(initial=3, seed=1, interval_s=1.0, time_s=1000.0, **plan_kw):
    loop = VirtualLoop()
    cluster = _Cluster(loop, NODES5[:initial])
    control = _Control(loop)
    ops: list[tuple] = []
    nem = MemberNemesis(loop, cluster, control, MemberPlan(NODES5, NODES5[:initial], **plan_kw),
                        random.Random(seed), interval_s, lambda t, f, v: ops.append((t, f, v, loop.t)),
                        client_id="c99", rpc_timeout_s=1.0)
    nem.start(int(time_s * S))
    return loop, cluster, control, nem, ops


def _pairs(ops):
    ops = ops[:len(ops) - len(ops) % 2]    # a change may still be in flight
    assert len(ops) % 2 == 0 and all(t == "info" for t, *_ in ops)
    assert [f for _, f, _, _ in ops[0::2]] == [f for _, f, _, _ in ops[1::2]]
    return list(zip(ops[0::2], ops[1::2]))


def test_changes_are_recorded_as_nemesis_op_pairs_and_follow_the_cluster():
    loop, cluster, control, nem, ops = _member_nemesis(seed=4)
    loop.run_for(300 * S)
    pairs = _pairs(ops)
    assert len(pairs) > 100
    for (_, f, (flavor, node), _), (_, _, done, _) in pairs:
        assert done[0] == ("added" if f == "grow" else "removed") and done[1] == node
        assert (node in done[2]) == (f == "grow")
        assert flavor in (("spare", "wiped") if f == "grow" else ("leader", "member"))
        assert 2 <= len(done[2]) <= 5
    flavors = Counter(inv[2][0] for inv, _ in pairs)
    assert all(flavors[x] > 5 for x in ("spare", "wiped", "leader", "member")), flavors
    # a wipe happens before the reconfigure that adds the node back, and names a configuration
    # without it (so the empty node starts as a spare)
    assert len(control.wipes) == flavors["wiped"]
    assert all(node not in members for node, members in control.wipes)
    c = nem.counts
    assert c["attempted"] == len(pairs) == c["succeeded"] and c["wiped"] == flavors["wiped"]
    assert c["leader"] == flavors["leader"] and c["added"] + c["removed"] == len(pairs)
    assert "succeeded" in nem.summary() and nem.report()["changes"][0]["outcome"] == pairs[0][1][2]


def test_shrink_of_the_leader_uses_the_src_of_the_members_reply():
    loop, cluster, control, nem, ops = _member_nemesis(initial=5, seed=5)
    cluster.leader = "n3"                      # every reply comes from n3
    loop.run_for(200 * S)
    pairs = _pairs(ops)
    leader_removals = [inv[2][1] for inv, _ in pairs if inv[2][0] == "leader"]
    assert leader_removals and set(leader_removals) == {"n3"}
    shrinks_with_n3 = [inv for inv, done in pairs if inv[1] == "shrink"]
    assert all(inv[2][0] == "member" for inv in shrinks_with_n3 if inv[2][1] != "n3")
    assert nem.leader == "n3"


def _next_change(loop, nem, ops, steps_max=100_000):
    """Run until the next change completes; returns (invoke, completion, reconfigures sent)."""
    before = len(ops) + len(ops) % 2
    for _ in range(steps_max):
        if len(ops) >= before + 2:
            break
        loop.run_for(5 * MS)
    assert len(ops) >= before + 2, ops
    return ops[before], ops[before + 1]


def test_eleven_is_retried_and_a_silent_success_is_found_by_reading_members():
    loop, cluster, control, nem, ops = _member_nemesis(seed=6)
    cluster.script = ["busy", "busy", "silent"]
    inv, done = _next_change(loop, nem, ops)
    assert done[2][0] in ("added", "removed") and done[2][1] == inv[2][1], done
    sent = cluster.reconfigures()
    assert len(sent) == 3 and sent[0] == sent[1] == sent[2]   # two 11s retried, the third silent
    assert done[2][2] == sent[0]                   # what the members read found
    assert nem.counts["succeeded"] == 1 and nem.counts["unknown"] == 0


def test_a_definite_refusal_fails_at_once_and_an_unresolved_change_is_unknown():
    loop, cluster, control, nem, ops = _member_nemesis(seed=7)
    cluster.script = ["bad"]
    inv, done = _next_change(loop, nem, ops)
    assert done[2] == ["failed", inv[2][1], "malformed-request"]
    assert len(cluster.reconfigures()) == 1            # not retried: nothing changed
    cluster.script = ["drop"] * 100
    cluster.members_reads_fail = True
    sent_before = len(cluster.sent)
    inv, done = _next_change(loop, nem, ops)
    assert done[2] == ["unknown", inv[2][1], None]
    # the whole change (first members read to completion) keeps to the budget (3 s at a 1 s
    # interval) plus its last attempt and last read, never the 15 s maximum
    assert nem.budget_s == membership.change_s_min
    first_sent = cluster.sent[sent_before][2]
    assert nem.budget_s * S <= done[3] - first_sent <= (nem.budget_s + 2 * 1.0 + 0.1) * S
    assert nem.counts["failed"] == 1 and nem.counts["unknown"] == 1


def test_only_budget_exhaustion_with_a_definite_last_answer_is_failed():
    loop, cluster, control, nem, ops = _member_nemesis(seed=8)
    cluster.script = ["busy"] * 100
    inv, done = _next_change(loop, nem, ops)
    assert done[2] == ["failed", inv[2][1], "temporarily-unavailable"]
    assert len(cluster.reconfigures()) >= 4              # retried every 0.5 s within 3 s
    cluster.script = ["crash"] + ["busy"] * 100      # an indefinite 13 then 11s: may have happened
    inv, done = _next_change(loop, nem, ops)
    assert done[2][0] == "unknown"


def test_a_fault_op_due_during_a_change_waits_for_it_and_the_ops_never_interleave():
    loop, cluster, control, nem, ops = _member_nemesis(seed=9)
    cluster.script = ["drop", "drop", "ok"]
    loop.run_for(int(0.5 * S))
    while not nem.busy:
        loop.run_for(10 * MS)
    ran = []
    nem.when_idle(lambda: (ran.append(loop.t), ops.append(("info", "start-kill", "minority", loop.t)),
                           ops.append(("info", "start-kill", ["killed", ["n1"]], loop.t))))
    assert not ran
    loop.run_for(10 * S)
    assert ran and ops[2][1] == "start-kill" and ops[1][1] in ("grow", "shrink")
    assert ran[0] == ops[1][3]                       # right when the change completed
    nem.when_idle(lambda: ran.append("now"))         # idle: at once
    assert ran[-1] == "now" or nem.busy


def test_at_the_end_a_change_in_flight_is_cut_short_as_unknown_and_nothing_starts_after():
    loop, cluster, control, nem, ops = _member_nemesis(seed=10, time_s=5.0)
    cluster.script = ["drop"] * 100
    while not nem.busy:
        loop.run_for(10 * MS)
    loop.run_for(200 * MS)
    nem.stop()
    assert nem.busy
    nem.abort()
    assert not nem.busy
    last = _pairs(ops)[-1][1]
    assert last[2][0] == "unknown" and last[2][2] is None
    count = len(ops)
    loop.run_for(100 * S)                            # stale timers of the aborted task do nothing
    assert len(ops) == count and not nem.busy
    nem.read_final()
    loop.run_for(5 * S)
    assert nem.final_members == cluster.members and "configuration at the end: n" in nem.summary()


def test_no_change_starts_at_or_after_the_time_limit():
    loop, cluster, control, nem, ops = _member_nemesis(seed=11, time_s=20.0)
    loop.run_for(200 * S)
    assert ops and all(t <= 20 * S + 5 * S for *_, t in ops[0::2])
    assert max(t for *_, t in ops[0::2]) < 20 * S


def test_member_changes_shade_the_plots_as_member_periods():
    history = [{"index": 0, "time": 5, "type": "info", "process": "nemesis", "f": "grow",
                "value": ["spare", "n3"]},
               {"index": 1, "time": 9, "type": "info", "process": "nemesis", "f": "grow",
                "value": ["added", "n3", ["n0", "n3"]]},
               {"index": 2, "time": 10, "type": "info", "process": "nemesis",
                "f": "start-partition", "value": "one"},
               {"index": 3, "time": 11, "type": "info", "process": "nemesis",
                "f": "start-partition", "value": ["isolated", {}]}]
    periods = checkers.nemesis_periods(checkers.pair_ops(history), 100)
    assert ("member", 5, 9) in periods and ("partition", 10, 100) in periods


# -- CLI ------------------------------------------------------------------------------------------
def _opts(*flags, nodes="5", node_args=("--data-dir", "{store}/data")):
    argv = ["test", "--bin", "/bin/true", "--node-count", nodes, *flags]
    if node_args:
        argv += ["--", *node_args]
    return cli.test_options(cli._build_parser().parse_args(argv))[0]


def test_cli_initial_members_and_the_member_nemesis_reach_the_options_and_test_json():
    o = _opts("--initial-members", "3", "--nemesis", "member,partition,kill")
    assert o.initial_members == 3 and o.nemesis == ["kill", "member", "partition"]
    assert "member" in o.extensions and o.wipe and o.wipe_path == "{store}/data/{node}"
    test = runner.TestRun(o).test_json("t")
    assert test["initial_members"] == 3 and test["wipe_path"] == "{store}/data/{node}"
    assert test["absent_reads"] is True and "recovery_s" in test
    jar = runner.TestRun(_opts("--nemesis", "partition")).test_json("t")
    assert "initial_members" not in jar and "wipe_path" not in jar
    assert _opts("--initial-members", "2").initial_members == 2   # spares without changes
    assert not _opts("--nemesis", "member", "--no-wipe", node_args=()).wipe
    assert _opts("--nemesis", "member", "--wipe-path", "/d/{node}", node_args=()).wipe_path == "/d/{node}"


@pytest.mark.parametrize("flags,nodes,node_args,message", [
    (("--initial-members", "0"), "5", (), "--initial-members must be between 1 and the node count (5)"),
    (("--initial-members", "6"), "5", (), "between 1 and the node count"),
    (("--nemesis", "member"), "1", ("--data-dir", "{store}/data"), "at least 2 nodes"),
    (("--nemesis", "member"), "2", ("--data-dir", "{store}/data"), "neither add nor remove"),
    (("--nemesis", "member"), "3", (), "no node argument contains {store}"),
    (("--nemesis", "member", "--wipe-path", "{store}/data"), "3", ("--data-dir", "{store}/data"),
     "must contain {node}"),
    (("--wipe-path", "{store}/x/{node}"), "3", ("--data-dir", "{store}/data"),
     "--wipe-path applies to the member nemesis"),
    (("--no-wipe",), "3", (), "--no-wipe applies to the member nemesis"),
    (("--nemesis", "member", "--no-wipe", "--wipe-path", "/x/{node}"), "3", (), "contradict"),
])
def test_cli_refuses_membership_combinations_that_make_no_sense(flags, nodes, node_args, message,
                                                                capsys):
    argv = ["test", "--bin", "/bin/true", "--node-count", nodes, *flags]
    if node_args:
        argv += ["--", *node_args]
    assert cli.main(argv) == 254
    assert message in capsys.readouterr().out


def test_a_wipe_kills_the_node_deletes_its_wipe_path_then_restarts_it_with_the_members(tmp_path):
    opts = runner.TestOptions(bin="/bin/true", nodes=NODES5, nemesis=["member"], initial_members=3)
    run = runner.TestRun(opts)
    run.store_dir = tmp_path
    events = []
    run.kill_node = lambda node: events.append(("kill", node, (tmp_path / "data" / node).exists()))
    run.restart_node = lambda node, members=None: events.append(
        ("restart", node, (tmp_path / "data" / node).exists(), members))
    mine, other = tmp_path / "data" / "n2", tmp_path / "data" / "n1"
    (mine / "sub").mkdir(parents=True)
    (mine / "sub" / "wal-1.log").write_text("x")
    other.mkdir()
    run.wipe_node("n2", ["n0", "n1"])
    assert events == [("kill", "n2", True), ("restart", "n2", False, ["n0", "n1"])]
    assert not mine.exists() and other.exists()       # only that node's data
    run.wipe_node("n2", ["n0", "n1"])                 # nothing there: still a kill and a restart
    assert [e[0] for e in events] == ["kill", "restart", "kill", "restart"]
    run.opts.wipe_path = str(tmp_path / "elsewhere" / "{node}.db")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "n3.db").write_text("x")
    run.wipe_node("n3", ["n0"])
    assert not (tmp_path / "elsewhere" / "n3.db").exists()
