"""Analysis stage: checkers, merged verdicts, results files, history.txt, plots, timeline.

Each test builds a small store dir (test.json, history.jsonl, net-stats.json) in tmp_path, as
the engine would, and reads what `analyze` wrote the way a person (or a tool) would.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import orjson
import pytest

from rast_maelstrom.harness import analysis, checkers
from rast_maelstrom.harness.edn import Keyword, Str, dumps

MS = 1_000_000


class History:
    """Builds a contract-shaped history: dense indices, ns times, invoke/completion records."""

    def __init__(self) -> None:
        self.ops: list[dict] = []

    def add(self, t_ms: float, type_: str, process, f: str, value, **extra) -> dict:
        op = {"index": len(self.ops), "time": int(t_ms * MS), "type": type_, "process": process,
              "f": f, "value": value, **extra}
        self.ops.append(op)
        return op

    def op(self, t0_ms: float, t1_ms: float, process, f: str, value, outcome="ok", done_value=None,
           **extra) -> tuple[dict, dict]:
        """An invoke at t0 and its completion at t1 (ops on other processes may be added between)."""
        inv = self.add(t0_ms, "invoke", process, f, value)
        return inv, (t1_ms, outcome, process, f, value if done_value is None else done_value, extra)

    def done(self, pending) -> dict:
        t1_ms, outcome, process, f, value, extra = pending
        return self.add(t1_ms, outcome, process, f, value, **extra)

    def seq(self, t0_ms, t1_ms, process, f, value, outcome="ok", done_value=None, **extra) -> dict:
        """An op that completes before the next one is invoked."""
        _, pending = self.op(t0_ms, t1_ms, process, f, value, outcome, done_value, **extra)
        return self.done(pending)


def default_net(history: list[dict]) -> dict:
    return {"all": {"send-count": 60, "recv-count": 58, "msg-count": 60},
            "clients": {"send-count": 20, "recv-count": 20, "msg-count": 20},
            "servers": {"send-count": 40, "recv-count": 38, "msg-count": 40}}


def make_store(tmp_path: Path, ops: list[dict], *, net=None, test: dict | None = None) -> Path:
    """A store dir as the engine leaves it; net=... writes no net-stats.json."""
    d = tmp_path / "store" / "lin-kv" / "20261127T213000.000Z"
    d.mkdir(parents=True)
    spec = {"name": "lin-kv", "workload": "lin-kv", "nodes": ["n0", "n1", "n2"], "node_count": 3,
            "concurrency": 6, "rate": 100.0, "time_limit": 1, "availability": None,
            "nemesis": ["partition"], "seed": 1}
    spec.update(test or {})
    (d / "test.json").write_bytes(orjson.dumps(spec))
    (d / "history.jsonl").write_bytes(b"".join(orjson.dumps(op) + b"\n" for op in ops))
    if net is not ...:
        (d / "net-stats.json").write_bytes(orjson.dumps(default_net(ops) if net is None else net))
    return d


def basic_history() -> History:
    """Key 0: write 1, read 1, cas 1->2 (fails), read with timeout; a partition in the middle."""
    h = History()
    h.add(0, "info", "nemesis", "start-partition", "majority")  # the nemesis records info pairs
    h.add(1, "info", "nemesis", "start-partition", ["isolated", {"n0": ["n1", "n2"], "n1": ["n0"], "n2": ["n0"]}])
    h.seq(2, 5, 0, "write", [0, 1])
    h.seq(6, 9, 1, "read", [0, None], done_value=[0, 1])
    h.seq(10, 12, 0, "cas", [0, [3, 4]], outcome="fail", error=["precondition-failed", "expected 3 but had 1"])
    h.seq(13, 20, 1, "read", [0, None], outcome="fail", error="net-timeout")
    h.add(300, "info", "nemesis", "stop-partition", None)
    h.add(301, "info", "nemesis", "stop-partition", "network-healed")
    h.seq(400, 410, 2, "write", [0, 2], outcome="info", error="net-timeout")
    return h


def invalid_history() -> History:
    """Key 0 is fine; key 1 reads 3, a value nobody wrote."""
    h = History()
    h.seq(0, 2, 0, "write", [0, 1])
    h.seq(3, 4, 1, "read", [0, None], done_value=[0, 1])
    h.seq(5, 7, 0, "write", [1, 2])
    h.seq(8, 9, 1, "read", [1, None], done_value=[1, 3])
    return h


def stub_checker(bad_key=None, bad_index=None, explanation="read 3, but the register held 2"):
    def check(history, **_kwargs):
        keys = sorted({op["value"][0] for op in history if isinstance(op["process"], int)})
        results = {k: {"valid?": True, "op-count": 1} for k in keys}
        if bad_key is not None:
            bad = history[bad_index]
            results[bad_key] = {"valid?": False, "op-count": 2, "op": {**bad, "value": bad["value"][1]},
                                "previous-ok": None, "window": [], "explanation": explanation}
        failures = [k for k, r in results.items() if r["valid?"] is not True]
        return {"valid?": not failures, "results": results, "failures": failures}
    return check


# --------------------------------------------------------------------------------------------
# A tiny EDN reader, enough to read results.edn back.


class Kw(str):
    pass


_TOKEN = re.compile(r'\s*(?:,\s*)*(#\{|##\w+|[{}\[\]()]|"(?:[^"\\]|\\.)*"|[^\s,{}\[\]()"]+)')


def read_edn(text: str):
    tokens = _TOKEN.findall(text)
    pos = 0

    def parse():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok.startswith("#") and tok not in ("#{", "##NaN"):
            return parse()   # a record tag such as #knossos.model.CASRegister: read its map
        if tok in ("{", "[", "#{", "("):
            close = {"{": "}", "[": "]", "#{": "}", "(": ")"}[tok]
            items = []
            while tokens[pos] != close:
                items.append(parse())
            pos += 1
            if tok == "{":
                assert len(items) % 2 == 0, "odd map"
                return {_hashable(items[i]): items[i + 1] for i in range(0, len(items), 2)}
            return items if tok in ("[", "(") else {_hashable(x) for x in items}
        if tok.startswith('"'):
            return bytes(tok[1:-1], "utf-8").decode("unicode_escape")
        if tok.startswith(":"):
            return Kw(tok[1:])
        if tok in ("nil", "true", "false"):
            return {"nil": None, "true": True, "false": False}[tok]
        if tok == "##NaN":
            return float("nan")
        return float(tok) if re.search(r"[.eE]", tok) else int(tok)

    value = parse()
    assert pos == len(tokens), f"trailing tokens: {tokens[pos:pos + 5]}"
    return value


def _hashable(x):
    return tuple(x) if isinstance(x, list) else x


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


# --------------------------------------------------------------------------------------------
# Checkers.


def test_stats_counts_completions_by_f(tmp_path):
    results = analysis.analyze(make_store(tmp_path, basic_history().ops))
    stats = results["stats"]
    assert (stats["count"], stats["ok-count"], stats["fail-count"], stats["info-count"]) == (5, 2, 2, 1)
    assert stats["by-f"]["read"] == {"count": 2, "ok-count": 1, "fail-count": 1, "info-count": 0, "valid?": True}
    # cas never succeeded: the stats checker is false, like the jar's (not :unknown).
    assert stats["by-f"]["cas"]["valid?"] is False
    assert stats["valid?"] is False
    assert results["valid?"] is False


def test_stats_valid_when_every_f_has_an_ok_and_on_empty_history():
    h = History()
    h.seq(0, 1, 0, "write", [0, 1])
    h.seq(2, 3, 0, "write", [0, 2], outcome="fail", error="net-timeout")
    assert checkers.stats(h.ops)["valid?"] is True
    empty = checkers.stats([])
    assert empty["valid?"] is True and empty["count"] == 0 and empty["by-f"] == {}


def test_availability_without_requirement_is_always_valid(tmp_path):
    results = analysis.analyze(make_store(tmp_path, basic_history().ops))
    avail = results["availability"]
    assert avail["valid?"] is True
    assert avail["ok-fraction"] == pytest.approx(2 / 5)  # 2 ok of 5 client invokes; nemesis excluded


def test_availability_requirement_from_test_json_and_override(tmp_path):
    store = make_store(tmp_path, basic_history().ops, test={"availability": "total"})
    assert analysis.analyze(store)["availability"]["valid?"] is False
    assert analysis.analyze(store, availability=0.4)["availability"]["valid?"] is True
    assert analysis.analyze(store, availability=0.5)["availability"]["valid?"] is False


def test_availability_rules():
    h = History()
    h.seq(0, 1, 0, "write", [0, 1])
    assert checkers.availability(h.ops, "total") == {"valid?": True, "ok-fraction": 1.0, "required": "total"}
    assert checkers.availability([], None)["ok-fraction"] == 1.0
    with pytest.raises(ValueError):
        checkers.availability(h.ops, "most")


def test_net_msgs_per_op_over_client_invocations(tmp_path):
    results = analysis.analyze(make_store(tmp_path, basic_history().ops))
    net = results["net"]
    # 5 client invokes (the 2 nemesis invokes do not count): 60/5 and 40/5.
    assert net["all"]["msgs-per-op"] == pytest.approx(12.0)
    assert net["servers"]["msgs-per-op"] == pytest.approx(8.0)
    assert "msgs-per-op" not in net["clients"]
    assert net["clients"]["msg-count"] == 20 and net["valid?"] is True


def test_net_without_client_ops_has_no_msgs_per_op():
    net = checkers.net(default_net([]), [])
    assert "msgs-per-op" not in net["all"] and net["valid?"] is True


def test_merge_valid_priority():
    assert checkers.merge_valid([True, "unknown", False, True]) is False
    assert checkers.merge_valid([True, "unknown"]) == "unknown"
    assert checkers.merge_valid([True, True]) is True
    assert checkers.merge_valid([]) is True


def test_a_crashing_checker_becomes_unknown_and_the_rest_still_runs(tmp_path, monkeypatch):
    h = History()
    h.seq(0, 1, 0, "write", [0, 1])
    h.seq(2, 3, 1, "read", [0, None], done_value=[0, 1])

    def boom(history, **_kwargs):
        raise RuntimeError("checker exploded")

    monkeypatch.setattr(analysis, "check_independent", boom)
    store = make_store(tmp_path, h.ops, net=...)  # and no net-stats.json at all
    results = analysis.analyze(store)
    assert results["workload"]["valid?"] == "unknown"
    assert "checker exploded" in results["workload"]["error"]
    assert results["net"]["valid?"] == "unknown" and "net-stats.json" in results["net"]["error"]
    assert results["stats"]["valid?"] is True
    assert results["valid?"] == "unknown"
    assert (store / "results.json").exists() and (store / "latency-raw.png").exists()
    assert analysis.verdict_line(results["valid?"]).startswith("Errors occurred during analysis")


def test_guarded_turns_exceptions_into_unknown():
    assert checkers.guarded("x", lambda: 1 / 0)["valid?"] == "unknown"
    assert "ZeroDivisionError" in checkers.guarded("x", lambda: 1 / 0)["error"]
    assert checkers.guarded("x", lambda: {"valid?": True}) == {"valid?": True}


# --------------------------------------------------------------------------------------------
# Files.


def test_history_txt_lines(tmp_path):
    store = make_store(tmp_path, basic_history().ops)
    analysis.analyze(store)
    lines = (store / "history.txt").read_text().splitlines()
    assert lines == [
        ":nemesis\t:info\t:start-partition\t:majority",
        ':nemesis\t:info\t:start-partition\t[:isolated {"n0" #{"n1" "n2"}, "n1" #{"n0"}, "n2" #{"n0"}}]',
        "0\t:invoke\t:write\t[0 1]",
        "0\t:ok\t:write\t[0 1]",
        "1\t:invoke\t:read\t[0 nil]",
        "1\t:ok\t:read\t[0 1]",
        "0\t:invoke\t:cas\t[0 [3 4]]",
        '0\t:fail\t:cas\t[0 [3 4]]\t[:precondition-failed expected 3 but had 1]',
        "1\t:invoke\t:read\t[0 nil]",
        "1\t:fail\t:read\t[0 nil]\t:net-timeout",
        ":nemesis\t:info\t:stop-partition\tnil",
        ":nemesis\t:info\t:stop-partition\t:network-healed",
        "2\t:invoke\t:write\t[0 2]",
        "2\t:info\t:write\t[0 2]\t:net-timeout",
    ]
    # The per-key history prints the register's value (key left out) and keeps nemesis ops.
    key_lines = (store / "independent" / "0" / "history.txt").read_text().splitlines()
    assert key_lines[2:4] == ["0\t:invoke\t:write\t1", "0\t:ok\t:write\t1"]
    assert key_lines[0].startswith(":nemesis\t:info") and len(key_lines) == 14


def test_results_edn_reads_back_with_the_jar_keywords(tmp_path):
    store = make_store(tmp_path, basic_history().ops)
    results = analysis.analyze(store)
    edn = read_edn((store / "results.edn").read_text())
    assert set(edn) >= {Kw(k) for k in ("perf", "timeline", "exceptions", "stats", "availability", "net",
                                        "workload", "valid?")}
    assert edn[Kw("valid?")] is False
    assert edn[Kw("stats")][Kw("by-f")][Kw("cas")][Kw("ok-count")] == 0
    assert edn[Kw("net")][Kw("all")][Kw("msgs-per-op")] == pytest.approx(12.0)
    assert edn[Kw("perf")][Kw("latency-graph")] == {Kw("valid?"): True}
    assert edn[Kw("workload")][Kw("results")][0][Kw("timeline")] == {Kw("valid?"): True}
    assert edn[Kw("workload")][Kw("failures")] == []
    # results.json says the same in JSON.
    as_json = orjson.loads((store / "results.json").read_bytes())
    assert as_json["valid?"] is False and as_json["stats"]["count"] == results["stats"]["count"]


def test_results_edn_writes_unknown_as_a_keyword(tmp_path, monkeypatch):
    monkeypatch.setattr(analysis, "check_independent", lambda h, **k: {"valid?": "unknown", "results": {
        0: {"valid?": "unknown", "cause": "search-limit", "op-count": 3}}, "failures": [0]})
    h = History()
    h.seq(0, 1, 0, "write", [0, 1])
    store = make_store(tmp_path, h.ops)
    analysis.analyze(store)
    text = (store / "results.edn").read_text()
    assert "{:linearizable {:valid? :unknown, :cause :search-limit, :analyzer :linear}" in text
    assert read_edn(text)[Kw("valid?")] == Kw("unknown")


def test_edn_writer_small_values():
    assert dumps({"valid?": True, "count": 3, "x": None}) == "{:valid? true, :count 3, :x nil}"
    assert dumps([0, [1, 4]]) == "[0 [1 4]]"
    assert dumps({0: {"a b": "q\"uote\n"}}) == '{0 {"a b" "q\\"uote\\n"}}'
    assert dumps({Str("n1"): {"n0", "n2"}}) == '{"n1" #{"n0" "n2"}}'
    assert dumps([Keyword("ok"), 1.5, float("nan")]) == "[:ok 1.5 ##NaN]"
    with pytest.raises(TypeError):
        dumps(object())


def shaded_columns(path: Path, colour: str = "#E9DCA0") -> list[int]:
    """x pixel columns of the PNG in which the fault-period colour fills a tall run of pixels."""
    from matplotlib.image import imread

    rgb = (imread(path)[:, :, :3] * 255).round()
    want = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    hit = (abs(rgb - want) <= 2).all(axis=2)
    return [x for x in range(hit.shape[1]) if hit[:, x].sum() > hit.shape[0] // 4]


def test_plots_are_900x400_pngs_with_fault_periods(tmp_path):
    store = make_store(tmp_path, basic_history().ops)
    results = analysis.analyze(store)
    for name in ("latency-raw.png", "latency-quantiles.png", "rate.png"):
        assert png_size(store / name) == (900, 400), name
        # The partition (the run's first 301 ms of 410) is one shaded band.
        cols = shaded_columns(store / name)
        assert len(cols) > 100, f"{name}: {len(cols)} shaded columns"
        span = cols[-1] - cols[0] + 1  # (grid lines and points drawn over it leave a few gaps)
        assert len(cols) > 0.9 * span, f"{name}: the shading is not one band"
    clients = [op for op in basic_history().ops if op["process"] != "nemesis"]
    quiet = make_store(tmp_path / "quiet", [dict(op, index=i) for i, op in enumerate(clients)])
    analysis.analyze(quiet)
    for name in ("latency-raw.png", "latency-quantiles.png", "rate.png"):
        assert shaded_columns(quiet / name) == [], f"{name} shaded without a fault"
    assert results["perf"]["valid?"] is True
    assert checkers.nemesis_periods(checkers.pair_ops(basic_history().ops), 10**9) == [
        ("partition", 0, 301 * MS)]


def test_plots_of_an_empty_history(tmp_path):
    store = make_store(tmp_path, [])
    results = analysis.analyze(store)
    assert png_size(store / "rate.png") == (900, 400)
    assert results["stats"]["valid?"] is True and results["availability"]["ok-fraction"] == 1.0


def test_bucket_sizes_scale_with_run_length():
    from rast_maelstrom.harness.plots import bucket_sizes_s

    assert bucket_sizes_s(10) == (0.5, 0.25)
    assert bucket_sizes_s(60) == (5.0, 2.0)
    assert bucket_sizes_s(3600) == (30.0, 10.0)  # never coarser than the jar's


# --------------------------------------------------------------------------------------------
# Timeline and failures.


def test_timeline_shows_every_op_and_marks_the_failing_one(tmp_path, monkeypatch):
    h = invalid_history()
    monkeypatch.setattr(analysis, "check_independent", stub_checker(bad_key=1, bad_index=7))
    store = make_store(tmp_path, h.ops)
    analysis.analyze(store)
    page = (store / "timeline.html").read_text()
    assert "<script src" not in page and "<link" not in page and "http" not in page
    boxes = re.findall(r"<div class='op ([^']*)'[^>]*data-index='(\d+)'", page)
    assert sorted(int(i) for _, i in boxes) == [op["index"] for op in h.ops if op["type"] == "invoke"]
    bad = [int(i) for cls, i in boxes if "bad" in cls.split()]
    assert bad == [6]  # the invoke of the read that completed at index 7
    assert "read 3, but the register held 2" in page
    assert "NOT LINEARIZABLE" in page


def test_timeline_cap_keeps_the_failing_op_and_says_so():
    from rast_maelstrom.harness.timeline import render_timeline

    h = History()
    for i in range(20):
        h.seq(10 * i, 10 * i + 5, i % 3, "write", [0, i])
    pairs = checkers.pair_ops(h.ops)
    page = render_timeline(pairs, marks={0: {"op": h.ops[39], "explanation": "bad"}}, ops_max=5)
    assert page.count("<div class='op ") == 5
    assert "Capped:" in page and "showing 5 of 20" in page
    assert re.search(r"class='op ok bad' id='op-19' data-index='38'", page)


def test_invalid_history_is_invalid_with_the_key_in_failures(tmp_path):
    # The real linearizability checker.
    store = make_store(tmp_path, invalid_history().ops)
    results = analysis.analyze(store)
    assert results["valid?"] is False
    assert results["workload"]["valid?"] is False
    assert results["workload"]["failures"] == [1]
    assert results["workload"]["results"][0]["valid?"] is True
    failure = (store / "independent" / "1" / "failure.txt").read_text()
    assert failure.startswith("Key 1 is not linearizable.")
    assert ">>#7" in failure  # the failing op, marked in the key's history
    assert not (store / "independent" / "0" / "failure.txt").exists()
    page = (store / "timeline.html").read_text()
    assert re.search(r"class='op ok bad' id='op-\d+' data-index='6'", page)
    lines = analysis.summary_lines(results)
    assert any("NOT linearizable on 1 of 2 keys: 1." in line for line in lines)
    assert any(line.startswith("  key 1: ") for line in lines)


def test_summary_lines_report_counts_availability_latency_and_messages(tmp_path):
    results = analysis.analyze(make_store(tmp_path, basic_history().ops, test={"availability": 0.3}))
    text = "\n".join(analysis.summary_lines(results))
    assert "5 client ops completed: 2 ok, 2 fail, 1 info" in text
    assert "Availability: 0.400 of invocations ok, required ≥ 0.3: met." in text
    assert "Latency of ok ops: p50 3.0 ms, p99 3.0 ms" in text
    assert "Messages per op: 12.00 (servers 8.00)." in text
    assert "No op of kind cas succeeded" in text
    assert analysis.verdict_line(False).startswith("Analysis invalid!")


def test_summary_lines_work_on_results_read_back_from_results_json(tmp_path):
    store = make_store(tmp_path, invalid_history().ops)
    analysis.analyze(store)
    results = orjson.loads((store / "results.json").read_bytes())  # keys are strings now
    lines = analysis.summary_lines(results)
    assert any("NOT linearizable on 1 of 2 keys: 1." in line for line in lines)
    assert not any("undecided" in line for line in lines)


def test_an_invalid_key_gets_its_own_timeline(tmp_path, monkeypatch):
    monkeypatch.setattr(analysis, "check_independent", stub_checker(bad_key=1, bad_index=7))
    store = make_store(tmp_path, invalid_history().ops)
    analysis.analyze(store)
    page = (store / "independent" / "1" / "timeline.html").read_text()
    assert re.search(r"class='op ok bad' id='op-\d+' data-index='6'", page)
    assert "data-index='0'" not in page  # key 0's ops are not on key 1's page
    # As the jar's independent checker, a valid key gets its timeline too.
    valid_page = (store / "independent" / "0" / "timeline.html").read_text()
    assert "data-index='0'" in valid_page and "data-index='6'" not in valid_page


def _final_heal_history(final_read_outcomes: list[dict]) -> list[dict]:
    ops = [
        {"type": "invoke", "process": 0, "f": "write", "value": [1, 3]},
        {"type": "ok", "process": 0, "f": "write", "value": [1, 3]},
        {"type": "info", "process": "nemesis", "f": "stop-kill", "value": "final-heal"},
        {"type": "info", "process": "nemesis", "f": "stop-kill", "value": ["restarted", ["n0"]]},
    ]
    for i, done in enumerate(final_read_outcomes):
        key = done["value"][0]
        ops.append({"type": "invoke", "process": 10 + i, "f": "read", "value": [key, None]})
        ops.append({"process": 10 + i, "f": "read", **done})
    for i, op in enumerate(ops):
        op["index"], op["time"] = i, i * 1000
    return ops


def test_durability_flags_an_acknowledged_key_that_final_reads_find_missing_or_nil() -> None:
    from rast_maelstrom.harness import checkers

    ok = checkers.durability(_final_heal_history([
        {"type": "ok", "value": [1, 3]},
        {"type": "fail", "value": [2, None], "error": ["key-does-not-exist", "never written: fine"]},
    ]))
    assert ok["valid?"] is True and ok["final-reads"] == 2 and ok["answered"] == 2
    missing = checkers.durability(_final_heal_history([
        {"type": "fail", "value": [1, None], "error": ["key-does-not-exist", "forgot it"]},
    ]))
    assert missing["valid?"] is False and missing["lost-keys"] == [1]
    nil = checkers.durability(_final_heal_history([{"type": "ok", "value": [1, None]}]))
    assert nil["valid?"] is False
    timed_out = checkers.durability(_final_heal_history([
        {"type": "fail", "value": [1, None], "error": "net-timeout"},
    ]))
    assert timed_out["valid?"] is True and timed_out["answered"] == 0


def test_durability_is_not_applicable_without_a_final_heal() -> None:
    from rast_maelstrom.harness import checkers

    assert checkers.durability([])["applicable"] is False


def test_nemesis_info_pairs_as_the_engine_records_them_give_fault_periods() -> None:
    from rast_maelstrom.harness import checkers

    history = [
        {"index": 0, "time": 10, "type": "info", "process": "nemesis", "f": "start-partition", "value": "one"},
        {"index": 1, "time": 20, "type": "info", "process": "nemesis", "f": "start-partition",
         "value": ["isolated", {"n0": ["n1"]}]},
        {"index": 2, "time": 30, "type": "invoke", "process": 0, "f": "read", "value": [0, None]},
        {"index": 3, "time": 40, "type": "ok", "process": 0, "f": "read", "value": [0, None]},
        {"index": 4, "time": 500, "type": "info", "process": "nemesis", "f": "stop-partition", "value": None},
        {"index": 5, "time": 510, "type": "info", "process": "nemesis", "f": "stop-partition",
         "value": "network-healed"},
        {"index": 6, "time": 600, "type": "info", "process": "nemesis", "f": "start-kill", "value": None},
        {"index": 7, "time": 610, "type": "info", "process": "nemesis", "f": "start-kill",
         "value": ["killed", ["n1"]]},
    ]
    pairs = checkers.pair_ops(history)
    assert checkers.nemesis_periods(pairs, 900) == [("partition", 10, 510), ("kill", 600, 900)]


def _lost_write_history() -> History:
    """Key 0: an acknowledged write, then a read that says the key does not exist."""
    h = History()
    h.seq(0, 2, 0, "write", [0, 1])
    h.seq(3, 4, 1, "read", [0, None], outcome="fail", error=["key-does-not-exist", "not found"])
    return h


def test_strict_absent_reads_follow_test_json_and_the_override(tmp_path):
    # A jar-style run (no fault extensions): the failed read is dropped, as the jar does.
    store = make_store(tmp_path / "a", _lost_write_history().ops)
    assert analysis.analyze(store)["workload"]["valid?"] is True
    # A run with the fault extensions records absent_reads in test.json: the lost write shows.
    store = make_store(tmp_path / "b", _lost_write_history().ops,
                       test={"nemesis": ["kill"], "absent_reads": True})
    results = analysis.analyze(store)
    assert results["workload"]["valid?"] is False and results["workload"]["absent-reads"] is True
    lines = analysis.summary_lines(results)
    assert any("key-does-not-exist (20) were checked as observations" in line for line in lines)
    assert "failed with key-does-not-exist" in results["workload"]["results"][0]["explanation"]
    # `analyze --no-absent-reads` re-checks the same run the jar's way.
    assert analysis.analyze(store, absent_reads=False)["workload"]["valid?"] is True


def test_an_undecided_key_says_why_in_results_and_on_the_console(tmp_path):
    h = History()
    for p in range(30):  # 30 concurrent writes, then a read of the first: a hard key
        h.add(p, "invoke", p, "write", [0, p])
    for p in range(30):
        h.add(40 + p, "ok", p, "write", [0, p])
    h.seq(80, 81, 99, "read", [0, None], done_value=[0, 0])
    store = make_store(tmp_path, h.ops, test={"lin_time_limit_s": 0.2})
    results = analysis.analyze(store)
    assert results["valid?"] == "unknown"
    key = results["workload"]["results"][0]
    assert key["cause"] == "search-limit" and "budget per key: 0.2 s" in key["reason"]
    assert "(search-limit)" in "\n".join(analysis.summary_lines(results))
    assert "raise it with --lin-time-limit" in "\n".join(analysis.summary_lines(results))
    assert "budget per key: 0.2 s" in (store / "independent" / "0" / "failure.txt").read_text()
    edn = (store / "results.edn").read_text()
    assert ":reason" in edn and ":cause :search-limit" in edn
