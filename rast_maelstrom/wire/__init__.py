"""JSON-lines framing, the envelope codec and the typed wire schema of the node."""
