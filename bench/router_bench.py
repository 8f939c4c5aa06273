#!/usr/bin/env python3
"""Router throughput: messages/s through the runner's network and event loop with a trivial node.

Starts `tests/nodes/echo.py` nodes (or, with `--node fast`, the fixture bench/echo_node.py, cheap
enough that the router is the bottleneck) under the real NodeProcess + Network + Loop, then drives
closed-loop in-loop clients (each with one request in flight, as the lin-kv workers) for a fixed
time, and prints messages routed per second (every send counts: client->node and node->client,
plus node->node in relay mode), with and without the journal.

    .venv/bin/python bench/router_bench.py [--seconds 5] [--clients 64] [--nodes 1]

A figure, not a test: the number depends on the machine and its load.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rast_maelstrom.harness.eventloop import Loop  # noqa: E402
from rast_maelstrom.harness.network import Network  # noqa: E402
from rast_maelstrom.harness.process import NodeProcess, connect_to_network  # noqa: E402

ECHO = str(ROOT / "tests" / "nodes" / "echo.py")
FAST_ECHO = str(ROOT / "bench" / "echo_node.py")   # a fixture: orjson, replies from templates
init_wait_s_max = 10.0


def run(seconds: float, clients: int, node_count: int, mode: str, journal: bool,
        workdir: Path, program: str = ECHO) -> tuple[float, float, int]:
    loop = Loop()
    jfile = open(workdir / "messages.jsonl", "wb", buffering=1 << 20) if journal else None
    net = Network(loop, journal=jfile)
    nodes = [f"n{i}" for i in range(node_count)]
    procs = [NodeProcess(loop, n, [sys.executable, program], workdir / f"{n}.log") for n in nodes]
    connect_to_network(loop, net, procs)   # the runner's own wiring: chunks routed in one call
    try:
        for p in procs:
            p.start()
        inited = set()
        for k, node in enumerate(nodes):
            net.register_client(f"c{k}", lambda src, body: inited.add(src))
            net.send_body(f"c{k}", node, {"type": "init", "msg_id": 1, "node_id": node,
                                          "node_ids": nodes})
        assert loop.run_until(lambda: len(inited) == len(nodes),
                              loop.now_ns() + int(init_wait_s_max * 1e9)), "init failed"
        state = {"running": True, "done": 0}
        msg_ids = [0] * clients
        names = [f"c{100 + i}" for i in range(clients)]
        dests = [nodes[i % node_count] for i in range(clients)]
        # the request body from bytes: orjson.dumps({"type": mode, "msg_id": m, "echo": i})
        template = b'{"type":%s,"msg_id":%%d,"echo":%%d}' % orjson.dumps(mode)
        send_json = net.send_json

        def send(i: int) -> None:
            msg_ids[i] += 1
            send_json(names[i], dests[i], template % (msg_ids[i], i))

        def on_reply(i: int, src: str, body: dict) -> None:
            assert body["in_reply_to"] == msg_ids[i]
            state["done"] += 1
            if state["running"]:
                msg_ids[i] += 1
                send_json(names[i], dests[i], template % (msg_ids[i], i))

        for i in range(clients):
            net.register_client(names[i], functools.partial(on_reply, i))
        sent0 = net.send_all
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        for i in range(clients):
            send(i)
        loop.run_until(lambda: False, loop.now_ns() + int(seconds * 1e9))
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        routed = net.send_all - sent0
        return routed / elapsed, cpu / elapsed, state["done"]
    finally:
        for p in procs:
            p.kill()
            p.close()
        if jfile:
            jfile.close()
        loop.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--node", choices=("stdlib", "fast"), default="stdlib",
                    help="the echo node: tests/nodes/echo.py (stdlib json) or the fixture "
                         "bench/echo_node.py (orjson; echo only, no relay)")
    a = ap.parse_args()
    program = FAST_ECHO if a.node == "fast" else ECHO
    print(f"router bench: {a.seconds:.0f} s per case, {a.clients} closed-loop clients, "
          f"{a.nodes} echo node(s), {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        modes = (("echo", True), ("echo", False)) + ((("relay", True),) if a.node == "stdlib"
                                                      else ())
        for mode, journal in modes:
            rate, cpu, ops = run(a.seconds, a.clients, a.nodes if mode == "echo" else
                                 max(2, a.nodes), mode, journal, Path(tmp),
                                 program if mode == "echo" else ECHO)
            us_per_msg = cpu / rate * 1e6
            print(f"  {mode:5s} journal={'on ' if journal else 'off'}  {rate:9,.0f} msgs/s  "
                  f"({ops / a.seconds:8,.0f} round trips/s); router CPU {cpu * 100:3.0f}% of a "
                  f"core = {us_per_msg:4.1f} us/msg, i.e. ~{1e6 / us_per_msg:9,.0f} msgs/s "
                  f"if the router had a core to itself")


if __name__ == "__main__":
    main()
