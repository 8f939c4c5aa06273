"""The runner's analysis stage: a stored run in, verdicts and the files a person reads out.

Owns `analyze(store_dir)`: reads test.json, history.jsonl and net-stats.json (the engine's
contract), runs every checker (workload = linearizability per key via
`linearizability.check_independent` plus a timeline per key; stats; availability; exceptions;
net; perf), merges validity false > "unknown" > true, and writes into the store dir:
results.json and results.edn (keys as the jar's results.edn, spec §5.8), history.txt and
history.edn (§5.7), independent/<key>/{results.json, results.edn, history.txt, history.edn,
timeline.html[, failure.txt]},
latency-raw.png, latency-quantiles.png, rate.png, timeline.html and messages.svg (the Lamport
diagram of messages.jsonl, `lamport.py`; the first N events or a window, from test.json).
Also `summary_lines(results)`, the console
paragraph the engine prints, and `verdict_line(valid)`, the jar's closing line.

Invariants:
- Every checker runs under `checkers.guarded`: an exception becomes {"valid?": "unknown",
  "error": ...} and the rest of the analysis still runs; files that depend on a failed checker
  are simply not written.
- The history is read once and never modified; the linearizability checker receives it whole.
- Writes only inside `store_dir`; never touches the engine's files (history.jsonl,
  messages.jsonl, node-logs/, jepsen.log, test.json, net-stats.json).
- Never imports the engine; imports the linearizability checker lazily, so analysis works (and
  reports the workload as unknown) when that module is missing.
"""

from __future__ import annotations

import gc
import heapq
import logging
import math
import time
from pathlib import Path
from typing import Any

import orjson

from . import checkers
from .checkers import UNKNOWN, guarded, is_client, merge_valid, pair_ops
from .edn import Keyword, Seq, Str, Tagged, dumps, is_keyword_name

log = logging.getLogger(__name__)

__all__ = ["analyze", "check_independent", "history_line", "summary_lines", "verdict_line"]

# Ops of a key's history shown on each side of the failing op in failure.txt.
failure_context_ops_max = 12
# Ops of the checker's "window" listed in failure.txt (the rest are counted, not listed).
failure_window_ops_max = 40
# Invalid keys explained in the console summary; the rest are counted.
summary_keys_max = 5
# Characters of a checker's explanation shown per key on the console.
summary_explanation_chars_max = 400

VERDICT_VALID = "Everything looks good! ヽ(‘ー`)ノ"
VERDICT_INVALID = "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻"
VERDICT_UNKNOWN = "Errors occurred during analysis, but no anomalies found. ಠ~ಠ"

_JSON_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY


def check_independent(history: list[dict], **kwargs: Any) -> dict:
    """Indirection to the linearizability checker (imported on first use; tests may replace it)."""
    from . import linearizability

    return linearizability.check_independent(history, **kwargs)


# ---------------------------------------------------------------------------------------------
# Reading the store.


def _string_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k if isinstance(k, (str, int, float, bool)) or k is None else str(k): _string_keys(v)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_string_keys(x) for x in obj]
    return obj


def _json_bytes(obj: Any) -> bytes:
    """Pretty JSON; int keys become strings; exotic keys (tuples) are written as their str()."""
    try:
        return orjson.dumps(obj, option=_JSON_OPTS)
    except TypeError:
        return orjson.dumps(_string_keys(obj), option=_JSON_OPTS, default=str)


def _read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def read_history(path: Path) -> list[dict]:
    """history.jsonl as a list of op dicts; asserts the dense index the contract promises."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    # One parse of a JSON array is ~2x faster than a call per line.
    history = orjson.loads(b"[" + b",".join(lines) + b"]")
    for i, op in enumerate(history):
        assert op.get("index", i) == i, f"history index not dense at line {i}: {op.get('index')}"
    return history


# ---------------------------------------------------------------------------------------------
# EDN renderings of ops and results.


def _edn_error(error: Any) -> Any:
    if isinstance(error, list) and error and isinstance(error[0], str) and is_keyword_name(error[0]):
        return [Keyword(error[0]), *error[1:]]
    if isinstance(error, str) and is_keyword_name(error):
        return Keyword(error)
    return error


def _edn_nemesis_value(value: Any) -> Any:
    """Nemesis values are keywords in the jar: "majority" -> :majority, ["isolated", {...}] ->
    [:isolated {"n1" #{"n0"}}] (a grudge maps a node to the set of nodes it ignores)."""
    if isinstance(value, str) and is_keyword_name(value):
        return Keyword(value)
    if isinstance(value, list) and value and isinstance(value[0], str) and is_keyword_name(value[0]):
        rest = [
            {Str(k) if isinstance(k, str) else k: set(v) if isinstance(v, list) else v for k, v in x.items()}
            if isinstance(x, dict) else x
            for x in value[1:]
        ]
        return [Keyword(value[0]), *rest]
    return value


def _edn_process(process: Any) -> Any:
    return Keyword(process) if isinstance(process, str) and is_keyword_name(process) else process


def _value_text(value: Any) -> str:
    # Fast paths for the shapes that make up nearly every lin-kv history line.
    if type(value) is list and len(value) == 2:
        k, v = value
        if type(k) is int:
            if type(v) is int:
                return f"[{k} {v}]"
            if v is None:
                return f"[{k} nil]"
            if type(v) is list and len(v) == 2 and type(v[0]) is int and type(v[1]) is int:
                return f"[{k} [{v[0]} {v[1]}]]"
    if value is None:
        return "nil"
    if type(value) is int:
        return str(value)
    return dumps(value)


# Rendered process/type/f tokens, memoised: a history has only a few distinct ones.
_token_cache: dict[Any, str] = {}
token_cache_max = 4096


def _token(x: Any) -> str:
    """EDN for a process, type or f: ints as ints, keyword-like strings as keywords."""
    try:
        return _token_cache[x]
    except (KeyError, TypeError):
        pass
    text = dumps(Keyword(x)) if isinstance(x, str) and is_keyword_name(x) else dumps(x)
    if len(_token_cache) < token_cache_max and isinstance(x, (str, int)):
        _token_cache[x] = text
    return text


def history_line(op: dict, *, value: Any = ..., error_readably: bool = False) -> str:
    """`process⇥type⇥f⇥value[⇥error]` with EDN values, e.g. `1\t:ok\t:write\t[0 2]` (§5.7).
    `value` overrides the op's value (independent histories print the reduced value). The error
    prints as history.txt has it (strings bare); `error_readably` quotes them, as the jar's log
    lines do."""
    process = op.get("process")
    v = op.get("value") if value is ... else value
    line = (
        f"{_token(process)}\t{_token(op.get('type'))}\t{_token(op.get('f'))}\t"
        f"{_value_text(v) if type(process) is int else dumps(_edn_nemesis_value(v))}"
    )
    if "error" in op:
        # Jepsen prints the error with `print`, not `pr`: strings inside it come out bare.
        error = op["error"]
        if isinstance(error, str) and not is_keyword_name(error):
            return f"{line}\t{error}"   # Clojure's str of a string: bare either way
        return f"{line}\t{dumps(_edn_error(error), readably=error_readably)}"
    return line


_KEYWORD_VALUED = {"valid?", "cause", "type", "f", "analyzer"}
KNOSSOS_ANALYZER = {"witness": "wgl", "bfs": "linear"}  # our search -> the Knossos analyzer it matches


def edn_ready(obj: Any, parent_key: Any = None) -> Any:
    """A copy of results with enum-like strings turned into keywords ("unknown" -> :unknown, an
    op's type/f/process/error), so results.edn reads as the jar's does."""
    if isinstance(obj, dict):
        looks_like_op = "process" in obj and "type" in obj and "f" in obj
        out = Tagged(obj.tag, {}) if isinstance(obj, Tagged) else {}
        for k, v in obj.items():
            if looks_like_op and k == "process":
                out[k] = _edn_process(v)
            elif looks_like_op and k == "error":
                out[k] = _edn_error(v)
            elif looks_like_op and k == "value" and not isinstance(obj.get("process"), int):
                out[k] = _edn_nemesis_value(v)
            else:
                out[k] = edn_ready(v, k)
        return out
    if isinstance(obj, list):
        items = [edn_ready(x, parent_key) for x in obj]
        return Seq(items) if isinstance(obj, Seq) else items
    if isinstance(obj, str) and parent_key in _KEYWORD_VALUED and is_keyword_name(obj):
        return Keyword(obj)
    return obj


# ---------------------------------------------------------------------------------------------
# Workload: linearizability per key, independent/<key>/ files.


def _reduced_value(op: dict) -> Any:
    value = op.get("value")
    if is_client(op) and isinstance(value, list) and len(value) == 2:
        return value[1]
    return value


_HISTORY_EDN_FIELDS = ("index", "time", "type", "process", "f", "value")


def history_edn_line(op: dict, *, value: Any = ...) -> str:
    """One op as history.edn has it: an EDN map in Jepsen's field order (index, time, type,
    process, f, value, then error and the rest). The runner's `node` field is left out: the jar's
    ops have none (history.jsonl keeps it)."""
    v = op.get("value") if value is ... else value
    parts = [f":index {op.get('index')}", f":time {op.get('time')}",
             f":type {_token(op.get('type'))}", f":process {_token(op.get('process'))}",
             f":f {_token(op.get('f'))}",
             f":value {_value_text(v) if is_client(op) else dumps(_edn_nemesis_value(v))}"]
    for k, x in op.items():
        if k in _HISTORY_EDN_FIELDS or k == "node":
            continue
        parts.append(f":{k} {dumps(_edn_error(x) if k == 'error' else edn_ready(x))}")
    return "{" + ", ".join(parts) + "}"


def _split_by_key(history: list[dict], keys: set) -> dict[Any, list[dict]]:
    """Each of `keys`' client ops plus every nemesis op, in history order (as the jar's
    independent checker splits a history)."""
    by_key: dict[Any, list[dict]] = {k: [] for k in keys}
    nemesis: list[dict] = []
    for op in history:
        if type(op.get("process")) is not int:
            nemesis.append(op)
            continue
        value = op.get("value")
        if type(value) is list and len(value) == 2:
            k = value[0]
            ops = by_key.get(k if type(k) is not list else tuple(k))  # as check_independent hashes it
            if ops is not None:
                ops.append(op)
    if nemesis:
        for k, ops in by_key.items():
            by_key[k] = list(heapq.merge(ops, nemesis, key=lambda o: o.get("index", 0)))
    return by_key


# Knossos's configs and final paths, as Jepsen truncates them in results.
knossos_paths_max = 10


def _workload(history: list[dict], lin_kwargs: dict) -> dict:
    result = check_independent(history, **lin_kwargs)
    assert isinstance(result, dict) and "valid?" in result, f"check_independent returned {result!r}"
    # The jar's independent checker lists only the keys that are invalid, not the unknown ones.
    per_key = result.get("results") or {}
    result["failures"] = [k for k, r in per_key.items() if r.get("valid?") is False]
    return result


def _cas_register(value: Any) -> Tagged:
    return Tagged("knossos.model.CASRegister", {"value": value})


def _inconsistency(op: dict | None, value: Any) -> Tagged:
    """Knossos's model for a step the register cannot take, with its message."""
    shown = dumps(value)
    if isinstance(op, dict) and op.get("f") == "cas" and isinstance(op.get("value"), list) \
            and len(op["value"]) == 2:
        a, b = op["value"]
        msg = f"can't CAS {shown} from {dumps(a)} to {dumps(b)}"
    else:
        read = op.get("value") if isinstance(op, dict) else None
        msg = f"can't read {dumps(read)} from register {shown}"
    return Tagged("knossos.model.Inconsistent", {"msg": msg})


def knossos_view(result: dict, key_history: list[dict]) -> dict:
    """One key's linearizability result in Knossos's shape (spec §5.8): :valid?, :configs (each
    a model, the last op linearized and the pending calls), :final-paths and, unless valid, :op,
    :previous-ok and :last-op; :analyzer names the search. Built from the checker's result dict:
    `final-values` (the values the register may end with) for a valid key, `possible-values`,
    `op`, `previous-ok` and `window` for an invalid one."""
    valid = result.get("valid?")
    view: dict[str, Any] = {"valid?": valid}
    if valid is True:
        last_ok = next((op for op in reversed(key_history)
                        if op.get("type") == "ok" and is_client(op)), None)
        last = {**last_ok, "value": _reduced_value(last_ok)} if last_ok is not None else None
        view["configs"] = Seq({"model": _cas_register(v), "last-op": last, "pending": []}
                              for v in (result.get("final-values") or [])[:knossos_paths_max])
        view["final-paths"] = Seq()
    elif valid is False:
        by_index = {o.get("index"): o for o in key_history}
        pending = [{**by_index[w["invoke-index"]], "value": w.get("value")}
                   for w in result.get("window") or [] if w.get("invoke-index") in by_index]
        previous, op = result.get("previous-ok"), result.get("op")
        values = (result.get("possible-values") or [])[:knossos_paths_max]
        view["configs"] = Seq({"model": _cas_register(v), "last-op": previous, "pending": pending}
                              for v in values)
        view["final-paths"] = Seq(
            [{"op": previous, "model": _cas_register(v)},
             {"op": op, "model": _inconsistency(op, v)}] for v in values)
        view.update({"previous-ok": previous, "last-op": previous, "op": op})
    elif "cause" in result:
        view["cause"] = result["cause"]
    # Knossos names the winner of its competition: :wgl (depth first) or :linear (breadth first).
    view["analyzer"] = KNOSSOS_ANALYZER.get(result.get("analyzer"), "linear")
    return view


def jar_shape(workload: dict, by_key: dict[Any, list[dict]]) -> None:
    """Nest each key's result as the jar's results.edn does: {:linearizable <Knossos's result>,
    :timeline {:valid? true}, :valid? v}; the checker's own fields (explanation, window, op-count,
    and whatever else it reports) stay beside them."""
    per_key = workload.get("results") or {}
    for k, r in list(per_key.items()):
        if not isinstance(r, dict) or "linearizable" in r:
            continue
        extras = {f: v for f, v in r.items() if f not in ("valid?", "timeline")}
        per_key[k] = {"linearizable": knossos_view(r, by_key.get(k, [])),
                      "timeline": r.get("timeline", {"valid?": True}),
                      "valid?": merge_valid([r.get("valid?"), True]), **extras}


def _op_words(op: Any) -> str:
    """One op on one line: a history op (index, time) or a checker's op summary (invoke and
    completion index and time)."""
    if not isinstance(op, dict):
        return repr(op)
    if "index" in op or "invoke-index" not in op:
        at = f"{op['time'] / 1e9:10.6f} s" if isinstance(op.get("time"), int) else " " * 12
        return f"#{op.get('index', '?'):<7} {at}  {history_line(op, value=op.get('value'))}"
    span = f"#{op.get('invoke-index')}..{op.get('complete-index', '')}"
    times = [op.get("invoke-time"), op.get("complete-time")]
    at = "–".join(f"{t / 1e9:.6f}" for t in times if isinstance(t, int)) + " s"
    return f"{span:<14} {at:<22} {history_line(op, value=op.get('value'))}"


def failure_text(key: Any, result: dict, key_history: list[dict]) -> str:
    """failure.txt: what went wrong on one key, in words, with the ops around the failure."""
    lines = [f"Key {dumps(key)} is {'not linearizable' if result.get('valid?') is False else 'undecided'}."]
    explanation = result.get("explanation") or result.get("reason") or result.get("cause")
    if explanation:
        lines += ["", str(explanation)]
    op = result.get("op")
    if op is not None:
        lines += ["", "The op that could not be linearized:", "  " + _op_words(op)]
    if result.get("previous-ok") is not None:
        lines += ["", "The last ok op before it:", "  " + _op_words(result["previous-ok"])]
    window = result.get("window") or []
    if window:
        lines += ["", f"Ops concurrent with it ({len(window)}):"]
        lines += ["  " + _op_words(w) for w in window[:failure_window_ops_max]]
        if len(window) > failure_window_ops_max:
            lines.append(f"  ... and {len(window) - failure_window_ops_max} more")
    target = op.get("index") if isinstance(op, dict) else None
    positions = [i for i, o in enumerate(key_history) if o.get("index") == target]
    if positions:
        at = positions[0]
        lo, hi = max(0, at - failure_context_ops_max), min(len(key_history), at + failure_context_ops_max + 1)
        lines += ["", f"This key's history around it (ops {lo}..{hi - 1} of {len(key_history)}; "
                      "columns: history index, time, process, type, f, value, error):"]
        for i in range(lo, hi):
            mark = ">>" if i == at else "  "
            o = key_history[i]
            lines.append(f"{mark}{_op_words({**o, 'value': _reduced_value(o)})}")
    lines += ["", "Values are the register's (the key is left out); a read of nil is always legal, "
                  "fail ops never took effect, info ops may or may not have."]
    return "\n".join(lines) + "\n"


def _write_independent(store_dir: Path, workload: dict, by_key: dict[Any, list[dict]], *,
                       periods_ns: list, end_ns: int, title: str, ops_max: int) -> None:
    """independent/<key>/: results, history and, for a key that is not valid, failure.txt (and
    a timeline of that key alone when it is invalid)."""
    root = store_dir / "independent"
    for key, result in (workload.get("results") or {}).items():
        d = root / str(key)
        d.mkdir(parents=True, exist_ok=True)
        key_history = by_key.get(key, [])
        (d / "results.json").write_bytes(_json_bytes(result))
        (d / "results.edn").write_text(dumps(edn_ready(result)) + "\n", encoding="utf-8")
        text = "\n".join(history_line(op, value=_reduced_value(op)) for op in key_history)
        (d / "history.txt").write_text(text + ("\n" if text else ""), encoding="utf-8")
        text = "\n".join(history_edn_line(op, value=_reduced_value(op)) for op in key_history)
        (d / "history.edn").write_text(text + ("\n" if text else ""), encoding="utf-8")
        if isinstance(result, dict) and result.get("valid?") is not True:
            (d / "failure.txt").write_text(failure_text(key, result, key_history), encoding="utf-8")
        # As the jar's independent checker: every key gets its timeline, valid or not.
        _timeline(d / "timeline.html", pair_ops(key_history), periods_ns, end_ns,
                  _marks({"results": {key: result}}), f"{title} key {key} timeline", ops_max)


# ---------------------------------------------------------------------------------------------
# Perf and timeline.


def _perf_rows(pairs: list[tuple[dict, dict | None]]) -> list[dict]:
    rows = []
    for invoke, done in pairs:
        if done is None or not is_client(invoke) or done.get("type") not in ("ok", "info", "fail"):
            continue
        rows.append({
            "f": str(invoke.get("f")),
            "type": done["type"],
            "invoke_s": invoke["time"] / 1e9,
            "complete_s": done["time"] / 1e9,
            "latency_ms": (done["time"] - invoke["time"]) / 1e6,
        })
    return rows


def _perf(store_dir: Path, pairs, periods_ns, end_ns: int, title: str) -> dict:
    from . import plots

    rows = _perf_rows(pairs)
    end_s = end_ns / 1e9
    periods_s = [(kind, a / 1e9, b / 1e9) for kind, a, b in periods_ns]
    q_bucket_s, rate_bucket_s = plots.bucket_sizes_s(end_s)

    def latency_graph() -> dict:
        plots.plot_latency_raw(rows, periods_s, end_s, store_dir / "latency-raw.png", title)
        plots.plot_latency_quantiles(rows, periods_s, end_s, q_bucket_s,
                                     store_dir / "latency-quantiles.png", title)
        return {"valid?": True}

    def rate_graph() -> dict:
        plots.plot_rate(rows, periods_s, end_s, rate_bucket_s, store_dir / "rate.png", title)
        return {"valid?": True}

    result: dict[str, Any] = {
        "latency-graph": guarded("latency-graph", latency_graph),
        "rate-graph": guarded("rate-graph", rate_graph),
        "latency-ms": checkers.latency_summary(pairs),
        "bucket-s": {"latency-quantiles": q_bucket_s, "rate": rate_bucket_s},
    }
    result["valid?"] = merge_valid([result["latency-graph"]["valid?"], result["rate-graph"]["valid?"]])
    return result


def _marks(workload: dict) -> dict:
    marks = {}
    for key, r in (workload.get("results") or {}).items():
        if isinstance(r, dict) and r.get("valid?") is False:
            marks[key] = {"op": r.get("op"), "window": r.get("window") or [],
                          "explanation": r.get("explanation")}
    return marks


def _timeline(path: Path, pairs, periods_ns, end_ns: int, marks: dict, title: str, ops_max: int) -> dict:
    from . import timeline

    page = timeline.render_timeline(pairs, periods=periods_ns, end_ns=end_ns, marks=marks,
                                    title=title, ops_max=ops_max)
    path.write_text(page, encoding="utf-8")
    return {"valid?": True}


# ---------------------------------------------------------------------------------------------
# The entry point.


def analyze(
    store_dir: Path,
    *,
    availability: Any = None,
    time_limit_s: float | None = None,
    timeline_ops_max: int | None = None,
    lin_time_limit_s: float | None = None,
    lin_config_max: int | None = None,
    absent_reads: bool | None = None,
) -> dict:
    """Analyse the run stored in `store_dir`, write the report files there, return the results.

    `availability` (None, "total" or a fraction) overrides test.json's; `time_limit_s`, when
    given, is passed to the linearizability checker; `timeline_ops_max` overrides the timeline's
    cap of 10,000 ops. The checker's per-key budget (`lin_time_limit_s`, `lin_config_max`) and
    its strict reading of absent keys (`absent_reads`) default to test.json's."""
    lin = {"time_limit_s": lin_time_limit_s if time_limit_s is None else time_limit_s,
           "config_max": lin_config_max, "absent_reads": absent_reads}
    # The cyclic GC rescans every op dict again and again while 10^5 of them are built and
    # grouped (it doubled the run time); analysis makes no garbage cycles worth chasing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _analyze(Path(store_dir), availability, lin, timeline_ops_max)
    finally:
        if gc_was_enabled:
            gc.enable()


def _analyze(store_dir: Path, availability: Any, lin: dict, timeline_ops_max: int | None) -> dict:
    started = time.perf_counter()
    stage_s: dict[str, float] = {}

    def lap(name: str, t0: float) -> float:
        now = time.perf_counter()
        stage_s[name] = now - t0
        return now

    t = started
    test = _read_json(store_dir / "test.json")
    history = read_history(store_dir / "history.jsonl")
    t = lap("read", t)
    if availability is None:
        availability = test.get("availability")
    title = str(test.get("name") or "lin-kv")
    pairs = pair_ops(history)
    end_ns = max((op["time"] for op in history), default=0)
    if not end_ns and test.get("time_limit"):
        end_ns = int(float(test["time_limit"]) * 1e9)
    periods_ns = guarded("nemesis-periods", lambda: {"valid?": True, "periods": checkers.nemesis_periods(pairs, end_ns)})
    periods_ns = periods_ns.get("periods", [])

    stored = {"time_limit_s": test.get("lin_time_limit_s"), "config_max": test.get("lin_config_max"),
              "absent_reads": test.get("absent_reads")}
    lin_kwargs = {k: v if v is not None else stored[k] for k, v in lin.items()}
    lin_kwargs = {k: v for k, v in lin_kwargs.items() if v is not None}
    workload = guarded("workload", _workload, history, lin_kwargs)
    by_key = _split_by_key(history, set(workload.get("results") or ()))
    guarded("workload-shape", lambda: jar_shape(workload, by_key) or {"valid?": True})
    t = lap("workload", t)
    results: dict[str, Any] = {
        "perf": guarded("perf", _perf, store_dir, pairs, periods_ns, end_ns, title),
    }
    t = lap("perf", t)
    from .timeline import TIMELINE_OPS_MAX

    results["timeline"] = guarded(
        "timeline", _timeline, store_dir / "timeline.html", pairs, periods_ns, end_ns,
        _marks(workload), f"{title} timeline", timeline_ops_max or TIMELINE_OPS_MAX,
    )
    t = lap("timeline", t)
    if (store_dir / "messages.jsonl").is_file():
        from .lamport import events_max_default, write_messages_svg
        svg = test.get("messages_svg") or {}
        window = svg.get("window_s")
        drawn = guarded("messages-svg", write_messages_svg, store_dir / "messages.jsonl",
                        store_dir / "messages.svg",
                        events_max=svg.get("events_max") or events_max_default,
                        window_s=tuple(window) if window else None, title=f"{title} messages")
        log.info("messages.svg: %s network events drawn%s", drawn.get("events", "no"),
                 " (more not shown)" if drawn.get("truncated") else "")
        t = lap("messages-svg", t)
    results["exceptions"] = guarded("exceptions", checkers.exceptions, history)
    results["stats"] = guarded("stats", checkers.stats, history)
    results["availability"] = guarded("availability", checkers.availability, history, availability)
    results["net"] = guarded("net", lambda: checkers.net(_read_json(store_dir / "net-stats.json"), history))
    durability = guarded("durability", checkers.durability, history)
    if durability.get("applicable") is not False:  # an extension: absent from jar-style runs
        results["durability"] = durability
    results["workload"] = workload
    results["valid?"] = merge_valid(r.get("valid?") for r in list(results.values()))
    t = lap("checkers", t)

    (store_dir / "history.txt").write_text("\n".join(map(history_line, history)) + ("\n" if history else ""),
                                           encoding="utf-8")
    (store_dir / "history.edn").write_text(
        "\n".join(map(history_edn_line, history)) + ("\n" if history else ""), encoding="utf-8")
    if workload.get("results"):
        def independent_files() -> dict:
            _write_independent(store_dir, workload, by_key, periods_ns=periods_ns, end_ns=end_ns,
                               title=title, ops_max=timeline_ops_max or TIMELINE_OPS_MAX)
            return {"valid?": True}

        guarded("independent-files", independent_files)
    (store_dir / "results.json").write_bytes(_json_bytes(results))
    (store_dir / "results.edn").write_text(dumps(edn_ready(results)) + "\n", encoding="utf-8")
    lap("write", t)
    log.info("analysis of %d ops took %.2f s (%s)", len(history), time.perf_counter() - started,
             ", ".join(f"{k} {v:.2f} s" for k, v in stage_s.items()))
    return results


# ---------------------------------------------------------------------------------------------
# Console summary.


def verdict_line(valid: Any) -> str:
    """The jar's closing line for a merged validity."""
    if valid is True:
        return VERDICT_VALID
    if valid is False:
        return VERDICT_INVALID
    return VERDICT_UNKNOWN


def _ms(x: Any) -> str:
    return "n/a" if not isinstance(x, (int, float)) or math.isnan(x) else f"{x:.1f} ms"


def summary_lines(results: dict) -> list[str]:
    """A short paragraph for the console: counts, ok-fraction, latency, msgs-per-op, invalid keys."""
    lines: list[str] = []
    stats = results.get("stats") or {}
    if "count" in stats:
        by_f = ", ".join(
            f"{f} {row.get('ok-count', 0)}/{row.get('count', 0)} ok" for f, row in (stats.get("by-f") or {}).items()
        )
        lines.append(
            f"{stats['count']} client ops completed: {stats.get('ok-count', 0)} ok, "
            f"{stats.get('fail-count', 0)} fail, {stats.get('info-count', 0)} info"
            + (f" ({by_f})" if by_f else "") + "."
        )
        no_ok = [f for f, row in (stats.get("by-f") or {}).items() if not row.get("ok-count")]
        if no_ok:
            lines.append(f"No op of kind {', '.join(map(str, no_ok))} succeeded, so stats are invalid.")
    else:
        err = str(stats.get("error", "")).strip().splitlines()
        lines.append(f"Stats unavailable: {err[-1] if err else 'no counts'}.")
    avail = results.get("availability") or {}
    if "ok-fraction" in avail:
        text = f"Availability: {avail['ok-fraction']:.3f} of invocations ok"
        if "required" in avail:
            need = "1.0 (total)" if avail["required"] == "total" else f"≥ {avail['required']}"
            text += f", required {need}: {'met' if avail.get('valid?') is True else 'NOT met'}"
        lines.append(text + ".")
    latency = ((results.get("perf") or {}).get("latency-ms") or {}).get("ok") or {}
    if latency.get("count"):
        lines.append(f"Latency of ok ops: p50 {_ms(latency.get('p50'))}, p99 {_ms(latency.get('p99'))}, "
                     f"max {_ms(latency.get('max'))}.")
    net = results.get("net") or {}
    if "msgs-per-op" in (net.get("all") or {}):
        lines.append(f"Messages per op: {net['all']['msgs-per-op']:.2f} "
                     f"(servers {net['servers'].get('msgs-per-op', 0):.2f}).")
    workload = results.get("workload") or {}
    failures = list(workload.get("failures") or [])
    per_key = workload.get("results") or {}

    def key_result(k: Any) -> dict:
        # Results read back from results.json have string keys while "failures" keeps ints.
        return per_key.get(k) or per_key.get(str(k)) or {}
    if "error" in workload:
        err = str(workload["error"]).strip().splitlines()
        lines.append(f"Linearizability check could not run: {err[-1] if err else 'unknown error'}")
    elif failures or any(r.get("valid?") is not True for r in per_key.values()):
        invalid = [k for k in failures if key_result(k).get("valid?") is False]
        undecided = [k for k, r in per_key.items() if r.get("valid?") not in (True, False)]
        if invalid:
            lines.append(f"NOT linearizable on {len(invalid)} of {len(per_key)} keys: "
                         f"{', '.join(map(str, invalid))}.")
        for k in invalid[:summary_keys_max]:
            explanation = str(key_result(k).get("explanation") or "no explanation given")
            if len(explanation) > summary_explanation_chars_max:
                explanation = explanation[:summary_explanation_chars_max] + "…"
            lines.append(f"  key {k}: {explanation} (see independent/{k}/failure.txt)")
        if len(invalid) > summary_keys_max:
            lines.append(f"  ... and {len(invalid) - summary_keys_max} more invalid keys.")
        if undecided:
            causes = sorted({str(key_result(k).get("cause", UNKNOWN)) for k in undecided})
            lines.append(f"Linearizability undecided on {len(undecided)} keys ({', '.join(causes)}): "
                         f"{', '.join(map(str, undecided[:summary_keys_max * 4]))}.")
            reason = key_result(undecided[0]).get("reason")
            if reason:
                lines.append(f"  key {undecided[0]}: {reason}; raise it with --lin-time-limit / "
                             "--lin-config-max (and `analyze` to re-check).")
    elif per_key:
        lines.append(f"Linearizable on all {len(per_key)} keys.")
    if workload.get("absent-reads"):
        lines.append("Reads that failed with key-does-not-exist (20) were checked as observations that "
                     "the key was absent [extension, on with the fault extensions; --no-absent-reads "
                     "drops them as the jar does].")
    broken = [name for name, r in results.items()
              if isinstance(r, dict) and r.get("valid?") == UNKNOWN and "error" in r and name != "workload"]
    if broken:
        lines.append(f"Checkers that failed to run: {', '.join(broken)} (see results.json).")
    return lines
