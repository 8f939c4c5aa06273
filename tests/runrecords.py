"""Evidence from a stored run that its faults bit (tests only).

A test that claims "linearizable under partitions" proves nothing if the partition never cut a
message. These helpers read a run's own records -- `history.jsonl` (the nemesis ops, on the
history's clock) and `messages.jsonl` (every message sent, delivered or dropped, on the network's
clock, aligned by its `time-zero` record) -- and assert that each fault did what it says:

- partition: messages were dropped, and during each partition no node received anything from a
  node it holds a grudge against (a cut-off minority heard nothing from the majority);
- kill and pause: the nodes hit sent nothing while they were down or stopped; nodes killed died
  of SIGKILL (the runner's console log quotes the exit status) and answered a new `init` after
  their restart.

A window starts `grace_ns` after the nemesis op completed (a message already on its way may still
land) and ends when the op that undoes it is invoked. A no-op nemesis fails these checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

grace_ns_default = 100_000_000  # lines a node wrote just before a pause may be routed a little later
window_ns_min = 100_000_000  # a window shorter than this proves little either way


@dataclass
class Run:
    ops: list[dict]
    console: str  # jepsen.log
    sends: dict[int, tuple[int, str, str, str]] = field(default_factory=dict)  # id -> (t, src, dest, type)
    recvs: list[tuple[int, int]] = field(default_factory=list)  # (t, id)
    drops: list[tuple[int, int, str]] = field(default_factory=list)  # (t, id, why or "")
    end_ns: int = 0


def load(store_dir: Path) -> Run:
    ops = [orjson.loads(line) for line in (store_dir / "history.jsonl").read_bytes().splitlines()]
    run = Run(ops, (store_dir / "jepsen.log").read_text())
    records = [orjson.loads(line) for line in (store_dir / "messages.jsonl").read_bytes().splitlines()]
    zeros = [rec["ns"] for rec in records if rec["t"] == "time-zero"]
    assert len(zeros) == 1, f"messages.jsonl has {len(zeros)} time-zero records"
    zero = zeros[0]
    for rec in records:
        t = rec["t"]
        ns = rec["ns"] - zero
        if t == "send":
            m = rec["msg"]
            run.sends[m["id"]] = (ns, m["src"], m["dest"], m["body"].get("type", ""))
        elif t == "recv":
            run.recvs.append((ns, rec["id"]))
        elif t == "drop":
            run.drops.append((ns, rec["id"], rec.get("why", "")))
        else:
            continue
        run.end_ns = max(run.end_ns, ns)
    return run


def windows(run: Run, kind: str, grace_ns: int = grace_ns_default) -> list[tuple[int, int, object]]:
    """(start, stop, completion value) of each `kind` fault: from its start op's completion plus
    the grace to the invoke of the op that undoes it (or the end of the run)."""
    out = []
    start = value = None
    for op in run.ops:
        if op["process"] != "nemesis":
            continue
        if op["f"] == f"start-{kind}" and isinstance(op["value"], list):
            start, value = op["time"] + grace_ns, op["value"]
        elif op["f"] == f"stop-{kind}" and start is not None and not isinstance(op["value"], list):
            if op["value"] != "network-healed":  # the invoke (value None or "final-heal")
                out.append((start, op["time"], value))
                start = None
    if start is not None:
        out.append((start, run.end_ns, value))
    return out


def assert_partitions_bit(run: Run) -> dict:
    """Partitions dropped messages, and nobody heard from a node it held a grudge against."""
    periods = windows(run, "partition")
    assert periods, "no partition was started"
    long_enough = [p for p in periods if p[1] - p[0] >= window_ns_min]
    assert long_enough, f"no partition lasted {window_ns_min / 1e6:.0f} ms: {periods}"
    cut_drops = [(t, i) for t, i, why in run.drops if not why]
    assert cut_drops, "partitions were started but no message was ever dropped by one"
    heard: list[str] = []
    in_window = 0
    for start, stop, (_, grudge) in periods:
        for t, i, _ in run.drops:
            in_window += start <= t <= stop
        for t, i in run.recvs:
            if not start <= t <= stop:
                continue
            _, src, dest, typ = run.sends[i]
            if src in grudge.get(dest, ()):
                heard.append(f"{dest} received {typ} from {src} at {t / 1e9:.3f} s, inside the "
                             f"partition {start / 1e9:.3f}-{stop / 1e9:.3f} s (grudge {grudge})")
    assert not heard, f"{len(heard)} messages crossed a partition, e.g. " + "; ".join(heard[:3])
    assert in_window, "no drop inside any partition window"
    return {"partitions": len(periods), "dropped": len(cut_drops)}


def assert_process_faults_bit(run: Run, kind: str) -> dict:
    """kill/pause: the nodes hit sent nothing while down or stopped; killed ones answered a new init."""
    assert kind in ("kill", "pause")
    periods = windows(run, kind)
    assert periods, f"no {kind} was started"
    assert any(stop - start >= window_ns_min for start, stop, _ in periods), periods
    spoke = []
    hit_total = 0
    for start, stop, (_, hit) in periods:
        hit_total += len(hit)
        for t, src, dest, typ in run.sends.values():
            if start <= t <= stop and src in hit:
                spoke.append(f"{src} sent {typ} to {dest} at {t / 1e9:.3f} s while it was {kind}ed "
                             f"({start / 1e9:.3f}-{stop / 1e9:.3f} s)")
        if kind == "kill" and stop < run.end_ns:
            answered = {src for t, src, dest, typ in run.sends.values() if t >= stop and typ == "init_ok"}
            assert set(hit) <= answered, f"killed {hit} at {start / 1e9:.3f} s; init_ok after: {answered}"
    assert not spoke, f"{len(spoke)} messages from {kind}ed nodes, e.g. " + "; ".join(spoke[:3])
    if kind == "kill":  # the OS's word: each process hit died of SIGKILL (not a clean exit on EOF)
        kills = [line for line in run.console.splitlines() if "Nemesis killed" in line]
        assert len(kills) == hit_total and all(line.endswith(", signal 9)") for line in kills), kills
    assert hit_total, f"no {kind} hit a node"
    return {kind: len(periods), "nodes": hit_total}
