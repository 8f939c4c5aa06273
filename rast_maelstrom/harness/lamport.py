"""messages.svg: the Lamport diagram of the messages between clients, nodes and services.

Owns rendering the network journal (messages.jsonl, written by the network) as the diagram the
jar draws (spec §3.2): one vertical line per participant (clients first, then servers, in numeric
order within a kind, then the services), time flowing down one row per journal event (a send or
a delivery), and an arrow from the sender's row of each delivered message to the receiver's row
of its delivery, labelled with the body's type and its other fields (an error's text), the full
message in its tooltip. Colours: error bodies pink (#FF1E90), messages to or from a client light
blue (#81BFFC), the rest (server and service traffic) black. `init` and `init_ok` are left out,
messages dropped by a partition take a row but draw no arrow, and names are repeated every 50
rows so a long diagram stays readable.

What is drawn: the first `events_max` events (the jar's 10,000) and, [extension], only those in a
window of history time (seconds since time zero, as in history.txt) if one is given; a notice at
the bottom says when events were left out.

Invariants: reads the journal as a stream and stops at the limit (a long run's journal is never
held in memory); writes only the SVG it is asked to. Imports no other part of the project but
the EDN writer (for labels); never touches the engine or the checkers.
"""
from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Iterable

import orjson

from .edn import Str, dumps, from_json, is_keyword_name

events_max_default = 10_000
width_px = 1200
row_px = 20
names_every_rows = 50
label_chars_max = 48
COLOUR_ERROR = "#FF1E90"
COLOUR_CLIENT = "#81BFFC"
COLOUR_SERVER = "#000"
INIT_TYPES = ("init", "init_ok")

_ID_PARTS = re.compile(r"(\w+?)(\d+)")


def sort_key(node_id: str) -> tuple:
    """Clients and servers by letter and number (c2 before c10), services after them."""
    m = _ID_PARTS.search(node_id)
    if m:
        return (0, m.group(1), int(m.group(2)))
    return (1, node_id, 0)


def body_text(body: dict, leave_out: tuple = ()) -> str:
    """A body as the jar prints it: its own keys as keywords, nested keys as strings."""
    return dumps({(k if is_keyword_name(k) else Str(k)): from_json(v) for k, v in body.items()
                  if k not in leave_out})


def label(body: dict) -> str:
    """`type` and then, for an error, its text, else the body's other fields (no ids)."""
    t = body.get("type")
    if t == "error":
        rest = str(body.get("text"))
    else:
        rest = body_text(body, ("type", "msg_id", "in_reply_to"))
    text = f"{t} {rest}"
    return text if len(text) <= label_chars_max else text[:label_chars_max - 1] + "…"


def colour(msg: dict) -> str:
    if msg["body"].get("type") == "error":
        return COLOUR_ERROR
    if msg["src"][:1] == "c" or msg["dest"][:1] == "c":
        return COLOUR_CLIENT
    return COLOUR_SERVER


def select_events(journal: Iterable[bytes], *, events_max: int = events_max_default,
                  window_s: tuple[float, float] | None = None) -> tuple[list[tuple], bool]:
    """([(kind, msg)] in journal order, truncated?): kind "send" or "recv", init traffic left out,
    the first `events_max` events in the time window (history seconds) if given."""
    sent: dict[int, dict] = {}
    zero_ns = None
    events: list[tuple] = []
    truncated = False
    for line in journal:
        if not line.strip():
            continue
        e = orjson.loads(line)
        t = e.get("t")
        if t == "time-zero":
            zero_ns = e["ns"]
            continue
        if t == "send":
            msg = e["msg"]
            if msg["body"].get("type") in INIT_TYPES:
                continue
            sent[msg["id"]] = msg
        elif t == "recv":
            msg = sent.get(e["id"])
            if msg is None:
                continue   # init traffic, or sent before the window
        else:
            continue       # drops and duplicates: a drop has no arrow, a dup its second recv
        if window_s is not None:
            at_s = (e["ns"] - (zero_ns or 0)) / 1e9
            if at_s < window_s[0]:
                if t == "send":
                    del sent[msg["id"]]   # its arrow would start outside the picture
                continue
            if at_s > window_s[1]:
                truncated = True
                break
        if len(events) >= events_max:
            truncated = True
            break
        events.append((t, msg))
    return events, truncated


def render(events: list[tuple], truncated: bool, title: str = "") -> str:
    """The SVG document for `events` (from `select_events`)."""
    nodes = sorted({n for _, m in events for n in (m["src"], m["dest"])}, key=sort_key)
    column = {n: i for i, n in enumerate(nodes)}
    steps = len(events)

    def x(node: str) -> float:
        return (column[node] + 0.5) / max(1, len(nodes)) * width_px

    def y(step: float) -> float:
        return row_px * (1.5 + step)

    height = row_px * (steps + 7)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' xmlns:xlink='http://www.w3.org/1999/xlink' "
           f"version='2.0' width='{width_px + 50}' height='{height}'>",
           f"<title>{html.escape(title or 'messages')}</title>",
           "<style>svg { font-family: Helvetica, Arial, sans-serif; font-size: 11px; } "
           "rect { stroke-linecap: butt; stroke-width: 3; stroke: #fff; } "
           "polygon { fill: #000; }</style>",
           "<defs><polygon id='ahead' points='0 0, -12 4, -12 -4'/>"
           "<filter id='glow' x='0' y='0'><feGaussianBlur in='SourceAlpha' stdDeviation='2' "
           "result='blurred'/><feFlood flood-color='#fff'/><feComposite operator='in' "
           "in2='blurred'/><feComponentTransfer><feFuncA type='linear' slope='10' intercept='0'/>"
           "</feComponentTransfer><feMerge><feMergeNode/><feMergeNode in='SourceGraphic'/>"
           "</feMerge></filter></defs>", "<g>"]
    for node in nodes:
        for step in range(0, max(steps, 1), names_every_rows):
            fill = "#000" if step == 0 else "#aaa"
            out.append(f"<text x='{x(node):.1f}' y='{y(step - 0.5):.1f}' text-anchor='middle' "
                       f"alignment-baseline='middle' fill='{fill}'>{html.escape(node)}</text>")
    out.append("</g><g>")
    for node in nodes:
        out.append(f"<line stroke='#ccc' x1='{x(node):.1f}' y1='{y(0):.1f}' x2='{x(node):.1f}' "
                   f"y2='{y(steps + 1):.1f}'/>")
    out.append("</g><g>")
    sent_at: dict[int, int] = {}
    for step, (kind, msg) in enumerate(events):
        if kind == "send":
            sent_at[msg["id"]] = step
            continue
        start = sent_at.get(msg["id"])
        if start is None:
            continue
        x0, y0, x1, y1 = x(msg["src"]), y(start), x(msg["dest"]), y(step)
        length = math.hypot(x1 - x0, y1 - y0)
        angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
        flip = not -90 < angle < 90
        text = html.escape(label(msg["body"]))
        tip = html.escape(f"{msg['src']} → {msg['dest']} {body_text(msg['body'])}")
        turn = f" transform='rotate(180 {length / 2:.1f} 0)'" if flip else ""
        lbl = f"x='{length / 2:.1f}' y='{-row_px / 5:.1f}' text-anchor='middle'{turn}"
        out.append(f"<g transform='translate({x0:.1f} {y0:.1f}) rotate({angle:.2f})'>"
                   f"<rect x='0' y='-2.5' height='5' width='{max(0.0, length - 4):.1f}' "
                   f"fill='{colour(msg)}'><title>{tip}</title></rect>"
                   f"<use xlink:href='#ahead' x='{length:.1f}' y='0'/>"
                   f"<text {lbl} filter='url(#glow)' style='fill: #fff'>{text}</text>"
                   f"<text {lbl}>{text}</text></g>")
    out.append("</g>")
    if truncated:
        row = steps + 2
        out.append(f"<g><line x1='30' y1='{y(row):.1f}' x2='{width_px - 30}' y2='{y(row):.1f}' "
                   f"stroke-width='1' stroke='#D96918'/><text x='{width_px / 2:.0f}' "
                   f"y='{y(row + 1):.1f}' fill='#D96918' text-anchor='middle'>Additional network "
                   f"events not shown</text></g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_messages_svg(journal_path: Path, out_path: Path, *, events_max: int = events_max_default,
                       window_s: tuple[float, float] | None = None, title: str = "") -> dict:
    """Render `journal_path` (messages.jsonl) to `out_path`; returns counts for the results."""
    with open(journal_path, "rb") as journal:
        events, truncated = select_events(journal, events_max=events_max, window_s=window_s)
    out_path.write_text(render(events, truncated, title), encoding="utf-8")
    return {"valid?": True, "events": len(events), "truncated": truncated}
