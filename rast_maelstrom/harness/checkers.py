"""The runner's small checkers and the history helpers the report modules share.

Owns: stats, availability, exceptions, net (msgs-per-op), the latency summary that `perf`
reports, merge-valid, the exception guard every checker runs under, op pairing (an invoke and
the next op on its process) and nemesis fault periods. Result shapes mirror the jar's
results.edn (spec §3.4, §5.8): keys are the jar's keyword names as strings ("valid?",
"ok-count", "msgs-per-op"), validity is True | False | "unknown".

Invariants:
- Client ops have an int `process`; anything else (the "nemesis" process) is never counted as
  a client op.
- A checker never raises out of `guarded`: an exception becomes {"valid?": "unknown", "error"}.
- Functions here read the history they are given and return new dicts; they never modify ops,
  touch files, or import the engine or the linearizability checker.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections import Counter
from typing import Any, Callable, Iterable

from .nemesis import MEMBER_FS, MEMBER_KIND

log = logging.getLogger(__name__)

__all__ = [
    "UNKNOWN",
    "availability",
    "client_invoke_count",
    "exceptions",
    "guarded",
    "is_client",
    "latency_summary",
    "merge_valid",
    "nemesis_periods",
    "net",
    "pair_ops",
    "quantile",
    "stats",
]

UNKNOWN = "unknown"
# How much of a checker's traceback goes into its "error" text.
error_text_chars_max = 4000
# Example ops kept per exception class in the exceptions checker.
exception_examples_max = 1
# Nemesis fault kinds: the f that starts a fault -> the f that ends it.
_FAULT_STOP_F = {"kill": "start", "pause": "resume"}


def is_client(op: dict) -> bool:
    # `type() is int` rather than isinstance: faster on 10^5 ops, and it rules out bools.
    return type(op.get("process")) is int


def merge_valid(values: Iterable[Any]) -> bool | str:
    """Merge validities with priority false > "unknown" > true; no values at all is true."""
    seen_unknown = False
    for v in values:
        if v is False:
            return False
        if v is not True:
            # "unknown", a missing key (None) or anything odd cannot count as a pass.
            seen_unknown = True
    return UNKNOWN if seen_unknown else True


def guarded(name: str, fn: Callable[..., dict], *args: Any, **kwargs: Any) -> dict:
    """Run one checker; an exception becomes {"valid?": "unknown", "error": text}."""
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every checker failure must become :unknown
        text = "".join(traceback.format_exception(exc))
        log.warning("checker %s failed: %s", name, exc)
        return {"valid?": UNKNOWN, "error": text[-error_text_chars_max:]}
    assert isinstance(result, dict) and "valid?" in result, f"checker {name} returned {result!r}"
    return result


def pair_ops(history: list[dict]) -> list[tuple[dict, dict | None]]:
    """(invoke, completion) for every invoke, in invoke order.

    The completion is the next op on the same process after the invoke (spec §5.7); an invoke
    with no later op on its process has None. Completions with no invoke are skipped. The nemesis
    records its ops as info pairs (spec §4.3): on its process, an op with nothing open is the
    invocation.
    """
    pairs: list[list] = []
    open_by_process: dict[Any, list] = {}
    for op in history:
        process = op.get("process")
        if op.get("type") == "invoke" or (process == "nemesis" and process not in open_by_process):
            pair = [op, None]
            pairs.append(pair)
            open_by_process[process] = pair
        else:
            pair = open_by_process.pop(process, None)
            if pair is not None:
                pair[1] = op
    return [(a, b) for a, b in pairs]


def client_invoke_count(history: list[dict]) -> int:
    return sum(1 for op in history if op.get("type") == "invoke" and is_client(op))


def _outcome_counts() -> dict:
    return {"count": 0, "ok-count": 0, "fail-count": 0, "info-count": 0}


def stats(history: list[dict]) -> dict:
    """Counts of client completions overall and by f; false if some f that appears has no ok."""
    total = _outcome_counts()
    by_f: dict[str, dict] = {}
    for op in history:
        kind = op.get("type")
        if kind == "invoke" or not is_client(op):
            continue
        f = op.get("f")
        row = by_f.get(f)
        if row is None:
            row = by_f[f] = _outcome_counts()
        key = f"{kind}-count"
        for counts in (total, row):
            counts["count"] += 1
            if key in counts:
                counts[key] += 1
    for row in by_f.values():
        row["valid?"] = row["ok-count"] > 0
    valid = all(row["valid?"] for row in by_f.values())
    return {"valid?": valid, **total, "by-f": dict(sorted(by_f.items(), key=lambda kv: str(kv[0])))}


def availability(history: list[dict], requirement: Any = None) -> dict:
    """ok-fraction = client oks / client invocations; `requirement` None, "total" or a number."""
    invokes = 0
    oks = 0
    for op in history:
        if not is_client(op):
            continue
        kind = op.get("type")
        if kind == "invoke":
            invokes += 1
        elif kind == "ok":
            oks += 1
    fraction = 1.0 if invokes == 0 else oks / invokes
    result: dict[str, Any] = {"valid?": True, "ok-fraction": fraction}
    if requirement is None:
        return result
    if requirement == "total":
        result["valid?"] = fraction == 1.0
    elif isinstance(requirement, (int, float)) and not isinstance(requirement, bool):
        result["valid?"] = fraction >= requirement
    else:
        raise ValueError(f"don't know how to handle availability {requirement!r}")
    result["required"] = requirement
    return result


def _exception_class(exc: Any) -> str:
    if isinstance(exc, dict):
        for key in ("class", "type", "name"):
            if isinstance(exc.get(key), str):
                return exc[key]
        via = exc.get("via")
        if isinstance(via, list) and via and isinstance(via[0], dict):
            return str(via[0].get("type", "unknown"))
    if isinstance(exc, str):
        return exc.split(":", 1)[0]
    return "unknown"


def exceptions(history: list[dict]) -> dict:
    """Groups info ops that carry an "exception" by its class; always valid."""
    counts: Counter[str] = Counter()
    examples: dict[str, list[dict]] = {}
    for op in history:
        if op.get("type") != "info" or "exception" not in op:
            continue
        cls = _exception_class(op["exception"])
        counts[cls] += 1
        kept = examples.setdefault(cls, [])
        if len(kept) < exception_examples_max:
            kept.append(op)
    result: dict[str, Any] = {"valid?": True}
    if counts:
        result["exceptions"] = [
            {"class": cls, "count": n, "example": examples[cls][0]} for cls, n in counts.most_common()
        ]
    return result


def net(net_stats: dict, history: list[dict]) -> dict:
    """The router's counts plus msgs-per-op (msg-count / client invocations) for all and servers."""
    result: dict[str, Any] = {}
    for group in ("all", "clients", "servers"):
        counts = net_stats[group]
        result[group] = {k: counts[k] for k in ("send-count", "recv-count", "msg-count")}
    invokes = client_invoke_count(history)
    if invokes:  # the jar leaves msgs-per-op out when there were no client ops
        for group in ("all", "servers"):
            result[group]["msgs-per-op"] = result[group]["msg-count"] / invokes
    result["valid?"] = True
    return result


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list (q=1 is the max); NaN for an empty list."""
    if not sorted_values:
        return math.nan
    rank = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[rank]


def latency_summary(pairs: list[tuple[dict, dict | None]]) -> dict:
    """Latency figures (ms) of completed client ops by outcome: count, p50, p95, p99, max."""
    by_type: dict[str, list[float]] = {"ok": [], "info": [], "fail": []}
    for invoke, done in pairs:
        if done is None or not is_client(invoke):
            continue
        values = by_type.get(done.get("type"))
        if values is not None:
            values.append((done["time"] - invoke["time"]) / 1e6)
    summary = {}
    for kind, values in by_type.items():
        values.sort()
        row: dict[str, Any] = {"count": len(values)}
        if values:
            row.update({f"p{int(q * 100)}": quantile(values, q) for q in (0.5, 0.95, 0.99)})
            row["max"] = values[-1]
        summary[kind] = row
    return summary


def _fault_kind(f: str) -> tuple[str, str] | None:
    """(kind, role) for a nemesis f: ("partition", "start") for "start-partition", etc."""
    if f.startswith("start-"):
        return f[len("start-"):], "start"
    if f.startswith("stop-"):
        return f[len("stop-"):], "stop"
    if f in _FAULT_STOP_F:
        return f, "start"
    for kind, stop_f in _FAULT_STOP_F.items():
        if f == stop_f:
            return kind, "stop"
    return None


def nemesis_periods(pairs: list[tuple[dict, dict | None]], end_ns: int) -> list[tuple[str, int, int]]:
    """(kind, start_ns, stop_ns) for each nemesis fault, from its start op's invoke to its stop
    op's completion (so the shading covers the whole fault); a fault never stopped runs to
    `end_ns`. [extension] Each membership change (grow, shrink) is a "member" period of its own,
    from its invoke to its completion. `pairs` is `pair_ops(history)`."""
    periods: list[tuple[str, int, int]] = []
    open_since: dict[str, int] = {}
    for invoke, done in pairs:
        if is_client(invoke):
            continue
        if invoke.get("f") in MEMBER_FS:
            periods.append((MEMBER_KIND, invoke["time"], done["time"] if done is not None else end_ns))
            continue
        parsed = _fault_kind(str(invoke.get("f")))
        if parsed is None:
            continue
        kind, role = parsed
        if role == "start":
            open_since.setdefault(kind, invoke["time"])
        elif kind in open_since:
            stop_ns = done["time"] if done is not None else invoke["time"]
            periods.append((kind, open_since.pop(kind), stop_ns))
    for kind, start_ns in open_since.items():
        periods.append((kind, start_ns, max(end_ns, start_ns)))
    periods.sort(key=lambda p: p[1])
    return periods


def durability(history: list[dict]) -> dict:
    """[extension] No acknowledged write vanished: after the recovery phase's final heal (a nemesis
    op whose invoke value is "final-heal"), a read of a key that had an acknowledged write or cas
    must find a value. lin-kv never deletes keys, so a definite key-does-not-exist (or a nil read)
    there is a lost write for certain — which the linearizability model alone cannot see, because it
    drops failed reads and allows nil reads. Without a final heal in the history: not applicable."""
    heal = next((op["index"] for op in history
                 if op.get("process") == "nemesis" and op.get("value") == "final-heal"), None)
    if heal is None:
        return {"valid?": True, "applicable": False}
    acked: set = set()
    invoked: dict[Any, dict] = {}
    final_reads = answered = 0
    lost: set = set()
    for op in history:
        if not is_client(op):
            continue
        kind = op["type"]
        if kind == "invoke":
            invoked[op["process"]] = op
            continue
        inv = invoked.pop(op["process"], None)
        if inv is None:
            continue
        key = _key(op.get("value"))
        if inv["index"] < heal:
            if kind == "ok" and op["f"] in ("write", "cas"):
                acked.add(key)
            continue
        if op["f"] != "read":
            continue
        final_reads += 1
        err = op.get("error")
        missing = kind == "fail" and isinstance(err, list) and err and err[0] == "key-does-not-exist"
        nil = kind == "ok" and isinstance(op.get("value"), list) and op["value"][1] is None
        if kind == "ok" or missing:
            answered += 1
        if (missing or nil) and key in acked:
            lost.add(key)
    lost_keys = sorted(lost, key=repr)
    return {"valid?": not lost_keys, "applicable": True, "final-reads": final_reads,
            "answered": answered, "acknowledged-keys": len(acked), "lost-keys": lost_keys}


def _key(value: Any) -> Any:
    k = value[0] if isinstance(value, list) and value else None
    return tuple(k) if isinstance(k, list) else k
