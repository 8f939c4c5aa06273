"""Tests of the lin-kv linearizability checker (rast_maelstrom.harness.linearizability).

Hand-made histories with known verdicts, then property tests: histories generated from a real
sequential execution are valid, mutated ones are invalid, and on small random histories the
checker agrees with a brute-force reference search written here from the definition.
"""

from __future__ import annotations

import functools
import random
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rast_maelstrom.harness.linearizability import check_independent, check_register

# -- helpers ---------------------------------------------------------------------------------


def hist(*events):
    """Build records from (process, type, f, value) tuples; time = 1 ms per record."""
    out = []
    for i, (p, typ, f, v) in enumerate(events):
        out.append({"index": i, "time": i * 1_000_000, "process": p, "type": typ, "f": f,
                    "value": v})
    return out


def op(p, f, v, typ="ok"):
    """An invocation immediately followed by its completion."""
    inv_v = None if f == "read" else v
    return [(p, "invoke", f, inv_v), (p, typ, f, v)]


def seq(*ops):
    return hist(*[e for o in ops for e in o])


def valid(h, **kw):
    return check_register(h, **kw)["valid?"]


# -- hand-made histories ---------------------------------------------------------------------


def test_empty_and_sequential_histories_are_valid():
    assert valid([]) is True
    h = seq(op(0, "write", 1), op(1, "read", 1), op(0, "cas", [1, 2]), op(1, "read", 2),
            op(0, "write", 0), op(1, "read", 0))
    r = check_register(h)
    assert r["valid?"] is True
    assert r["op-count"] == 6


def test_initial_read_of_a_value_is_invalid_but_nil_is_always_legal():
    assert valid(seq(op(0, "read", None))) is True
    assert valid(seq(op(0, "read", 3))) is False
    # Nil after a write is still legal (spec §5.8: a read of nil is always legal).
    assert valid(seq(op(0, "write", 1), op(1, "read", None))) is True


def test_stale_read_is_invalid_and_explained():
    h = seq(op(0, "write", 1), op(0, "write", 2), op(1, "read", 1))
    r = check_register(h, key=3)
    assert r["valid?"] is False
    assert r["op"]["index"] == 5 and r["op"]["value"] == 1
    assert r["previous-ok"]["f"] == "write" and r["previous-ok"]["value"] == 2
    assert r["window"] == []
    assert r["possible-values"] == [2]
    assert "read of key 3 returned 1" in r["explanation"]
    assert "write 2 completed" in r["explanation"]


def test_concurrent_write_and_read_allow_either_order():
    for seen in (None, 0, 1):
        h = hist((0, "invoke", "write", 0), (0, "ok", "write", 0),
                 (0, "invoke", "write", 1), (1, "invoke", "read", None),
                 (1, "ok", "read", seen), (0, "ok", "write", 1))
        assert valid(h) is True, seen
    h = hist((0, "invoke", "write", 0), (0, "ok", "write", 0),
             (0, "invoke", "write", 1), (1, "invoke", "read", None),
             (1, "ok", "read", 2), (0, "ok", "write", 1))
    assert valid(h) is False


def test_read_of_a_value_never_written_is_invalid():
    h = seq(op(0, "write", 1), op(1, "write", 2), op(2, "read", 4))
    r = check_register(h, key=0)
    assert r["valid?"] is False
    assert "No write or cas that could set the register to 4" in r["explanation"]


def test_concurrent_writes_then_reads_order_is_fixed_by_the_first_read():
    # w1 || w2, then read 2, then read 1: impossible, the order was fixed by the first read.
    h = hist((0, "invoke", "write", 1), (1, "invoke", "write", 2), (0, "ok", "write", 1),
             (1, "ok", "write", 2), (2, "invoke", "read", None), (2, "ok", "read", 2),
             (2, "invoke", "read", None), (2, "ok", "read", 1))
    r = check_register(h)
    assert r["valid?"] is False
    assert r["op"]["index"] == 7
    h[7]["value"] = 2
    assert valid(h) is True


def test_cas_chains():
    good = seq(op(0, "write", 0), op(1, "cas", [0, 1]), op(2, "cas", [1, 2]), op(0, "read", 2))
    assert valid(good) is True
    bad = seq(op(0, "write", 0), op(1, "cas", [0, 1]), op(2, "cas", [0, 2]))
    r = check_register(bad, key=7)
    assert r["valid?"] is False
    assert r["op"]["f"] == "cas"
    assert "cas of key 7 [0 2] succeeded" in r["explanation"]
    # From nil: a cas [nil x] is legal on a fresh register.
    assert valid(seq(op(0, "cas", [None, 3]), op(1, "read", 3))) is True


def test_concurrent_cas_chain_may_be_reordered():
    # cas [1 2] invoked before cas [0 1] completes: order w0, cas01, cas12 is possible.
    h = hist((0, "invoke", "write", 0), (0, "ok", "write", 0),
             (1, "invoke", "cas", [1, 2]), (2, "invoke", "cas", [0, 1]),
             (1, "ok", "cas", [1, 2]), (2, "ok", "cas", [0, 1]),
             (0, "invoke", "read", None), (0, "ok", "read", 2))
    assert valid(h) is True
    h[7]["value"] = 1
    assert valid(h) is False


def test_info_write_may_take_effect_late():
    h = seq(op(0, "write", 1)) + []
    h = hist((0, "invoke", "write", 1), (0, "ok", "write", 1),
             (1, "invoke", "write", 2), (1, "info", "write", 2),
             (0, "invoke", "read", None), (0, "ok", "read", 1),
             (0, "invoke", "read", None), (0, "ok", "read", 1),
             (0, "invoke", "read", None), (0, "ok", "read", 2))
    assert valid(h) is True
    # The same, but the write had failed: a fail never takes effect.
    h[3]["type"] = "fail"
    r = check_register(h)
    assert r["valid?"] is False
    assert "failed" in r["explanation"]


def test_info_write_may_never_take_effect():
    h = hist((0, "invoke", "write", 1), (0, "ok", "write", 1),
             (1, "invoke", "write", 2), (1, "info", "write", 2),
             (0, "invoke", "read", None), (0, "ok", "read", 1))
    assert valid(h) is True
    # And an invocation without any completion is the same as info.
    assert valid(h[:3] + h[4:]) is True


def test_info_write_takes_effect_at_most_once():
    h = hist((0, "invoke", "write", 1), (0, "ok", "write", 1),
             (1, "invoke", "write", 2), (1, "info", "write", 2),
             (0, "invoke", "read", None), (0, "ok", "read", 2),
             (0, "invoke", "write", 1), (0, "ok", "write", 1),
             (0, "invoke", "read", None), (0, "ok", "read", 2))
    assert valid(h) is False
    # Two identical info writes may explain two reads.
    h2 = h[:4] + [(h[2] | {"process": 5}), (h[3] | {"process": 5})] + h[4:]
    for i, rec in enumerate(h2):
        rec["index"] = i
    assert valid(h2) is True


def test_info_cas_effect_is_required_to_explain_a_read():
    # write 1; info cas [1 3]; read 3 can only be explained by the info cas taking effect.
    h = hist((0, "invoke", "write", 1), (0, "ok", "write", 1),
             (1, "invoke", "cas", [1, 3]), (1, "info", "cas", [1, 3]),
             (0, "invoke", "read", None), (0, "ok", "read", 3))
    assert valid(h) is True
    # ...but not when the register no longer holds 1 when the cas could apply.
    h = hist((0, "invoke", "write", 1), (0, "ok", "write", 1),
             (0, "invoke", "write", 2), (0, "ok", "write", 2),
             (1, "invoke", "cas", [1, 3]), (1, "info", "cas", [1, 3]),
             (0, "invoke", "read", None), (0, "ok", "read", 3))
    assert valid(h) is False


def test_info_chain_through_two_indeterminate_ops():
    # Only info write 5 then info cas [5 6] explains read 6; read 1 in between forces a gap.
    h = hist((0, "invoke", "write", 1), (0, "ok", "write", 1),
             (1, "invoke", "write", 5), (1, "info", "write", 5),
             (2, "invoke", "cas", [5, 6]), (2, "info", "cas", [5, 6]),
             (0, "invoke", "read", None), (0, "ok", "read", 1),
             (0, "invoke", "read", None), (0, "ok", "read", 6))
    assert valid(h) is True
    h[4]["value"] = h[5]["value"] = [4, 6]
    assert valid(h) is False


def test_a_read_explained_by_an_ok_write_leaves_the_info_write_for_later():
    # r could see 2 from the info write or from the ok write 2; only the second choice leaves
    # the info write available for the final read 2, after write 1.
    h = hist((1, "invoke", "write", 2), (1, "info", "write", 2),
             (0, "invoke", "write", 2), (2, "invoke", "read", None), (3, "invoke", "write", 1),
             (2, "ok", "read", 2), (0, "ok", "write", 2), (3, "ok", "write", 1),
             (3, "invoke", "write", 1), (3, "ok", "write", 1),
             (2, "invoke", "read", None), (2, "ok", "read", 2))
    assert valid(h) is True
    h[11]["value"] = 3
    assert valid(h) is False


def test_fail_ops_are_ignored():
    h = seq(op(0, "write", 1), op(1, "write", 2, "fail"), op(0, "read", 2))
    assert valid(h) is False
    h = seq(op(0, "write", 1), op(1, "cas", [1, 2], "fail"), op(0, "read", 1))
    assert valid(h) is True


def test_nemesis_ops_are_ignored():
    h = seq(op(0, "write", 1), op(0, "read", 1))
    h.insert(1, {"process": "nemesis", "type": "info", "f": "start-partition",
                 "value": "majority"})
    h.insert(2, {"process": "nemesis", "type": "info", "f": "start-partition",
                 "value": ["isolated", {"n1": ["n0"]}]})
    assert valid(h) is True


def test_json_values_compare_by_value():
    h = seq(op(0, "write", [1, {"a": 2}]), op(1, "read", [1, {"a": 2}]),
            op(0, "cas", [[1, {"a": 2}], "x"]), op(1, "read", "x"))
    assert valid(h) is True
    assert valid(seq(op(0, "write", [1, 2]), op(1, "read", [2, 1]))) is False
    assert valid(seq(op(0, "write", 1), op(1, "read", True))) is False


def test_integers_floats_and_booleans_are_different_values_as_under_knossos():
    # Knossos compares with Clojure's `=`: (= 3 3.0) is false, and so is (= [1] [1.0]).
    assert valid(seq(op(0, "write", 3), op(1, "read", 3))) is True
    assert valid(seq(op(0, "write", 3), op(1, "read", 3.0))) is False
    assert valid(seq(op(0, "write", 3.0), op(1, "read", 3.0))) is True
    assert valid(seq(op(0, "write", 3.0), op(1, "read", 3))) is False
    assert valid(seq(op(0, "write", 0), op(1, "read", False))) is False
    assert valid(seq(op(0, "write", 1.0), op(1, "read", True))) is False
    assert valid(seq(op(0, "write", [1, {"a": 2}]), op(1, "read", [1.0, {"a": 2}]))) is False
    assert valid(seq(op(0, "write", [1, {"a": 2}]), op(1, "read", [1, {"a": 2.0}]))) is False
    # A cas compares its `from` the same way.
    assert valid(seq(op(0, "write", 3), op(0, "cas", [3.0, 4]))) is False
    assert valid(seq(op(0, "write", 3), op(0, "cas", [3, 4]), op(1, "read", 4))) is True
    r = check_register(seq(op(0, "write", 3), op(1, "read", 3.0)))
    assert "3.0" in r["explanation"]


def test_independent_keys_and_failures_named():
    def kv(k, p, typ, f, v):
        return (p, typ, f, [k, v])
    h = hist(kv(0, 0, "invoke", "write", 1), kv(0, 0, "ok", "write", 1),
             kv(1, 1, "invoke", "write", 2), kv(1, 1, "ok", "write", 2),
             ("nemesis", "info", "start-partition", "majority"),
             kv(0, 2, "invoke", "read", None), kv(0, 2, "ok", "read", 1),
             kv(1, 3, "invoke", "read", None), kv(1, 3, "ok", "read", 1),
             kv(2, 4, "invoke", "write", 9), kv(2, 4, "info", "write", 9))
    r = check_independent(h)
    assert r["valid?"] is False
    assert r["failures"] == [1]
    assert set(r["results"]) == {0, 1, 2}
    assert r["results"][0]["valid?"] is True and r["results"][2]["valid?"] is True
    assert "read of key 1 returned 1" in r["results"][1]["explanation"]
    assert check_independent([])["valid?"] is True


def test_window_lists_the_concurrent_ops():
    h = hist((0, "invoke", "write", 1), (0, "ok", "write", 1),
             (1, "invoke", "write", 2), (3, "invoke", "write", 4), (3, "info", "write", 4),
             (2, "invoke", "read", None), (2, "ok", "read", 3), (1, "ok", "write", 2))
    r = check_register(h, key=3)
    assert r["valid?"] is False
    assert sorted(w["value"] for w in r["window"]) == [2, 4]
    assert r["possible-values"] == [1, 2, 4]
    assert "every order of the 2 concurrent ops (1 indeterminate)" in r["explanation"]


def test_unknown_on_a_tiny_config_max():
    h = hist((0, "invoke", "write", 1), (1, "invoke", "write", 2), (2, "invoke", "write", 3),
             (0, "ok", "write", 1), (1, "ok", "write", 2), (2, "ok", "write", 3))
    assert valid(h) is True
    r = check_register(h, config_max=2)
    assert r["valid?"] == "unknown" and r["cause"] == "search-limit"
    r = check_independent([dict(x, value=[5, x["value"]]) for x in h], time_limit_s=0)
    assert r["valid?"] == "unknown" and r["failures"] == [5]


def test_pathological_history_ends_unknown_within_bounds():
    writers = 40
    h = hist(*[(p, "invoke", "write", p) for p in range(writers)],
             *[(p, "ok", "write", p) for p in range(writers)])
    t0 = time.monotonic()
    r = check_register(h, config_max=20_000, time_limit_s=5, search="bfs")
    assert r["valid?"] == "unknown" and r["limit"] == "config_max"
    r = check_register(h, config_max=10**9, time_limit_s=0.5, search="bfs")
    assert r["valid?"] == "unknown" and r["limit"] == "time_limit_s"
    assert time.monotonic() - t0 < 5
    # The witness search finds an order at once; a final read of the first value written
    # forces it to search the orders of all 40 writes, and both searches give up in bounds.
    assert check_register(h)["valid?"] is True
    h = h + [{"index": 2 * writers, "time": 0, "process": writers, "type": "invoke",
              "f": "read", "value": None},
             {"index": 2 * writers + 1, "time": 0, "process": writers, "type": "ok",
              "f": "read", "value": 0}]
    t0 = time.monotonic()
    r = check_register(h, config_max=20_000, time_limit_s=5)
    assert r["valid?"] == "unknown" and r["limit"] == "config_max"
    assert "witness search stopped at its memory limit" in r["reason"]
    assert "bfs search stopped at its memory limit" in r["reason"]
    r = check_register(h, config_max=10**9, time_limit_s=1)
    assert r["valid?"] == "unknown" and r["limit"] == "time_limit_s"
    assert time.monotonic() - t0 < 8


# -- reference search and random histories ----------------------------------------------------


def reference(records, absent_reads=False) -> bool:
    """Brute force from the definition: try every order consistent with real time. With
    absent_reads, a read failed with key-does-not-exist must see the register nil."""
    pending, ops = {}, []
    for pos, rec in enumerate(records):
        if rec["process"] == "nemesis":
            continue
        if rec["type"] == "invoke":
            pending[rec["process"]] = (pos, rec)
            continue
        inv_pos, inv = pending.pop(rec["process"])
        if absent_reads and rec["f"] == "read" and rec.get("error", [None])[0] == "key-does-not-exist":
            ops.append(("absent", None, inv_pos, pos))
            continue
        if rec["type"] == "fail":
            continue
        value = rec["value"] if rec["f"] == "read" and rec["type"] == "ok" else inv["value"]
        if rec["f"] == "read" and rec["type"] == "info":
            value = None
        ret = pos if rec["type"] == "ok" else float("inf")
        ops.append((rec["f"], value, inv_pos, ret))
    for inv_pos, inv in pending.values():
        ops.append((inv["f"], None if inv["f"] == "read" else inv["value"], inv_pos, float("inf")))
    ops = [(f, tuple(v) if isinstance(v, list) else v, a, b) for f, v, a, b in ops]

    @functools.lru_cache(maxsize=None)
    def go(state, remaining):
        if all(ops[i][3] == float("inf") for i in remaining):
            return True
        for i in remaining:
            f, v, inv_pos, _ = ops[i]
            if any(ops[j][3] < inv_pos for j in remaining):
                continue
            if f == "read":
                if v is not None and v != state:
                    continue
                nxt = state
            elif f == "absent":
                if state is not None:
                    continue
                nxt = state
            elif f == "write":
                nxt = v
            else:
                if v[0] != state:
                    continue
                nxt = v[1]
            if go(nxt, remaining - {i}):
                return True
        return False

    return go(None, frozenset(range(len(ops))))


@st.composite
def random_histories(draw):
    """Arbitrary small histories over values {0, 1, 2}: valid or not."""
    procs = draw(st.integers(1, 4))
    steps = draw(st.integers(1, 16))
    busy: dict = {}
    events = []
    next_proc = list(range(procs))
    for _ in range(steps):
        t = draw(st.integers(0, procs - 1))
        p = next_proc[t]
        if p in busy:
            f, v = busy.pop(p)
            typ = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
            if f == "read" and typ == "ok":
                v = draw(st.sampled_from([None, 0, 1, 2]))
            events.append((p, typ, f, v))
            if typ == "info":
                next_proc[t] = p + procs
        else:
            f = draw(st.sampled_from(["read", "write", "cas"]))
            v = (None if f == "read" else draw(st.integers(0, 2)) if f == "write"
                 else [draw(st.integers(0, 2)), draw(st.integers(0, 2))])
            busy[p] = (f, v)
            events.append((p, "invoke", f, v))
    return hist(*events)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_histories())
def test_agrees_with_brute_force_reference(h):
    assert check_register(h)["valid?"] is reference(h)


def sequential_history(rng: random.Random, n_ops: int, info_p: float = 0.0):
    """Run a register sequentially (point i at time 100*i), then widen each op to an interval.

    Returns (records, spans): spans[i] = (op record index of the completion, states the
    register held during that op's interval).
    """
    state = None
    ops = []
    for i in range(n_ops):
        r = rng.random()
        if r < 0.45:
            f, v = "read", state
        elif r < 0.75 or state is None:
            f, v = "write", rng.randint(0, 4)
            state = v
        else:
            f, v = "cas", [state, rng.randint(0, 4)]
            state = v[1]
        point = 100 * i
        ops.append((f, v, point - rng.randint(1, 250), point + rng.randint(1, 250)))
    # Give each op a process that is free at its invocation.
    free_at: list = []
    events = []
    for k, (f, v, t_inv, t_comp) in enumerate(ops):
        p = next((q for q, t in enumerate(free_at) if t < t_inv), None)
        if p is None:
            p = len(free_at)
            free_at.append(0)
        typ = "info" if f != "read" and rng.random() < info_p else "ok"
        free_at[p] = float("inf") if typ == "info" else t_comp
        events.append((t_inv, 1, k, {"process": p, "type": "invoke", "f": f,
                                     "value": None if f == "read" else v}))
        events.append((t_comp, 0, k, {"process": p, "type": typ, "f": f, "value": v}))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    records = []
    for t, _, _, rec in events:
        rec = dict(rec, index=len(records), time=t * 1000)
        records.append(rec)
    return records


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 60))
def test_sequential_executions_with_overlapping_intervals_are_valid(seed, n_ops):
    h = sequential_history(random.Random(seed), n_ops)
    assert check_register(h)["valid?"] is True


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 60))
def test_some_completions_turned_into_info_stay_valid(seed, n_ops):
    h = sequential_history(random.Random(seed), n_ops, info_p=0.3)
    assert check_register(h)["valid?"] is True


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 60), st.integers(0, 10**6))
def test_read_of_a_value_no_op_could_have_produced_is_invalid(seed, n_ops, pick):
    h = sequential_history(random.Random(seed), n_ops, info_p=0.2)
    reads = [i for i, r in enumerate(h) if r["f"] == "read" and r["type"] == "ok"]
    if not reads:
        return
    i = reads[pick % len(reads)]
    # Values some op invoked before this read completes could have produced.
    produced = {r["value"] if r["f"] == "write" else r["value"][1]
                for r in h[:i] if r["type"] == "invoke" and r["f"] != "read"}
    bad = next(v for v in (0, 1, 2, 3, 4, 99) if v not in produced)
    h[i] = dict(h[i], value=bad)
    r = check_register(h, key=0)
    assert r["valid?"] is False
    assert r["op"]["index"] == i


# -- the witness search, per-key budgets, strict reads of absent keys ---------------------------


def test_info_heavy_history_the_exhaustive_search_gives_up_on_is_decided_by_the_witness_search():
    h = sequential_history(random.Random(1), 60, info_p=0.7)
    assert sum(r["type"] == "info" for r in h) == 30
    old = check_register(h, search="bfs", config_max=20_000)
    assert old["valid?"] == "unknown" and old["limit"] == "config_max"
    new = check_register(h, config_max=20_000)
    assert new["valid?"] is True and new["analyzer"] == "witness"
    assert new["configs-explored"] < 1_000


def _agree(h):
    """Where the breadth-first search decides, the witness search (and the competition) agrees,
    and an invalid verdict is explained the same way."""
    old = check_register(h, search="bfs")
    if old["valid?"] == "unknown":
        return
    for search in ("witness", "competition"):
        new = check_register(h, search=search)
        assert new["valid?"] is old["valid?"], search
        if old["valid?"] is False:
            for field in ("op", "previous-ok", "window", "possible-values", "explanation"):
                assert new[field] == old[field], (search, field)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_histories())
def test_witness_search_agrees_with_the_breadth_first_search_on_random_histories(h):
    _agree(h)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 50), st.integers(0, 10**6),
       st.sampled_from([0.0, 0.2, 0.5]), st.booleans())
def test_witness_search_agrees_on_info_heavy_and_mutated_histories(seed, n_ops, pick, info_p,
                                                                     mutate):
    h = sequential_history(random.Random(seed), n_ops, info_p=info_p)
    reads = [i for i, r in enumerate(h) if r["f"] == "read" and r["type"] == "ok"]
    if mutate and reads:
        i = reads[pick % len(reads)]
        h[i] = dict(h[i], value=pick % 5)
    _agree(h)


def _hard_and_easy_keys(writers=40):
    """Key "hard": `writers` concurrent writes, then a read of the first value (the search must
    try the orders of all writes); key "easy": a write and a read of it."""
    recs = [("hard", p, "invoke", "write", p) for p in range(writers)]
    recs += [("hard", p, "ok", "write", p) for p in range(writers)]
    recs += [("hard", writers, "invoke", "read", None), ("hard", writers, "ok", "read", 0),
             ("easy", 99, "invoke", "write", 7), ("easy", 99, "ok", "write", 7),
             ("easy", 99, "invoke", "read", None), ("easy", 99, "ok", "read", 7)]
    return hist(*[(p, typ, f, [k, v]) for k, p, typ, f, v in recs])


def test_each_key_has_its_own_budget_and_an_unknown_key_says_why():
    t0 = time.monotonic()
    r = check_independent(_hard_and_easy_keys(), time_limit_s=0.6)
    assert time.monotonic() - t0 < 5
    assert r["valid?"] == "unknown" and r["failures"] == ["hard"]
    assert r["results"]["easy"]["valid?"] is True
    hard = r["results"]["hard"]
    assert hard["cause"] == "search-limit" and hard["limit"] == "time_limit_s"
    assert "time limit" in hard["reason"] and "budget per key: 0.6 s" in hard["reason"]
    assert list(r["results"]) == ["hard", "easy"]  # the easy key came after the hard one


def _kv_read_fail(p, err=("key-does-not-exist", "not found")):
    return [(p, "invoke", "read", None), (p, "fail", "read", None, list(err))]


def hist_err(*events):
    """Like hist, with an optional error as a fifth element."""
    out = hist(*[e[:4] for e in events])
    for rec, e in zip(out, events):
        if len(e) > 4:
            rec["error"] = e[4]
    return out


def test_strict_reading_of_key_does_not_exist_exposes_a_lost_write():
    # An acknowledged write, then a read that says the key does not exist: the jar drops the
    # failed read and passes; the strict reading sees the key absent after a write: invalid.
    h = hist_err(*op(0, "write", 1), *_kv_read_fail(1))
    assert check_register(h)["valid?"] is True
    r = check_register(h, absent_reads=True, key=3)
    assert r["valid?"] is False
    assert r["op"]["index"] == 3 and r["op"]["type"] == "fail"
    assert "read of key 3 failed with key-does-not-exist" in r["explanation"]
    assert r["possible-values"] == [1]
    # Before any write, or concurrent with the first write, the key may well be absent.
    assert check_register(hist_err(*_kv_read_fail(1), *op(0, "write", 1)), absent_reads=True)[
        "valid?"] is True
    h = hist_err((0, "invoke", "write", 1), *_kv_read_fail(1), (0, "ok", "write", 1),
                 *op(1, "read", 1))
    assert check_register(h, absent_reads=True)["valid?"] is True
    # An info write may not have happened yet; but once a read saw it, the key exists.
    h = hist_err((0, "invoke", "write", 1), (0, "info", "write", 1), *_kv_read_fail(1),
                 *op(2, "read", 1))
    assert check_register(h, absent_reads=True)["valid?"] is True
    h = hist_err((0, "invoke", "write", 1), (0, "info", "write", 1), *op(2, "read", 1),
                 *_kv_read_fail(1))
    assert check_register(h, absent_reads=True)["valid?"] is False
    # Other definite read errors are still dropped.
    h = hist_err(*op(0, "write", 1), *_kv_read_fail(1, ("temporarily-unavailable", "no leader")))
    assert check_register(h, absent_reads=True)["valid?"] is True


def test_check_independent_says_when_absent_reads_are_read_strictly():
    h = hist_err((0, "invoke", "write", [0, 1]), (0, "ok", "write", [0, 1]),
                 (1, "invoke", "read", [0, None]),
                 (1, "fail", "read", [0, None], ["key-does-not-exist", "no such key"]))
    assert check_independent(h)["valid?"] is True
    assert "absent-reads" not in check_independent(h)
    r = check_independent(h, absent_reads=True)
    assert r["valid?"] is False and r["failures"] == [0] and r["absent-reads"] is True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_histories(), st.integers(0, 2**16))
def test_strict_absent_reads_agree_with_brute_force_reference(h, marks):
    # Some failed reads said key-does-not-exist (the others failed for another reason).
    failed = [r for r in h if r["f"] == "read" and r["type"] == "fail"]
    for i, rec in enumerate(failed):
        rec["error"] = ["key-does-not-exist" if marks >> i & 1 else "timeout", "..."]
    want = reference(h, absent_reads=True)
    for search in ("witness", "bfs"):
        assert check_register(h, absent_reads=True, search=search)["valid?"] is want, search
    assert check_register(h)["valid?"] is reference(h)
