"""Maelstrom's built-in services: nodes inside the router that a node under test may send RPCs to.

Owns (maelstrom-spec §7, read against the jar's `service.clj`): the four services the jar starts
before the first node, under the ids `lin-kv`, `seq-kv`, `lww-kv` and `lin-tso`, each an endpoint
on the network with the interface the network delivers to a node process (`deliver(framed)`), so
the router needs nothing new: messages to and from them get the configured latency, are never
partitioned (grudges name servers only), and are counted in `:net` as server traffic (or client
traffic when the other end is a client), exactly as the jar counts them.

Behaviour of an endpoint: each delivered message is handled at once, in delivery order; the reply
goes to the message's `src` (whatever it claims to be), its body being the service's answer plus
`in_reply_to` = the request's `msg_id` (null when there was none) and no `msg_id`. A request the
service has no case for (an unknown `type`, or anything `lin-tso` gets besides `ts`) is logged as a
WARN and gets no reply, so the caller times out -- as the jar's service thread does. A reply to a
destination that is no longer registered is dropped with a WARN.

The state machines live in `kv.py` (key-value maps and the timestamp oracle, compared with JSON
equality: 3, 3.0 and true are three different values) and the consistency wrappers in
`consistency.py`.

Invariants: one thread (the runner's loop); all randomness from the rng passed to `start`.
May not touch: processes, the workload, the history; only `network.register_node`,
`network.send_body` and `network.inboxes` (to test that a reply's destination exists).
"""
from __future__ import annotations

import logging
import random

import orjson

from .consistency import Eventual, Linearizable, Sequential
from .kv import LwwKv, PersistentKv, PersistentTso, UnhandledRequest

log = logging.getLogger("maelstrom.service")

SERVICE_IDS = ("lin-kv", "lin-tso", "lww-kv", "seq-kv")


class ServiceEndpoint:
    """One service on the network: parses what is delivered, answers through the network."""

    def __init__(self, service_id: str, service, network):
        self.id = service_id
        self.service = service
        self.network = network
        self.handled = 0
        self.unhandled = 0

    def deliver(self, framed: bytes) -> None:
        msg = orjson.loads(framed)
        src = msg["src"]
        body = msg["body"]
        try:
            reply = self.service.handle(src, body)
        except UnhandledRequest as exc:
            self.unhandled += 1
            log.warning("Error in service worker %s! %s; no reply to %s", self.id, exc, src)
            return
        self.handled += 1
        reply["in_reply_to"] = body.get("msg_id")
        if src not in self.network.inboxes:
            log.warning("Error in service worker %s! reply to unregistered %s dropped",
                        self.id, src)
            return
        self.network.send_body(self.id, src, reply)


def default_services(rng: random.Random) -> dict:
    """The jar's four services, keyed by id."""
    return {
        "lww-kv": Eventual(LwwKv.empty(), rng, replicas=2),
        "seq-kv": Sequential(PersistentKv.empty(), rng),
        "lin-kv": Linearizable(PersistentKv.empty()),
        "lin-tso": Linearizable(PersistentTso(0)),
    }


def start(network, rng: random.Random) -> dict[str, ServiceEndpoint]:
    """Register the four services on `network` (call before any node starts)."""
    endpoints = {}
    for service_id, service in sorted(default_services(rng).items()):
        endpoint = ServiceEndpoint(service_id, service, network)
        network.register_node(service_id, endpoint.deliver)
        endpoints[service_id] = endpoint
    log.info("Starting services: %s", ", ".join(sorted(endpoints)))
    return endpoints
