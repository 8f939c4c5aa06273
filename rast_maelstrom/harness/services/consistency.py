"""The jar's three ways of serving a persistent service to many callers (`service.clj`).

- `Linearizable`: one state; every request runs on the newest state, in delivery order.
- `Sequential` (seq-kv): the last `states_max` (32) states are kept, numbered 0, 1, 2, ... A caller
  (keyed by the message's `src`) that last saw state c runs its request on a state i drawn
  uniformly from c..newest. If the request leaves that state as it was (a read, a failed cas, a
  write of the value already there) its reply stands and the caller has now seen i; otherwise it
  is run again on the newest state, whose successor becomes the new newest state and the caller's.
  So each caller sees a monotonic sequence of states, but a read may be stale for everyone else.
  As in the jar's ring buffer, state i is found at position (i - newest - 1) mod count from the
  newest end, so a caller more than 32 states behind lands on some retained state.
- `Eventual` (lww-kv): `replicas` (2) independent copies; each request runs on one drawn at
  random. The jar's wrapper also computes a last-write-wins merge of two random replicas on every
  request, but binds its result to a name it then rebinds, so the merge never takes effect: the
  replicas never converge, and a read sees the writes that happened to land on its replica. This
  reproduces that (a user of the jar sees it), rather than the convergence its docstring promises.

Invariants: each wrapper is mutated only by `handle`; randomness only from the rng given.
"""
from __future__ import annotations

import random

states_max = 32


class Linearizable:
    def __init__(self, state):
        self.state = state

    def handle(self, src: str, body: dict) -> dict:
        self.state, reply = self.state.handle(body)
        return reply


class Sequential:
    def __init__(self, state, rng: random.Random, buffer_max: int = states_max):
        self.rng = rng
        self.buffer_max = buffer_max
        self.buffer = [state]        # oldest .. newest retained state
        self.last_index = 0          # the newest state's number
        self.clients: dict[str, int] = {}   # src -> number of the state it saw last

    def handle(self, src: str, body: dict) -> dict:
        seen = self.clients.get(src, 0)
        index = seen + self.rng.randrange(self.last_index - seen + 1)
        state = self.buffer[(index - self.last_index - 1) % len(self.buffer)]
        after, reply = state.handle(body)
        if after == state:
            self.clients[src] = index
            return reply
        after, reply = self.buffer[-1].handle(body)
        self.last_index += 1
        self.clients[src] = self.last_index
        self.buffer.append(after)
        if len(self.buffer) > self.buffer_max:
            del self.buffer[0]
        return reply


class Eventual:
    def __init__(self, state, rng: random.Random, replicas: int = 2):
        self.rng = rng
        self.replicas = [state] * replicas

    def handle(self, src: str, body: dict) -> dict:
        i = self.rng.randrange(len(self.replicas))
        self.replicas[i], reply = self.replicas[i].handle(body)
        return reply
