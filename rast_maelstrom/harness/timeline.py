"""timeline.html: one self-contained page showing every process's operations over time.

Owns: rendering (invoke, completion) pairs as boxes on per-process lanes, grouped by key, with
the nemesis's own ops on a lane at the top and its fault periods shaded across every lane.
Each box spans invocation to completion, is coloured by outcome (ok #81BFFC, info #FFA400,
fail #FF1E90, never completed: grey) and has hover text (process, f, value, outcome, latency,
error). The op a linearizability failure names is outlined red with a marker and listed at the
top with the checker's explanation and a link to it; the ops concurrent with it are outlined
dashed.

Invariants:
- The page has no external assets (inline CSS and a few lines of inline JS for zoom).
- At most `ops_max` pairs are drawn (the jar caps at 10,000): the failing ops and their windows
  always, then the earliest by invocation; the page says when it was capped.
- Boxes are positioned in % of the lane width, so zooming only changes one CSS variable.
- Reads its inputs, returns a string; writing the file is the caller's business.
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable

__all__ = ["TIMELINE_OPS_MAX", "op_key", "render_timeline"]

TIMELINE_OPS_MAX = 10_000  # pairs drawn at most, as the jar's timeline checker
timeline_ticks_target = 12
lane_width_px_min = 1200
lane_width_px_max = 60_000
lane_px_per_s = 60  # initial zoom, before the min/max clamp
_TICK_STEPS_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600)
NEMESIS_LANE = "nemesis"

_CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:18px;margin:0 0 6px} .note{color:#555;margin:4px 0}
.bad-list{border:1px solid #d33;background:#fff3f3;padding:6px 10px;margin:8px 0}
.bad-list li{margin:4px 0}
.legend span{display:inline-block;position:relative;padding:0 6px;margin-right:8px;border:1px solid #888}
.tools button{margin-right:4px}
.scroll{overflow-x:auto;border:1px solid #ccc;margin-top:8px}
.chart{position:relative;margin-left:110px;width:var(--w);min-height:40px}
.band{position:absolute;top:0;bottom:0;background:#E9DCA0;z-index:0}
.band.other{background:repeating-linear-gradient(45deg,#E9DCA0 0 6px,#DCCB80 6px 9px)}
.axis{position:relative;height:18px;border-bottom:1px solid #999;z-index:2;background:#fafafa}
.tick{position:absolute;top:2px;font-size:10px;color:#555;border-left:1px solid #999;padding-left:2px}
.key{position:relative;height:18px;font-weight:600;z-index:2;border-top:1px solid #bbb}
.key .lab{position:absolute;right:100%;width:106px;padding-right:4px;text-align:right}
.key.invalid{color:#c00}
.lane{position:relative;height:13px;z-index:1}
.lane:hover{background:rgba(0,0,0,.04)}
.lane .lab{position:absolute;right:100%;width:104px;padding-right:6px;text-align:right;font-size:10px;color:#555}
.op{position:absolute;top:1px;height:10px;min-width:2px;box-sizing:border-box;border:1px solid rgba(0,0,0,.25)}
.op:hover{outline:2px solid #000;z-index:5}
.ok{background:#81BFFC} .info{background:#FFA400} .fail{background:#FF1E90}
.open{background:repeating-linear-gradient(90deg,#bbb 0 4px,#eee 4px 6px)}
.nem{background:#C9B870}
.win{outline:1px dashed #000;z-index:3}
.bad{outline:3px solid #d00;z-index:6}
.bad::before{content:"\\25BC";position:absolute;top:-11px;left:-4px;color:#d00;font-size:10px}
"""

_JS = """
(function(){var w=%d;function set(x){w=Math.max(%d,Math.min(%d,x));
document.documentElement.style.setProperty('--w',w+'px');}
document.getElementById('zin').onclick=function(){set(w*2)};
document.getElementById('zout').onclick=function(){set(w/2)};
document.getElementById('zfit').onclick=function(){set(document.querySelector('.scroll').clientWidth-120)};
set(w);})();
"""


def op_key(op: dict) -> Any:
    """The key an independent client op is about (value[0]), or None for nemesis/odd ops."""
    value = op.get("value")
    if isinstance(op.get("process"), int) and isinstance(value, list) and len(value) == 2:
        return value[0]
    return None


def _sort_token(x: Any) -> tuple:
    return (type(x).__name__, x if isinstance(x, (int, float, str)) else repr(x))


def _fmt_value(value: Any) -> str:
    # Local import keeps this module importable on its own; edn has no dependencies.
    from .edn import dumps

    try:
        return dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _tick_step_s(duration_s: float) -> float:
    raw = duration_s / timeline_ticks_target
    for step in _TICK_STEPS_S:
        if step >= raw:
            return step
    return _TICK_STEPS_S[-1]


def _pct(ns: float, end_ns: float) -> str:
    return f"{100.0 * ns / end_ns:.4f}%"


def _indices(op: Any) -> set:
    """History indices an op report names: a history op's "index", or a summary's
    "invoke-index"/"complete-index" (the linearizability checker's window entries)."""
    if not isinstance(op, dict):
        return set()
    return {op[k] for k in ("index", "invoke-index", "complete-index") if type(op.get(k)) is int}


def _select(pairs: list[tuple[dict, dict | None]], forced: set[int], ops_max: int) -> list[int]:
    """Positions in `pairs` to draw: forced ones first, then the earliest, up to ops_max."""
    chosen = set(sorted(forced)[:ops_max])
    for i in range(len(pairs)):
        if len(chosen) >= ops_max:
            break
        chosen.add(i)
    return sorted(chosen)


def render_timeline(
    pairs: list[tuple[dict, dict | None]],
    *,
    periods: Iterable[tuple[str, int, int]] = (),
    end_ns: int | None = None,
    marks: dict[Any, dict] | None = None,
    title: str = "timeline",
    ops_max: int = TIMELINE_OPS_MAX,
) -> str:
    """The HTML page. `marks` maps an invalid key to {"op": op dict, "window": [op dicts],
    "explanation": str}; ops are matched to boxes by history index (invoke or completion)."""
    assert ops_max > 0
    marks = marks or {}
    periods = list(periods)
    last_ns = 0
    for invoke, done in pairs:
        last_ns = max(last_ns, invoke["time"], done["time"] if done else 0)
    end_ns = max(end_ns or 0, last_ns, max((p[2] for p in periods), default=0), 1)

    # Which pair positions the failure marks point at.
    pos_by_index: dict[int, int] = {}
    for pos, (invoke, done) in enumerate(pairs):
        pos_by_index[invoke.get("index", -1)] = pos
        if done is not None:
            pos_by_index[done.get("index", -1)] = pos
    bad_pos: dict[int, Any] = {}
    window_pos: set[int] = set()
    for key, mark in marks.items():
        for idx in _indices(mark.get("op")):
            if idx in pos_by_index:
                bad_pos[pos_by_index[idx]] = key
        for w in mark.get("window") or ():
            for idx in _indices(w):
                if idx in pos_by_index:
                    window_pos.add(pos_by_index[idx])
    window_pos -= set(bad_pos)
    shown = _select(pairs, set(bad_pos) | window_pos, ops_max)
    capped = len(shown) < len(pairs)

    # Group by key, then process. Nemesis ops go on their own lane at the top.
    lanes: dict[Any, dict[Any, list[int]]] = {}
    nemesis_lane: list[int] = []
    for pos in shown:
        invoke = pairs[pos][0]
        if not isinstance(invoke.get("process"), int):
            nemesis_lane.append(pos)
            continue
        lanes.setdefault(op_key(invoke), {}).setdefault(invoke["process"], []).append(pos)

    out: list[str] = []
    emit = out.append
    width_px = int(min(lane_width_px_max, max(lane_width_px_min, end_ns / 1e9 * lane_px_per_s)))
    emit("<!DOCTYPE html><html><head><meta charset='utf-8'>")
    # --w is also set here so the page lays out without JS; the zoom buttons change it.
    emit(f"<title>{html.escape(title)}</title><style>:root{{--w:{width_px}px}}{_CSS}</style></head><body>")
    emit(f"<h1>{html.escape(title)}</h1>")
    emit(
        f"<p class='note'>{len(pairs)} operations over {end_ns / 1e9:.3f} s, one lane per process, "
        "grouped by key; each box runs from invocation to completion. Hover a box for details. "
        "Shaded: nemesis fault periods.</p>"
    )
    if capped:
        emit(
            f"<p class='note'><b>Capped:</b> showing {len(shown)} of {len(pairs)} operations "
            f"(at most {ops_max}: the ops around each failure, then the earliest by invocation). "
            "history.txt has them all.</p>"
        )
    if marks:
        emit("<div class='bad-list'><b>Linearizability failures</b><ul>")
        for key, mark in sorted(marks.items(), key=lambda kv: _sort_token(kv[0])):
            target = [p for p, k in bad_pos.items() if k == key]
            link = f" <a href='#op-{target[0]}'>show the op</a>" if target else ""
            text = html.escape(str(mark.get("explanation") or "no explanation given"))
            emit(f"<li>key {html.escape(_fmt_value(key))}: {text}{link}</li>")
        emit("</ul></div>")
    emit(
        "<div class='legend'><span class='ok'>ok</span><span class='info'>info</span>"
        "<span class='fail'>fail</span><span class='open'>no completion</span>"
        "<span class='nem'>nemesis op</span><span class='band' style='position:static'>fault</span>"
        "<span class='bad' style='background:#fff'>failing op</span>"
        "<span class='win' style='background:#fff'>concurrent with it</span></div>"
    )
    emit("<div class='tools'><button id='zout'>zoom −</button><button id='zin'>zoom +</button>"
         "<button id='zfit'>fit</button></div>")
    emit("<div class='scroll'><div class='chart'>")
    for kind, start_ns, stop_ns in periods:
        cls = "band" if kind == "partition" else "band other"
        emit(f"<div class='{cls}' style='left:{_pct(start_ns, end_ns)};"
             f"width:{_pct(max(stop_ns - start_ns, 0), end_ns)}' title='{html.escape(kind)} "
             f"{start_ns / 1e9:.3f}–{stop_ns / 1e9:.3f} s'></div>")
    emit("<div class='axis'>")
    step_s = _tick_step_s(end_ns / 1e9)
    for i in range(int(math.floor(end_ns / 1e9 / step_s)) + 1):
        t_s = i * step_s
        emit(f"<span class='tick' style='left:{_pct(t_s * 1e9, end_ns)}'>{t_s:g}s</span>")
    emit("</div>")

    def box(pos: int) -> None:
        invoke, done = pairs[pos]
        start = invoke["time"]
        if done is None:
            cls, stop, outcome, latency = "open", end_ns, "never completed", ""
        else:
            cls = done.get("type") if done.get("type") in ("ok", "info", "fail") else "info"
            stop, outcome = done["time"], str(done.get("type"))
            latency = f" in {(stop - start) / 1e6:.3f} ms"
        if not isinstance(invoke.get("process"), int):
            cls = "nem"
        shown_value = done.get("value") if done is not None else invoke.get("value")
        lines = [
            f"process {invoke.get('process')} · {invoke.get('f')} {_fmt_value(shown_value)}",
            f"{outcome}{latency} · invoked at {start / 1e9:.6f} s (index {invoke.get('index')})",
        ]
        if done is not None and "error" in done:
            lines.append(f"error: {_fmt_value(done['error'])}")
        extra = ""
        if pos in bad_pos:
            cls += " bad"
            lines.insert(0, "NOT LINEARIZABLE: the checker could not place this op")
            extra = f" id='op-{pos}'"
        elif pos in window_pos:
            cls += " win"
        title_text = html.escape("\n".join(lines), quote=True).replace("\n", "&#10;")
        emit(f"<div class='op {cls}'{extra} data-index='{invoke.get('index')}' "
             f"style='left:{_pct(start, end_ns)};width:{_pct(max(stop - start, 0), end_ns)}' "
             f"title=\"{title_text}\"></div>")

    if nemesis_lane:
        emit(f"<div class='key'><span class='lab'>{NEMESIS_LANE}</span></div>")
        emit(f"<div class='lane'><span class='lab'>{NEMESIS_LANE}</span>")
        for pos in nemesis_lane:
            box(pos)
        emit("</div>")
    for key in sorted(lanes, key=_sort_token):
        cls = "key invalid" if key in marks else "key"
        emit(f"<div class='{cls}'><span class='lab'>key {html.escape(_fmt_value(key))}"
             f"{' ✗' if key in marks else ''}</span></div>")
        for process in sorted(lanes[key], key=_sort_token):
            emit(f"<div class='lane'><span class='lab'>p{html.escape(str(process))}</span>")
            for pos in lanes[key][process]:
                box(pos)
            emit("</div>")
    emit("</div></div>")
    emit(f"<script>{_JS % (width_px, lane_width_px_min // 8, lane_width_px_max)}</script>")
    emit("</body></html>")
    return "".join(out)
