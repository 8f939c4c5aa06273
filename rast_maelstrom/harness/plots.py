"""Performance plots of a run: latency-raw.png, latency-quantiles.png and rate.png.

Owns: drawing the three 900x400 px PNGs the jar's `:perf` checker draws (spec §5.8), with
matplotlib's Agg canvas (no display, no pyplot global state; matplotlib is imported only when a
plot is drawn, so importing the runner stays cheap).

Conventions kept from the jar: outcome colours ok #81BFFC, info #FFA400, fail #FF1E90; nemesis
fault periods shaded #E9DCA0 (faults other than partitions are also hatched so they can be told
apart; membership changes the other way, with a vertical line at each change's start);
quantiles 0.5, 0.95, 0.99 and 1. Time on the x axis is seconds since the test's time
zero, taken from the op's invocation.

Bucket sizes: the jar uses 30 s (quantiles) and 10 s (rate), which leaves a 10 s run with one
or two points. Here a bucket is the run's length divided by a target count (20 quantile
buckets, 40 rate buckets), rounded up to a "nice" step (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15,
30 s), and never larger than the jar's size; so a 10 s run gets 0.5 s / 0.25 s buckets, a 60 s
run 5 s / 2 s, and runs of 10 minutes or more the jar's own 30 s / 10 s.

Invariants: every file written is exactly 900x400 px; inputs are read, never modified; the
module writes only the paths it is given.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from .nemesis import MEMBER_KIND

log = logging.getLogger(__name__)

__all__ = [
    "OUTCOME_COLOURS",
    "NEMESIS_COLOUR",
    "bucket_sizes_s",
    "plot_latency_quantiles",
    "plot_latency_raw",
    "plot_rate",
]

OUTCOME_COLOURS = {"ok": "#81BFFC", "info": "#FFA400", "fail": "#FF1E90"}
NEMESIS_COLOUR = "#E9DCA0"
FIG_WIDTH_PX = 900
FIG_HEIGHT_PX = 400
_DPI = 100
QUANTILES = (0.5, 0.95, 0.99, 1.0)
quantile_buckets_target = 20
rate_buckets_target = 40
quantile_bucket_s_max = 30.0  # the jar's size
rate_bucket_s_max = 10.0  # the jar's size
_NICE_STEPS_S = (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0)
_F_MARKERS = {"read": "o", "write": "^", "cas": "s"}
_OTHER_MARKERS = ("D", "v", "P", "X", "*", "<", ">")
_Q_STYLES = {0.5: "-", 0.95: "--", 0.99: "-.", 1.0: ":"}
_F_STYLES = ("-", "--", "-.", ":")


def _nice_step(raw_s: float, cap_s: float) -> float:
    for step in _NICE_STEPS_S:
        if step >= raw_s:
            return min(step, cap_s)
    return cap_s


def bucket_sizes_s(duration_s: float) -> tuple[float, float]:
    """(quantile bucket, rate bucket) in seconds for a run lasting `duration_s`."""
    duration_s = max(duration_s, 0.0)
    return (
        _nice_step(duration_s / quantile_buckets_target, quantile_bucket_s_max),
        _nice_step(duration_s / rate_buckets_target, rate_bucket_s_max),
    )


def _markers(fs: list[str]) -> dict[str, str]:
    out = {}
    others = iter(_OTHER_MARKERS * (1 + len(fs) // len(_OTHER_MARKERS)))
    for f in fs:
        out[f] = _F_MARKERS.get(f) or next(others)
    return out


def _new_figure():
    # Imported here: matplotlib costs ~0.3 s to import and only the report needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(FIG_WIDTH_PX / _DPI, FIG_HEIGHT_PX / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.09, 0.13, 0.69, 0.77))
    return fig, ax


def _save(fig, path: Path) -> None:
    # No bbox_inches="tight": that would change the pixel size.
    fig.savefig(path, dpi=_DPI, format="png")
    assert path.stat().st_size > 0, f"empty plot {path}"


def _shade(ax, periods: list[tuple[str, float, float]]) -> None:
    labelled: set[str] = set()
    for kind, start_s, stop_s in periods:
        label = kind if kind not in labelled else None
        labelled.add(kind)
        ax.axvspan(
            start_s, stop_s, facecolor=NEMESIS_COLOUR, edgecolor="#C9B870" if kind != "partition" else "none",
            hatch=None if kind == "partition" else "\\\\" if kind == MEMBER_KIND else "//", alpha=1.0,
            zorder=0, label=label, linewidth=0,
        )
        if kind == MEMBER_KIND:   # [extension] a change lasts milliseconds: a line keeps it visible
            ax.axvline(start_s, color="#C9B870", linewidth=0.8, zorder=0)


def _log_y(ax) -> None:
    """Log y axis labelled with plain numbers (0.5, 1, 20) rather than 5x10^-1; minor ticks are
    labelled too when the data spans less than ~1.5 decades, or there would be 1 or 2 labels."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log")
    plain = FuncFormatter(lambda y, _pos: f"{y:g}")
    ax.yaxis.set_major_formatter(plain)
    low, high = ax.get_ylim()
    narrow = low > 0 and math.log10(high / low) < 1.5
    ax.yaxis.set_minor_formatter(plain if narrow else NullFormatter())
    if narrow:
        ax.tick_params(axis="y", which="minor", labelsize=7)


def _finish(ax, title: str, xlabel: str, ylabel: str, end_s: float, empty: bool) -> None:
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, max(end_s, 1e-3))
    ax.grid(True, which="major", color="#DDDDDD", linewidth=0.5, zorder=1)
    if empty:
        ax.text(0.5, 0.5, "no completed client operations", transform=ax.transAxes, ha="center",
                va="center", color="#666666")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  frameon=False, borderaxespad=0.0)


def _np():
    import numpy as np  # matplotlib's own dependency; imported lazily with it

    return np


def _columns(ops: list[dict[str, Any]]):
    """numpy columns (invoke_s, latency_ms) plus f and outcome lists for completed client ops."""
    np = _np()
    t = np.fromiter((o["invoke_s"] for o in ops), dtype=float, count=len(ops))
    lat = np.fromiter((o["latency_ms"] for o in ops), dtype=float, count=len(ops))
    return np, t, lat


def plot_latency_raw(ops: list[dict], periods: list, end_s: float, path: Path, title: str) -> None:
    """One point per completed client op: invoke time vs latency (ms, log axis)."""
    fig, ax = _new_figure()
    np, t, lat = _columns(ops)
    fs = sorted({o["f"] for o in ops})
    markers = _markers(fs)
    _shade(ax, periods)
    floor_ms = 1e-3  # a log axis cannot show 0
    lat = np.maximum(lat, floor_ms)
    f_col = np.array([o["f"] for o in ops], dtype=object)
    type_col = np.array([o["type"] for o in ops], dtype=object)
    for f in fs:
        for outcome in ("ok", "info", "fail"):
            mask = (f_col == f) & (type_col == outcome)
            if not mask.any():
                continue
            ax.plot(t[mask], lat[mask], linestyle="none", marker=markers[f], markersize=3,
                    markeredgewidth=0, color=OUTCOME_COLOURS[outcome], alpha=0.8, zorder=2,
                    label=f"{f} {outcome}", rasterized=True)
    if len(ops):
        _log_y(ax)
    _finish(ax, f"{title} latency (raw)", "time (s)", "latency (ms)", end_s, not ops)
    _save(fig, path)


def plot_latency_quantiles(ops: list[dict], periods: list, end_s: float, bucket_s: float,
                           path: Path, title: str) -> None:
    """Latency quantiles (0.5, 0.95, 0.99, 1) per f over invoke-time buckets of `bucket_s`."""
    fig, ax = _new_figure()
    np, t, lat = _columns(ops)
    _shade(ax, periods)
    fs = sorted({o["f"] for o in ops})
    markers = _markers(fs)
    colours = ["#1F77B4", "#D62728", "#2CA02C", "#9467BD", "#8C564B", "#E377C2", "#7F7F7F"]
    f_col = np.array([o["f"] for o in ops], dtype=object)
    buckets = np.floor(t / bucket_s).astype(int) if len(ops) else np.zeros(0, dtype=int)
    for i, f in enumerate(fs):
        sel = f_col == f
        fb, fl = buckets[sel], lat[sel]
        order = np.lexsort((fl, fb))
        fb, fl = fb[order], fl[order]
        ids, starts, counts = np.unique(fb, return_index=True, return_counts=True)
        mids = (ids + 0.5) * bucket_s
        for q in QUANTILES:
            ranks = np.clip(np.ceil(q * counts).astype(int) - 1, 0, None)
            values = np.maximum(fl[starts + ranks], 1e-3)
            ax.plot(mids, values, linestyle=_Q_STYLES[q], marker=markers[f], markersize=3,
                    color=colours[i % len(colours)], zorder=2, label=f"{f} q{q:g}")
    if len(ops):
        _log_y(ax)
    _finish(ax, f"{title} latency quantiles ({bucket_s:g} s buckets)", "time (s)", "latency (ms)",
            end_s, not ops)
    _save(fig, path)


def plot_rate(ops: list[dict], periods: list, end_s: float, bucket_s: float, path: Path,
              title: str) -> None:
    """Completions per second per f and outcome over completion-time buckets of `bucket_s`."""
    fig, ax = _new_figure()
    np = _np()
    _shade(ax, periods)
    fs = sorted({o["f"] for o in ops})
    markers = _markers(fs)
    n_buckets = max(1, math.ceil(max(end_s, 1e-9) / bucket_s))
    starts_s = np.arange(n_buckets) * bucket_s
    # The last bucket may be cut short by the end of the run: divide by the time it covers.
    widths_s = np.clip(np.minimum(starts_s + bucket_s, max(end_s, bucket_s)) - starts_s, 1e-9, None)
    done_s = np.fromiter((o["complete_s"] for o in ops), dtype=float, count=len(ops))
    f_col = np.array([o["f"] for o in ops], dtype=object)
    type_col = np.array([o["type"] for o in ops], dtype=object)
    buckets = np.clip(np.floor(done_s / bucket_s).astype(int), 0, n_buckets - 1) if len(ops) else \
        np.zeros(0, dtype=int)
    for i, f in enumerate(fs):
        for outcome in ("ok", "info", "fail"):
            mask = (f_col == f) & (type_col == outcome)
            if not mask.any():
                continue
            counts = np.bincount(buckets[mask], minlength=n_buckets)
            ax.plot(starts_s + widths_s / 2, counts / widths_s, linestyle=_F_STYLES[i % len(_F_STYLES)],
                    marker=markers[f], markersize=3, color=OUTCOME_COLOURS[outcome], zorder=2,
                    label=f"{f} {outcome}")
    ax.set_ylim(bottom=0)
    _finish(ax, f"{title} rate ({bucket_s:g} s buckets)", "time (s)", "completions / s", end_s, not ops)
    _save(fig, path)
