"""maelstrom-py: a Maelstrom-compatible test runner. It judges nodes from outside (processes, a
simulated network, nemesis, lin-kv workload, checkers, results) and never imports the node."""
