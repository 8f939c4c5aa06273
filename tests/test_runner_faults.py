"""Unit tests of the runner's fault extensions without processes: the one-fault-at-a-time schedule
and its kind choice, kill/pause targets, p-loss/p-dup statistics, messages to a down node, the
{store} token, final reads, teardown of nemesis-killed nodes, and the CLI's nemesis options.
Seeded and on virtual time."""
from __future__ import annotations

import io
import random
from collections import Counter
from pathlib import Path

import orjson
import pytest

from rast_maelstrom.harness import cli, runner
from rast_maelstrom.harness.nemesis import (PARTITION_SPECS, Nemesis,
                                            NodeControl, PartitionFault, make_fault_kinds, process_targets)
from rast_maelstrom.harness.network import Network
from rast_maelstrom.harness.process import NodeProcess
from rast_maelstrom.harness.workload import History, Workload

from test_runner_units import MS, S, VirtualLoop, _FakeNet, _InstantKV

NODES3 = ["n0", "n1", "n2"]
NODES5 = ["n0", "n1", "n2", "n3", "n4"]


class _FakeControl(NodeControl):
    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.down: set[str] = set()
        self.paused: set[str] = set()

    def kill_node(self, node):
        assert node not in self.down
        self.down.add(node)
        self.calls.append(("kill", node))

    def restart_node(self, node):
        self.down.remove(node)
        self.calls.append(("restart", node))

    def pause_node(self, node):
        self.paused.add(node)
        self.calls.append(("pause", node))

    def resume_node(self, node):
        self.paused.remove(node)
        self.calls.append(("resume", node))


class _LossNet(_FakeNet):
    def __init__(self):
        super().__init__()
        self.p_loss = self.p_dup = 0.0

    def set_loss(self, p):
        self.p_loss = p

    def set_dup(self, p):
        self.p_dup = p


def _nemesis(seed: int, names=("kill", "partition", "pause", "loss", "dup"), nodes=NODES3):
    ops: list[tuple] = []
    net, control = _LossNet(), _FakeControl()
    kinds = make_fault_kinds(list(names), net, nodes, random.Random(seed), control=control,
                             p_loss=0.1, p_dup=0.2)
    nem = Nemesis(kinds, random.Random(seed + 1), 1.0, lambda t, f, v: ops.append((t, f, v)))
    return nem, ops, net, control


# -- schedule -------------------------------------------------------------------------------------
def test_one_fault_at_a_time_each_stop_ends_the_kind_just_started_and_kinds_are_uniform():
    nem, ops, net, control = _nemesis(7)
    for i in range(5000):
        nem.step()
        # between a start and its stop exactly that fault is on; after a stop nothing is
        active = nem.current
        assert bool(control.down) == (active is not None and nem.kinds[active].name == "kill"), i
        assert bool(control.paused) == (active is not None and nem.kinds[active].name == "pause")
        assert bool(net.p_loss) == (active is not None and nem.kinds[active].name == "loss")
        assert bool(net.p_dup) == (active is not None and nem.kinds[active].name == "dup")
    assert all(t == "info" for t, _, _ in ops)
    invokes = [f for _, f, _ in ops[::2]]
    assert [f for _, f, _ in ops[1::2]] == invokes          # each op is an invoke/completion pair
    starts, stops = invokes[::2], invokes[1::2]
    assert all(f.startswith("start-") for f in starts)
    assert [f.replace("start-", "stop-") for f in starts[:len(stops)]] == stops
    by_kind = Counter(f[len("start-"):] for f in starts)
    assert set(by_kind) == {"kill", "partition", "pause", "loss", "dup"}
    assert all(abs(c / len(starts) - 0.2) < 0.03 for c in by_kind.values()), by_kind


def test_kill_and_pause_hit_a_minority_or_sometimes_all_and_undo_the_same_nodes():
    for nodes in (NODES3, NODES5):
        nem, ops, net, control = _nemesis(3, names=("kill", "pause"), nodes=nodes)
        specs: Counter = Counter()
        for _ in range(2000):
            nem.step()
        for (_, f, spec), (_, _, done), (_, f2, _), (_, _, undone) in zip(
                ops[0::4], ops[1::4], ops[2::4], ops[3::4]):
            specs[spec] += 1
            word, hit = done
            assert word == {"start-kill": "killed", "start-pause": "paused"}[f]
            assert undone == [{"killed": "restarted", "paused": "resumed"}[word], hit]
            if spec == "all":
                assert hit == nodes
            else:
                assert 1 <= len(hit) <= (len(nodes) - 1) // 2 and len(set(hit)) == len(hit)
        assert abs(specs["all"] / sum(specs.values()) - 0.25) < 0.05
        kills = Counter(node for what, node in control.calls if what == "kill")
        assert set(kills) == set(nodes)                    # every node gets killed sometimes


def test_same_seed_same_nemesis_ops():
    a, ops_a, _, _ = _nemesis(11)
    b, ops_b, _, _ = _nemesis(11)
    c, ops_c, _, _ = _nemesis(12)
    for nem in (a, b, c):
        for _ in range(200):
            nem.step()
    assert ops_a == ops_b and ops_a != ops_c


def test_partition_alone_draws_exactly_as_the_jar_compatible_schedule_did():
    """The earlier flip-flop drew randrange(len(kinds)) per op and a spec per start; a seeded
    partition-only run must keep producing the same specs, grudges and gaps."""
    ops = []
    net = _FakeNet()
    nem = Nemesis([PartitionFault(net, NODES3, random.Random(5))], random.Random(6), 10.0,
                  lambda t, f, v: ops.append((f, v)))
    rng_old, fault_rng_old = random.Random(6), random.Random(5)
    from rast_maelstrom.harness.nemesis import partition_grudge
    active = False
    for _ in range(300):
        nem.step()
        gap = nem.gap_s()
        rng_old.randrange(1)
        if active:
            expected = [("stop-partition", None), ("stop-partition", "network-healed")]
        else:
            spec = rng_old.choice(PARTITION_SPECS)
            expected = [("start-partition", spec),
                        ("start-partition", ["isolated", partition_grudge(spec, NODES3, fault_rng_old)])]
        active = not active
        assert ops[-2:] == expected
        assert gap == rng_old.uniform(0, 20.0)


def test_final_heal_records_the_stop_of_the_active_fault_and_nothing_when_healed():
    nem, ops, net, control = _nemesis(1, names=("kill",))
    assert nem.final_heal() is None and ops == []
    nem.step()
    assert control.down
    assert nem.final_heal() == "stop-kill"
    assert not control.down and nem.current is None
    assert ops[-2][1:] == ("stop-kill", "final-heal") and ops[-1][2][0] == "restarted"


def test_process_targets_for_three_nodes_are_one_node_or_all():
    rng = random.Random(2)
    seen = Counter(tuple(process_targets("minority", NODES3, rng)) for _ in range(3000))
    assert set(seen) == {("n0",), ("n1",), ("n2",)}
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in seen.values())
    assert process_targets("all", NODES3, rng) == NODES3


# -- partitions through the real network ----------------------------------------------------------
@pytest.mark.parametrize("spec,nodes", [(s, n) for s in PARTITION_SPECS for n in (NODES3, NODES5)
                                        if not (s == "minority-third" and n is NODES3)])
def test_a_partition_cuts_the_network_until_it_heals(spec, nodes):
    """The nemesis's start-partition op reaches the network: every message from a node a
    destination holds a grudge against is dropped (and journaled as a drop), every other one is
    delivered, clients are never cut; stop-partition heals it."""
    loop = VirtualLoop()
    journal = io.BytesIO()
    net = Network(loop, latency_ms=2, latency_dist="uniform", rng=random.Random(1), journal=journal)
    got: dict[str, list] = {n: [] for n in nodes}
    for n in nodes:
        net.register_node(n, got[n].append)
    net.register_client("c9", lambda src, body: None)
    fault = PartitionFault(net, nodes, random.Random(4))

    def everyone_sends(tag):
        for src in nodes:
            for dest in nodes:
                if src != dest:
                    net.on_node_line(src, b'{"src":"%s","dest":"%s","body":{"t":"%s"}}' % (
                        src.encode(), dest.encode(), tag.encode()))
            net.send_body("c9", src, {"t": tag})
        loop.run_for(S)

    word, grudge = fault.apply("start-partition", spec)
    assert word == "isolated" and any(grudge.values())
    everyone_sends("cut")
    for dest in nodes:
        heard = sorted(orjson.loads(line)["src"] for line in got[dest])
        expected = sorted(["c9"] + [s for s in nodes if s != dest and s not in grudge.get(dest, [])])
        assert heard == expected, (dest, grudge)
        got[dest].clear()
    cut = sum(len(v) for v in grudge.values())
    assert net.drop_count == cut == journal.getvalue().count(b'"t":"drop"')
    assert fault.apply("stop-partition", None) == "network-healed"
    everyone_sends("healed")
    assert all(len(got[n]) == len(nodes) for n in nodes)  # every peer and the client
    assert net.drop_count == cut


# -- network: loss, duplication, down nodes -------------------------------------------------------
def _net(latency_ms=0, dist="constant"):
    loop = VirtualLoop()
    journal = io.BytesIO()
    net = Network(loop, latency_ms=latency_ms, latency_dist=dist, rng=random.Random(1),
                  journal=journal, fault_rng=random.Random(2))
    got: dict[str, list] = {"n0": [], "n1": [], "c9": []}
    for node in ("n0", "n1"):
        net.register_node(node, got[node].append)
    net.register_client("c9", lambda src, body: got["c9"].append(body))
    return loop, net, got, journal


def _send_many(net, count, src="n0", dest="n1"):
    for i in range(count):
        net.on_node_line(src, b'{"src":"%s","dest":"%s","body":{"i":%d}}' % (
            src.encode(), dest.encode(), i))


@pytest.mark.parametrize("latency_ms,dist", [(0, "constant"), (5, "uniform")])
def test_p_loss_drops_that_fraction_of_server_messages_and_never_client_ones(latency_ms, dist):
    loop, net, got, journal = _net(latency_ms, dist)
    net.set_loss(0.2)
    _send_many(net, 20_000)
    for i in range(2000):
        net.send_body("c9", "n0", {"i": i})
        net.on_node_line("n0", b'{"src":"n0","dest":"c9","body":{"in_reply_to":%d}}' % i)
    loop.run_for(S)
    assert abs(len(got["n1"]) / 20_000 - 0.8) < 0.015
    assert len(got["c9"]) == 2000 and len(got["n0"]) == 2000
    assert net.loss_count == 20_000 - len(got["n1"])
    assert journal.getvalue().count(b'"why":"loss"') == net.loss_count
    net.set_loss(0.0)
    _send_many(net, 1000)
    loop.run_for(S)
    assert net.loss_count == 20_000 - len(got["n1"]) + 1000


@pytest.mark.parametrize("latency_ms,dist", [(0, "constant"), (5, "uniform")])
def test_p_dup_delivers_that_fraction_of_server_messages_twice_with_the_same_id(latency_ms, dist):
    loop, net, got, journal = _net(latency_ms, dist)
    net.set_dup(0.3)
    _send_many(net, 20_000)
    net.send_body("c9", "n0", {"x": 1})
    loop.run_for(S)
    ids = Counter(orjson.loads(line)["id"] for line in got["n1"])
    assert sorted(set(ids.values())) == [1, 2] and len(ids) == 20_000
    twice = sum(1 for c in ids.values() if c == 2)
    assert abs(twice / 20_000 - 0.3) < 0.015 and twice == net.dup_count
    assert len(got["n0"]) == 1                                         # client traffic: once
    stats = net.stats()["servers"]
    assert stats["send-count"] == 20_000 and stats["recv-count"] == 20_000 + twice
    assert journal.getvalue().count(b'"t":"dup"') == twice


def test_faults_off_draw_nothing_extra_so_latencies_are_unchanged():
    def delivery_times(with_faults_api: bool):
        loop, net, got, _ = _net(5, "uniform")
        times = []
        net.inboxes["n1"].deliver = lambda line: times.append(loop.now_ns())
        if with_faults_api:
            net.set_loss(0.0)
            net.set_dup(0.0)
        for _ in range(500):
            loop.t += MS
            _send_many(net, 1)
        loop.run_for(S)
        return times
    assert delivery_times(False) == delivery_times(True)


def test_messages_to_a_down_node_vanish_including_queued_ones_until_it_is_back():
    loop, net, got, journal = _net(10)
    net.send_body("c9", "n1", {"early": 1})  # client, zero latency: delivered now
    _send_many(net, 5)                      # queued with 10 ms latency
    assert len(got["n1"]) == 1
    net.set_node_down("n1", True)
    _send_many(net, 5)
    net.send_body("c9", "n1", {"late": 1})
    loop.run_for(S)
    assert len(got["n1"]) == 1 and net.down_drop_count == 11
    assert journal.getvalue().count(b'"why":"down"') == 11
    net.set_node_down("n1", False)
    _send_many(net, 3)
    loop.run_for(S)
    assert len(got["n1"]) == 4


# -- {store} --------------------------------------------------------------------------------------
def test_store_token_becomes_the_absolute_store_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Path("store/lin-kv/20260101T000000.000Z")
    args = ["--data-dir", "{store}/data", "--x={store}", "plain"]
    out = runner.substitute_store(args, store)
    root = str((tmp_path / store).resolve())
    assert out == ["--data-dir", root + "/data", f"--x={root}", "plain"]
    assert runner.substitute_store(["a", "b"], store) == ["a", "b"]


# -- final reads on virtual time ------------------------------------------------------------------
def test_final_reads_read_every_key_used_from_each_nodes_reader_client():
    loop = VirtualLoop()
    ops = []
    hist = History(loop, None)
    orig = hist.append
    hist.append = lambda *a, **k: ops.append(orig(*a, **k)) or ops[-1]
    kv = _InstantKV(loop, MS)
    wl = Workload(loop, kv, hist, random.Random(4), nodes=NODES3, concurrency=12, rate=100,
                  timeout_ms=1000, first_client_index=6)
    wl.open()
    wl.start(3 * S)
    loop.run_for(5 * S)
    wl.stop_issuing()
    assert wl.keys_used == {0, 1} and wl.idle()
    main_count = len(ops)
    wl.start_final_reads(sorted(wl.keys_used))
    loop.run_for(S)
    assert wl.final_reads_done()
    final = ops[main_count:]
    done = [op for op in final if op["type"] != "invoke"]
    assert len(done) == 6 and all(op["type"] == "ok" and op["f"] == "read" for op in done)
    assert sorted((op["node"], op["value"][0]) for op in done) == sorted(
        (n, k) for n in NODES3 for k in (0, 1))
    assert all(op["value"][1] == kv.kv[op["value"][0]] for op in done)
    assert {op["process"] % 12 for op in final} == {0, 1, 2}    # the readers, threads 0..n-1
    assert wl.final == {"planned": 6, "ok": 6, "fail": 0, "info": 0, "not-issued": 0, "absent": 0,
                        "lost": 0, "lost-keys": []}


def test_final_reads_flag_keys_with_acknowledged_writes_that_no_longer_exist():
    loop = VirtualLoop()
    kv = _InstantKV(loop, MS)
    wl = Workload(loop, kv, History(loop, None), random.Random(4), nodes=NODES3, concurrency=12,
                  rate=100, timeout_ms=1000, first_client_index=6)
    wl.open()
    wl.start(3 * S)
    loop.run_for(5 * S)
    wl.stop_issuing()
    assert wl.acked_keys == {0, 1}
    del kv.kv[1]                      # the node forgot key 1 (say, a restart without its data)
    wl.start_final_reads([0, 1, 7])   # key 7 never had a write: missing is fine
    loop.run_for(S)
    assert wl.final["ok"] == 3 and wl.final["fail"] == 6
    assert wl.final["lost"] == 3 and wl.final["lost-keys"] == [1]
    assert wl.final["absent"] == 3 and wl.final_answered() == 6     # key 7: absent is right


def test_final_reads_of_a_dead_cluster_fail_and_stop_at_the_deadline():
    loop = VirtualLoop()
    hist = History(loop, None)
    wl = Workload(loop, _InstantKV(loop, None), hist, random.Random(4), nodes=NODES3,
                  concurrency=6, rate=100, timeout_ms=1000, first_client_index=6)
    wl.open()
    wl.start_final_reads(list(range(10)), deadline_ns=loop.now_ns() + int(2.5 * S))
    loop.run_for(10 * S)
    assert wl.final_reads_done()
    assert wl.final == {"planned": 30, "ok": 0, "fail": 9, "info": 0, "not-issued": 21, "absent": 0,
                        "lost": 0, "lost-keys": []}


# -- teardown -------------------------------------------------------------------------------------
class _FakePopen:
    def __init__(self, status):
        self.status = status
        self.pid = 999_999_999
        self.stdin, self.stdout, self.stderr = io.BytesIO(), io.BytesIO(), io.BytesIO()

    def poll(self):
        return self.status

    def wait(self, timeout=None):
        return self.status


def test_teardown_calls_a_node_dead_on_its_own_a_crash_but_not_one_the_nemesis_killed(tmp_path):
    run = runner.TestRun(runner.TestOptions(bin="/bin/true", nodes=["n0", "n1"]))
    for node, status, down in (("n0", -9, True), ("n1", 3, False)):
        proc = NodeProcess(run.loop, node, ["/bin/true"], tmp_path / f"{node}.log")
        proc.proc = _FakePopen(status)
        proc.down = down
        run.procs.append(proc)
    reports = run._teardown_nodes()
    assert len(reports) == 1 and "Node n1 crashed with exit status 3" in reports[0]


# -- CLI ------------------------------------------------------------------------------------------
def _opts(*flags):
    ns = cli._build_parser().parse_args(["test", "--bin", "/bin/true", "--node-count", "3", *flags])
    return cli.test_options(ns)[0]


def test_cli_nemesis_set_loss_and_dup_flags_and_the_jar_path():
    o = _opts("--nemesis", "partition")
    assert o.nemesis == ["partition"] and o.extensions == []
    o = _opts("--nemesis", "kill,pause,partition", "--p-loss", "0.05", "--p-dup", "0.01",
              "--recovery-s", "2")
    assert o.nemesis == ["dup", "kill", "loss", "partition", "pause"]
    assert (o.p_loss, o.p_dup, o.recovery_s) == (0.05, 0.01, 2.0)
    assert _opts("--p-loss", "0.1").nemesis == ["loss"]
    assert _opts("--nemesis", "dup", "--p-dup", "0.1").nemesis == ["dup"]
    with pytest.raises(cli.BadArgs, match="--p-dup P"):
        _opts("--nemesis", "dup")
    test = runner.TestRun(o).test_json("t")
    assert test["p_loss"] == 0.05 and test["recovery_s"] == 2.0
    assert "p_loss" not in runner.TestRun(_opts("--nemesis", "partition")).test_json("t")


def test_cli_checker_budget_and_strict_absent_reads_reach_test_json():
    def stored(*flags):
        return runner.TestRun(_opts(*flags)).test_json("t")
    jar = stored("--nemesis", "partition")
    assert jar["absent_reads"] is False  # the jar's reading: failed reads are dropped
    assert (jar["lin_time_limit_s"], jar["lin_config_max"]) == (60.0, 1_000_000)
    assert stored("--nemesis", "kill")["absent_reads"] is True  # on with the fault extensions
    assert stored("--nemesis", "kill", "--no-absent-reads")["absent_reads"] is False
    assert stored("--absent-reads")["absent_reads"] is True
    t = stored("--lin-time-limit", "600", "--lin-config-max", "5000000")
    assert (t["lin_time_limit_s"], t["lin_config_max"]) == (600.0, 5_000_000)
    with pytest.raises(cli.BadArgs, match="--lin-time-limit must be positive"):
        _opts("--lin-time-limit", "0")
