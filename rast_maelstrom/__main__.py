"""`python -m rast_maelstrom`: the Rast node, the same entry point as `bin/rast` and the `rast`
console script. Owns nothing but the process exit code; see node.py."""
import sys

from .node import main

if __name__ == "__main__":
    sys.exit(main())
