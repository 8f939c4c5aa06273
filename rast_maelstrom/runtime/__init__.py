"""Raft-agnostic IO: the select loop with its timer heap, and the write-ahead log with its fsync thread."""
