"""Deterministic whole-cluster simulation of Rast (the VOPR idea, for Raft).

Owns: running N real `rast_maelstrom.node.Node` objects in one process against a simulated clock,
network and disk, with faults, clients and Raft safety invariants checked at every step; all
randomness from one seed, so any failure replays exactly with the command it prints.

Public API:
    SimConfig(seed, steps=20000, nodes=3, bugs=(), faults=None, node_argv=(), ...)
    FaultMix.parse("crash,partition,torn,drop=0.05") / FaultMix.swarm(rng)
    run_seed(cfg) -> RunResult      raises SimFailure (report + replay command) on a violation
CLI: python -m rast_maelstrom.sim --seeds 1-200 --steps 20000 [--nodes 3|5] [--time-budget-s T]

May not touch: the node, core, kv or WAL code (test-only taps live in a `Node` subclass here).
"""

from .checks import Invariants, Violation
from .cluster import FaultMix, RunResult, SimConfig, SimFailure, Simulation, run_seed

__all__ = ["FaultMix", "Invariants", "RunResult", "SimConfig", "SimFailure", "Simulation",
           "Violation", "run_seed"]
