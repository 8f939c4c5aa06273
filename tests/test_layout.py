"""The dependency shape of DESIGN.md, read from the imports with `ast`: an edge pointing the wrong way
fails here before it becomes a tangle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "rast_maelstrom"

# What each part may import from the project (prefixes of absolute module names).
ALLOWED_PROJECT_IMPORTS = {
    "core": {"rast_maelstrom.core"},
    "wire": {"rast_maelstrom.wire"},
    "runtime": {"rast_maelstrom.runtime"},
    "kv": {"rast_maelstrom.sessions"},
    "sessions": set(),  # replicated state: no IO, no Raft
    "forwards": set(),
    # The replicated state machine: the sections a snapshot holds (the kv map, the session table).
    "state": {"rast_maelstrom.kv", "rast_maelstrom.sessions"},
    # Both programs print the package version (`--version`), kept in the package root alone.
    "harness": {"rast_maelstrom.harness", "rast_maelstrom.__version__"},
    "node": {"rast_maelstrom.__version__", "rast_maelstrom.core", "rast_maelstrom.wire", "rast_maelstrom.runtime", "rast_maelstrom.kv",
             "rast_maelstrom.state", "rast_maelstrom.sessions", "rast_maelstrom.forwards"},
    # The simulator drives the real node and judges it with the runner's oracle.
    "sim": {"rast_maelstrom.sim", "rast_maelstrom.node", "rast_maelstrom.core", "rast_maelstrom.kv",
            "rast_maelstrom.sessions",
            "rast_maelstrom.runtime", "rast_maelstrom.wire", "rast_maelstrom.harness.linearizability",
            "rast_maelstrom.harness.workload"},
}
CORE_STDLIB = {"__future__", "dataclasses", "enum", "collections", "bisect", "typing", "heapq", "itertools",
               "json"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    pkg_parts = ["rast_maelstrom", *path.relative_to(PKG).parts[:-1]]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    found.update(f"{mod}.{a.name}" for a in node.names)
                else:
                    found.add(mod)
            else:
                found.add(node.module or "")
    return found


def _part(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else path.stem


def _files(part: str) -> list[Path]:
    p = PKG / part
    return sorted(p.rglob("*.py")) if p.is_dir() else [PKG / f"{part}.py"]


def test_each_part_imports_only_what_it_may() -> None:
    bad = []
    for part, allowed in ALLOWED_PROJECT_IMPORTS.items():
        for f in _files(part):
            for mod in _imports(f):
                if mod.startswith("rast_maelstrom") and not any(mod == a or mod.startswith(a + ".") for a in allowed):
                    bad.append(f"{f.relative_to(PKG)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_core_imports_only_pure_stdlib() -> None:
    bad = []
    for f in _files("core"):
        for mod in _imports(f):
            top = mod.split(".")[0]
            if top != "rast_maelstrom" and top not in CORE_STDLIB:
                bad.append(f"{f.name} imports {mod}")
    assert not bad, "\n".join(bad)


def test_linearizability_checker_shares_no_code_with_what_it_judges() -> None:
    mods = _imports(PKG / "harness" / "linearizability.py")
    assert all(m.split(".")[0] in sys.stdlib_module_names for m in mods), mods


def test_relative_imports_are_resolved() -> None:
    # node.py uses "from .core import ..."; the checker must see it as rast_maelstrom.core
    mods = _imports(PKG / "node.py")
    assert "rast_maelstrom.core" in mods and "rast_maelstrom.runtime.wal" in mods
