"""`python -m rast_maelstrom.harness` (bin/maelstrom-py): the Maelstrom-compatible CLI.

Owns nothing but the process exit code; see cli.py.
"""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
