"""Rast: a Raft lin-kv node for Maelstrom (core, wire, runtime, node), its Maelstrom-compatible
runner (harness) and a deterministic whole-cluster simulator (sim). See README.md."""

__version__ = "0.1.0"
