"""Unit tests of the runner engine without processes: generator, outcomes, envelope, network,
latency, nemesis shapes and schedule, stagger, CLI validation. Seeded and on virtual time."""
from __future__ import annotations

import heapq
import itertools
import random
import statistics
from collections import Counter

import orjson
import pytest

from rast_maelstrom.harness import cli
from rast_maelstrom.harness.eventloop import Timer
from rast_maelstrom.harness.nemesis import (PARTITION_SPECS, Nemesis, PartitionFault,
                                            partition_grudge)
from rast_maelstrom.harness.network import BadLine, Network, make_latency_sampler, parse_envelope
from rast_maelstrom.harness.workload import (History, LinKvGenerator, Workload, complete_op,
                                             process_limit)

MS = 1_000_000
S = 1_000_000_000


class VirtualLoop:
    """The Loop's timer API on virtual time: run_for() jumps from timer to timer."""

    def __init__(self):
        self.t = 0
        self._heap: list = []
        self._seq = itertools.count()

    def now_ns(self) -> int:
        return self.t

    def call_at(self, deadline_ns, callback, *args):
        timer = Timer(deadline_ns, callback, args)
        heapq.heappush(self._heap, (deadline_ns, next(self._seq), timer))
        return timer

    def call_later(self, delay_ns, callback, *args):
        return self.call_at(self.t + delay_ns, callback, *args)

    def run_for(self, ns: int, steps_max: int = 10_000_000) -> None:
        end = self.t + ns
        for _ in range(steps_max):
            if not self._heap or self._heap[0][0] > end:
                break
            deadline, _, timer = heapq.heappop(self._heap)
            self.t = max(self.t, deadline)
            if timer.callback is not None:
                cb, timer.callback = timer.callback, None
                cb(*timer.args)
        self.t = max(self.t, end)


# -- generator ------------------------------------------------------------------------------------
def _ops(gen: LinKvGenerator, threads: list[int], count: int, rng: random.Random):
    procs = list(range(gen.group_size * len(gen.keys)))
    for _ in range(count):
        t = rng.choice(threads)
        g = t // gen.group_size
        yield t, gen.op(t, procs[g * gen.group_size:(g + 1) * gen.group_size])


def test_reads_only_from_threads_below_n_and_write_cas_mix_is_one_to_two():
    gen = LinKvGenerator(random.Random(1), node_count=3, concurrency=6)
    rng = random.Random(2)
    by_f: Counter = Counter()
    for thread, (f, value) in _ops(gen, list(range(6)), 30_000, rng):
        assert (f == "read") == (thread < 3)
        by_f[f] += 1
        if f == "write":
            assert 0 <= value[1] <= 4
        if f == "cas":
            assert all(0 <= v <= 4 for v in value[1])
    writes, cas = by_f["write"], by_f["cas"]
    assert abs(writes / (writes + cas) - 1 / 3) < 0.02
    assert abs(by_f["read"] / 30_000 - 0.5) < 0.02


def test_each_group_of_2n_threads_has_its_own_key_and_only_group_0_reads():
    gen = LinKvGenerator(random.Random(1), node_count=2, concurrency=12)   # 3 groups of 4
    keys_by_group: dict[int, set] = {0: set(), 1: set(), 2: set()}
    for thread, (f, value) in _ops(gen, list(range(12)), 3000, random.Random(3)):
        keys_by_group[thread // 4].add(value[0])
        if thread >= 2:
            assert f != "read"
    assert keys_by_group == {0: {0}, 1: {1}, 2: {2}}


def test_key_retires_after_21_minus_2n_process_changes_and_takes_next_unused_key():
    n = 3
    gen = LinKvGenerator(random.Random(1), node_count=n, concurrency=12)   # groups 0 and 1
    procs = list(range(6))
    assert gen.op(0, procs)[1][0] == 0
    for i in range(process_limit - 2 * n):                     # 14 infos: 20 processes seen
        procs[1] += 12
        assert gen.op(1, procs)[1][0] == 0, i
    procs[1] += 12                                             # the 21st process
    assert gen.op(1, procs)[1][0] == 2                         # next unused key (1 is group 1's)
    assert gen.op(7, list(range(6, 12)))[1][0] == 1


# -- outcomes -------------------------------------------------------------------------------------
OUTCOMES = [
    # f, reply body (None = timeout), expected type, expected error
    ("read", {"type": "read_ok", "in_reply_to": 1, "value": 3}, "ok", None),
    ("read", {"type": "read_ok", "in_reply_to": 1, "value": None, "msg_id": 5}, "ok", None),
    ("write", {"type": "write_ok", "in_reply_to": 1}, "ok", None),
    ("cas", {"type": "cas_ok", "in_reply_to": 1, "msg_id": 9}, "ok", None),
    ("cas", {"type": "error", "in_reply_to": 1, "code": 22, "text": "no"}, "fail",
     ["precondition-failed", "no"]),
    ("read", {"type": "error", "in_reply_to": 1, "code": 20}, "fail", ["key-does-not-exist", None]),
    ("write", {"type": "error", "in_reply_to": 1, "code": 11, "text": "x", "extra": 1}, "fail",
     ["temporarily-unavailable", "x"]),
    ("write", {"type": "error", "in_reply_to": 1, "code": 0, "text": "t"}, "info", ["timeout", "t"]),
    ("cas", {"type": "error", "in_reply_to": 1, "code": 13, "text": "c"}, "info", ["crash", "c"]),
    ("cas", {"type": "error", "in_reply_to": 1, "code": 1000, "text": "u"}, "info", ["unknown", "u"]),
    ("read", {"type": "error", "in_reply_to": 1, "code": 13, "text": "c"}, "fail", ["crash", "c"]),
    ("read", {"type": "error", "in_reply_to": 1, "code": 1000}, "fail", ["unknown", None]),
    ("read", None, "fail", "net-timeout"),
    ("write", None, "info", "net-timeout"),
    ("cas", None, "info", "net-timeout"),
]


@pytest.mark.parametrize("f,body,type_,error", OUTCOMES)
def test_outcome_mapping_follows_the_jars_table(f, body, type_, error):
    value = [0, None] if f == "read" else [0, 2] if f == "write" else [0, [1, 2]]
    done = complete_op(f, value, body)
    assert done["type"] == type_
    assert done.get("error") == error
    if type_ == "ok" and f == "read":
        assert done["value"] == [0, body["value"]]
    else:
        assert done["value"] == value


@pytest.mark.parametrize("f,body", [
    ("read", {"type": "read_ok", "in_reply_to": 1}),                          # no value
    ("read", {"type": "read_ok", "in_reply_to": 1, "value": 1, "extra": 0}),  # closed schema
    ("write", {"type": "write_ok", "in_reply_to": 1, "value": 1}),
    ("cas", {"type": "cas_ok", "in_reply_to": 1, "msg_id": "7"}),
    ("cas", {"type": "cas_ok", "in_reply_to": True}),
    ("write", {"type": "cas_ok", "in_reply_to": 1}),                          # wrong type
])
def test_malformed_replies_are_info_with_an_exception_even_for_reads(f, body):
    value = [0, None] if f == "read" else [0, 2] if f == "write" else [0, [1, 2]]
    done = complete_op(f, value, body)
    assert done["type"] == "info"
    assert done["error"].startswith("indeterminate: ")
    assert done["exception"]["class"] == "malformed-rpc-response"


# -- envelope -------------------------------------------------------------------------------------
@pytest.mark.parametrize("line", [
    b"not json", b"", b"[1, 2]", b'{"src": "n0", "dest": "c1", "body": [1]}',
    b'{"src": "n0", "dest": "c1", "body": {}, "extra": 1}',
    b'{"src": 1, "dest": "c1", "body": {}}',
    b'{"src": "n0", "dest": "c1", "body": {}, "id": "3"}',
])
def test_envelope_schema_is_closed(line):
    with pytest.raises(BadLine):
        parse_envelope(line)


def test_envelope_accepts_optional_id_and_any_body():
    msg = parse_envelope(b' {"src": "n0", "dest": "c1", "body": {"a": [1]}, "id": 4}\r')
    assert msg["body"] == {"a": [1]}


# -- network --------------------------------------------------------------------------------------
def _net(latency_ms=0, dist="constant", seed=0):
    loop = VirtualLoop()
    net = Network(loop, latency_ms=latency_ms, latency_dist=dist, rng=random.Random(seed))
    got: dict[str, list] = {"n0": [], "n1": [], "n2": [], "c9": []}
    for node in ("n0", "n1", "n2"):
        net.register_node(node, got[node].append)
    net.register_client("c9", lambda src, body: got["c9"].append((src, body)))
    return loop, net, got


def test_messages_to_nodes_carry_a_global_id_from_zero_and_bad_lines_stop_the_sender():
    loop, net, got = _net()
    assert net.send_body("c9", "n0", {"type": "x"}) == 0
    assert net.on_node_line("n0", b'{"src":"n0","dest":"n1","body":{"k":1}}')
    assert orjson.loads(got["n1"][0]) == {"id": 1, "src": "n0", "dest": "n1", "body": {"k": 1}}
    assert orjson.loads(got["n0"][0])["id"] == 0
    assert not net.on_node_line("n0", b'{"src":"n0","dest":"n7","body":{}}')   # unregistered
    assert not net.on_node_line("n0", b"garbage")
    assert net.on_node_line("n1", b'{"src":"n1","dest":"c9","body":{"in_reply_to":1},"id":55}')
    assert got["c9"] == [("n1", {"in_reply_to": 1})]
    stats = net.stats()
    assert stats["all"]["send-count"] == 3 and stats["clients"]["send-count"] == 2
    assert stats["servers"] == {"send-count": 1, "recv-count": 1, "msg-count": 1}


def test_partition_is_checked_at_the_receiver_by_src_and_never_cuts_clients():
    loop, net, got = _net(latency_ms=10)
    net.on_node_line("n0", b'{"src":"n0","dest":"n1","body":{"i":1}}')   # taken off at once
    net.on_node_line("n0", b'{"src":"n0","dest":"n1","body":{"i":2}}')   # queued behind it
    net.drop_grudge({"n1": ["n0"]})
    net.send_body("c9", "n1", {"i": 3})                                  # client: never cut
    loop.run_for(50 * MS)
    bodies = [orjson.loads(x)["body"]["i"] for x in got["n1"]]
    assert bodies == [1, 3]   # 1 was polled before the cut; 2 was polled during it
    net.on_node_line("n1", b'{"src":"n1","dest":"n0","body":{"i":4}}')   # other direction open
    loop.run_for(50 * MS)
    assert len(got["n0"]) == 1
    net.heal()
    net.on_node_line("n0", b'{"src":"n0","dest":"n1","body":{"i":5}}')
    loop.run_for(50 * MS)
    assert orjson.loads(got["n1"][-1])["body"]["i"] == 5


def test_constant_latency_keeps_order_and_client_traffic_has_no_latency():
    loop, net, got = _net(latency_ms=20)
    for i in range(50):
        net.on_node_line("n0", b'{"src":"n0","dest":"n1","body":{"i":%d}}' % i)
    net.send_body("c9", "n2", {"i": -1})
    assert len(got["n2"]) == 1 and not got["n1"]
    loop.run_for(19 * MS)
    assert not got["n1"]
    loop.run_for(2 * MS)
    assert [orjson.loads(x)["body"]["i"] for x in got["n1"]] == list(range(50))


def test_uniform_latency_reorders_messages_between_a_pair():
    loop, net, got = _net(latency_ms=20, dist="uniform", seed=5)
    for i in range(200):
        loop.t += MS // 4
        net.on_node_line("n0", b'{"src":"n0","dest":"n1","body":{"i":%d}}' % i)
    loop.run_for(S)
    order = [orjson.loads(x)["body"]["i"] for x in got["n1"]]
    assert sorted(order) == list(range(200)) and order != list(range(200))


@pytest.mark.parametrize("dist,mean_ms,expected_mean,low,high", [
    ("constant", 7, 7, 7, 7), ("uniform", 10, 9.5, 0, 19), ("exponential", 10, 9.5, 0, None)])
def test_latency_distributions(dist, mean_ms, expected_mean, low, high):
    draw = make_latency_sampler(dist, mean_ms, random.Random(11))
    xs = [draw() for _ in range(40_000)]
    assert all(type(x) is int for x in xs)
    assert abs(statistics.fmean(xs) - expected_mean) < 0.25
    assert min(xs) == low
    if high is not None:
        assert max(xs) == high
    if dist == "exponential":
        assert max(xs) > 5 * mean_ms


def test_random_latency_needs_a_positive_mean():
    with pytest.raises(ValueError):
        make_latency_sampler("uniform", 0, random.Random())


# -- nemesis --------------------------------------------------------------------------------------
def _hears(grudge, nodes):
    """Directed links a->b that get through."""
    return {(a, b) for a in nodes for b in nodes if a != b and a not in grudge.get(b, [])}


def _components_cut_both_ways(grudge, nodes):
    links = _hears(grudge, nodes)
    return all(((a, b) in links) == ((b, a) in links) for a in nodes for b in nodes if a != b)


@pytest.mark.parametrize("seed", range(20))
def test_partition_shapes_for_3_and_5_nodes(seed):
    for nodes in (["n0", "n1", "n2"], ["n0", "n1", "n2", "n3", "n4"]):
        n = len(nodes)
        rng = random.Random(seed)
        one = partition_grudge("one", nodes, rng)
        isolated = [x for x in nodes if len(one[x]) == n - 1]
        assert len(isolated) == 1 and _components_cut_both_ways(one, nodes)
        maj = partition_grudge("majority", nodes, rng)
        assert sorted(len(maj[x]) for x in nodes) == sorted(
            [n - n // 2] * (n // 2) + [n // 2] * (n - n // 2))
        assert _components_cut_both_ways(maj, nodes)
        third = partition_grudge("minority-third", nodes, rng)
        if n == 3:
            assert all(third[x] == [] for x in nodes)        # floor(2/3) = 0: no partition
        else:
            assert sorted(len(third[x]) for x in nodes) == [1, 1, 1, 1, 4]
        ring = partition_grudge("majorities-ring", nodes, rng)
        links = _hears(ring, nodes)
        if n == 3:   # one-way ring: each node drops exactly one peer; no pair talks both ways
            assert all(len(ring[x]) == 1 for x in nodes)
            assert len(links) == 3
            assert all((b, a) not in links for a, b in links)
        else:        # each node keeps two-way links to its 2 ring neighbours only
            assert all(len(ring[x]) == 2 for x in nodes)
            assert _components_cut_both_ways(ring, nodes)


def test_majorities_ring_for_7_nodes_lets_every_node_see_a_majority():
    nodes = [f"n{i}" for i in range(7)]
    for seed in range(20):
        ring = partition_grudge("majorities-ring", nodes, random.Random(seed))
        assert all(len(nodes) - len(ring[x]) >= 4 for x in nodes)
        assert _components_cut_both_ways(ring, nodes)


class _FakeNet:
    def __init__(self):
        self.grudges = []

    def drop_grudge(self, g):
        self.grudges.append(g)

    def heal(self):
        self.grudges.append(None)


def test_nemesis_alternates_start_and_stop_with_uniform_specs_and_records_info_pairs():
    ops = []
    net = _FakeNet()
    nem = Nemesis([PartitionFault(net, ["n0", "n1", "n2"], random.Random(1))], random.Random(2),
                  10.0, lambda t, f, v: ops.append((t, f, v)))
    for _ in range(4000):
        nem.step()
    assert all(t == "info" for t, _, _ in ops)
    fs = [f for _, f, _ in ops[::2]]
    assert fs[:4] == ["start-partition", "stop-partition"] * 2
    assert all(a != b for a, b in zip(fs, fs[1:]))
    specs = Counter(v for _, f, v in ops[::2] if f == "start-partition")
    assert set(specs) == set(PARTITION_SPECS)
    assert all(abs(c / 2000 - 0.25) < 0.04 for c in specs.values())
    assert ops[1][2][0] == "isolated" and ops[3][2] == "network-healed"
    gaps = [nem.gap_s() for _ in range(20_000)]
    assert 0 <= min(gaps) and max(gaps) < 20.0 and abs(statistics.fmean(gaps) - 10) < 0.2
    nem.teardown()
    assert net.grudges[-1] is None


# -- workload on virtual time ---------------------------------------------------------------------
class _InstantKV:
    """A correct kv behind a fake network, replying after `delay_ns` (None: never)."""

    def __init__(self, loop, delay_ns):
        self.loop, self.delay_ns, self.kv, self.clients = loop, delay_ns, {}, {}

    def register_client(self, cid, cb):
        self.clients[cid] = cb

    def unregister(self, cid):
        self.clients.pop(cid, None)

    def send_body(self, src, dest, body):
        if self.delay_ns is None:
            return
        k, t = body["key"], body["type"]
        if t == "read":
            r = {"type": "read_ok", "value": self.kv[k]} if k in self.kv else {
                "type": "error", "code": 20}
        elif t == "write":
            self.kv[k] = body["value"]
            r = {"type": "write_ok"}
        elif self.kv.get(k) == body["from"]:
            self.kv[k] = body["to"]
            r = {"type": "cas_ok"}
        else:
            r = {"type": "error", "code": 22}
        r["in_reply_to"] = body["msg_id"]
        self.loop.call_later(self.delay_ns, self.clients[src], dest, r)


def _workload(delay_ns, rate, seconds, conc=6, nodes=("n0", "n1", "n2")):
    loop = VirtualLoop()
    hist = History(loop, None)
    ops = []
    orig = hist.append
    hist.append = lambda *a, **k: ops.append(orig(*a, **k)) or ops[-1]
    wl = Workload(loop, _InstantKV(loop, delay_ns), hist, random.Random(4), nodes=list(nodes),
                  concurrency=conc, rate=rate, timeout_ms=1000, first_client_index=2 * len(nodes))
    wl.open()
    wl.start(seconds * S)
    loop.run_for(seconds * S + 2 * S)
    return ops, wl


def test_stagger_gives_the_requested_rate_and_gaps_below_2_over_rate():
    ops, wl = _workload(delay_ns=MS // 10, rate=100, seconds=60)
    invokes = [op for op in ops if op["type"] == "invoke"]
    assert abs(len(invokes) / 60 - 100) < 5
    gaps = [b["time"] - a["time"] for a, b in zip(invokes, invokes[1:])]
    assert max(gaps) < 20 * MS and min(gaps) >= 0
    assert invokes[0]["time"] == 0 and invokes[-1]["time"] < 60 * S
    assert wl.idle()
    for op in invokes:
        assert op["node"] == ["n0", "n1", "n2"][op["process"] % 6 % 3]


def test_closed_loop_does_not_make_up_missed_slots():
    # 6 threads, 100 ms per op: at most 60 ops/s however high the rate.
    ops, _ = _workload(delay_ns=100 * MS, rate=1000, seconds=10)
    invokes = [op for op in ops if op["type"] == "invoke"]
    assert 560 <= len(invokes) <= 600


def test_rate_zero_runs_no_client_ops():
    ops, _ = _workload(delay_ns=MS, rate=0, seconds=5)
    assert ops == []


def test_timeouts_fail_reads_and_info_writes_which_change_process():
    ops, wl = _workload(delay_ns=None, rate=100, seconds=5)
    done = [op for op in ops if op["type"] != "invoke"]
    assert done and all(op["error"] == "net-timeout" for op in done)
    assert all(op["type"] == ("fail" if op["f"] == "read" else "info") for op in done)
    for w in wl.workers:
        infos = sum(1 for op in done if op["type"] == "info" and op["process"] % 6 == w.thread)
        assert w.process == w.thread + 6 * infos
    assert all(b["time"] - a["time"] >= 1000 * MS for a, b in zip(ops, ops[1:])
               if a["type"] == "invoke" and b["process"] == a["process"] and b["type"] != "invoke")


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_rejects_bad_arguments_with_254(capsys):
    assert cli.main(["test", "-w", "lin-kv"]) == 254
    assert "Expected a --bin PATH_TO_BINARY to test" in capsys.readouterr().out
    assert cli.main(["test", "-w", "broadcast", "--bin", "x"]) == 254
    assert "not implemented" in capsys.readouterr().out
    assert cli.main(["test", "--bin", "x", "--nemesis", "bogus"]) == 254
    assert "Must be one of partition" in capsys.readouterr().out
    assert cli.main(["test", "--bin", "x", "--p-loss", "1.5"]) == 254
    assert cli.main(["test", "--bin", "x", "--recovery-s", "-1"]) == 254
    assert cli.main(["test", "--bin", "x", "--concurrency", "two"]) == 254
    assert cli.main(["test", "--bin", "x", "--latency-dist", "uniform"]) == 254
    assert cli.main(["test", "--bin", "x", "--bogus-flag"]) == 254
    assert cli.main(["frobnicate"]) == 254


def test_cli_parses_concurrency_and_marks_extensions_in_help(capsys):
    assert cli.parse_concurrency("2n", 3) == 6 and cli.parse_concurrency("7", 3) == 7
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["test", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--seed", "--store", "--p-loss", "--p-dup", "--recovery-s", "'kill'", "'pause'",
                 "{store}", "--lin-time-limit", "--lin-config-max", "--absent-reads", "--dup-requests",
                 "--dup-delay-ms", "--dup-target", "--initial-members", "'member'", "--wipe-path",
                 "--no-wipe"):
        assert flag in out, flag
    assert out.count("[extension]") == 17


def test_same_seed_same_ops_on_virtual_time():
    first, _ = _workload(delay_ns=3 * MS, rate=50, seconds=5)
    again, _ = _workload(delay_ns=3 * MS, rate=50, seconds=5)
    assert first == again and len(first) > 400
