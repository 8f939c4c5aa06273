#!/usr/bin/env python3
"""Commit latency while a learner catches up, against steady state. (A program that prints figures.)

Five bin/rast processes through the router of tests/procnet.py, three of them members. The
cluster is loaded with --keys keys of --value-bytes each (so a new member has a large state to
catch up: an InstallSnapshot of that size, then the entries after it), then a closed loop of
--window writes in flight measures write latency (client send to write_ok) for --steady-s
seconds; then `reconfigure` adds n3 and the same loop runs until reconfigure_ok (the learner caught
up and was promoted), and again afterwards. Prints p50 / p90 / p99 / mean per phase and the ratio
catch-up : steady (the target is within 2x).

    .venv/bin/python bench/membership_bench.py [--keys 20000] [--value-bytes 1000] [--window 16]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from procnet import ProcNet  # noqa: E402

IDS = ["n0", "n1", "n2", "n3", "n4"]
PHASE_S_MAX = 300.0  # bound on any phase


def quantiles(xs: list[float]) -> str:
    if not xs:
        return "no samples"
    s = sorted(xs)
    q = lambda p: s[min(len(s) - 1, int(p * len(s)))]  # noqa: E731
    return (f"n={len(s):5d}  p50 {q(0.5) * 1e3:6.2f} ms  p90 {q(0.9) * 1e3:6.2f} ms  "
            f"p99 {q(0.99) * 1e3:6.2f} ms  mean {sum(s) / len(s) * 1e3:6.2f} ms")


class Load:
    def __init__(self, net: ProcNet, leader: str, window: int, value: str) -> None:
        self.net, self.leader, self.window, self.value = net, leader, window, value
        self.msg_id = 10_000_000
        self.in_flight: dict[int, float] = {}

    def run(self, until, keys: int) -> list[float]:
        """Closed loop until `until()` is true: latencies of the acknowledged writes."""
        lat: list[float] = []
        rng = random.Random(1)
        t0 = time.monotonic()
        while not until():
            assert time.monotonic() - t0 < PHASE_S_MAX, "phase did not end"
            while len(self.in_flight) < self.window:
                self.msg_id += 1
                self.in_flight[self.msg_id] = time.monotonic()
                self.net.send("c1", self.leader, {"type": "write", "msg_id": self.msg_id,
                                                  "key": rng.randrange(keys), "value": self.value})
            self.net.pump(0.005)
            now = time.monotonic()
            for mid in list(self.in_flight):
                reply = self.net.replies.pop(("c1", mid), None)
                if reply is not None:
                    sent = self.in_flight.pop(mid)
                    if reply["body"]["type"] == "write_ok":
                        lat.append(now - sent)
                elif now - self.in_flight[mid] > 5.0:
                    del self.in_flight[mid]
        return lat


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=20_000)
    p.add_argument("--value-bytes", type=int, default=1000)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--steady-s", type=float, default=5.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="rast-member-bench-") as tmp:
        net = ProcNet(Path(tmp), IDS, ["n0", "n1", "n2"], ("--snapshot-entries", "5000"))
        try:
            leader = None
            t0 = time.monotonic()
            while leader is None:
                assert time.monotonic() - t0 < 30, "no leader"
                r = net.rpc("cm", "n0", {"type": "members", "msg_id": int(time.monotonic() * 1e6)}, 1.0)
                if r is not None and r["body"]["type"] == "members_ok":
                    leader = r["src"]
            value = "v" * args.value_bytes
            load = Load(net, leader, 64, value)
            t0 = time.monotonic()
            # Preload: one pass over the keys, pipelined (a state for the learner to catch up).
            msg = 0
            while msg < args.keys or load.in_flight:
                assert time.monotonic() - t0 < PHASE_S_MAX, "preload did not finish"
                while msg < args.keys and len(load.in_flight) < 64:
                    load.in_flight[msg] = time.monotonic()
                    net.send("c1", leader, {"type": "write", "msg_id": msg, "key": msg, "value": value})
                    msg += 1
                net.pump(0.005)
                for mid in list(load.in_flight):
                    if net.replies.pop(("c1", mid), None) is not None:
                        del load.in_flight[mid]
            print(f"preloaded {args.keys} keys of {args.value_bytes} B in {time.monotonic() - t0:.1f} s "
                  f"(leader {leader})", flush=True)
            load.window = args.window
            end = time.monotonic() + args.steady_s
            steady = load.run(lambda: time.monotonic() > end, args.keys)
            net.send("cm", leader, {"type": "reconfigure", "msg_id": 1, "members": ["n0", "n1", "n2", "n3"]})
            t_add = time.monotonic()
            catchup = load.run(lambda: ("cm", 1) in net.replies, args.keys)
            t_done = time.monotonic()
            reply = net.replies.pop(("cm", 1))
            end = time.monotonic() + args.steady_s
            after = load.run(lambda: time.monotonic() > end, args.keys)
            print(f"n3 added (learner, snapshot, entries, promoted) in {t_done - t_add:.2f} s: {reply['body']}")
            print(f"steady (3 voters)        {quantiles(steady)}")
            print(f"learner catching up      {quantiles(catchup)}")
            print(f"after (4 voters)         {quantiles(after)}")
            if steady and catchup:
                med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
                p99 = lambda xs: sorted(xs)[min(len(xs) - 1, int(0.99 * len(xs)))]  # noqa: E731
                print(f"catch-up / steady: p50 {med(catchup) / med(steady):.2f}x, "
                      f"p99 {p99(catchup) / p99(steady):.2f}x, "
                      f"mean {(sum(catchup) / len(catchup)) / (sum(steady) / len(steady)):.2f}x")
        finally:
            net.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
