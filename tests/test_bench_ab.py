"""bench/ab.py's system specs: relative paths are taken from the repository root, every one of them."""

from __future__ import annotations

from pathlib import Path

from benchmods import bench_module

ROOT = Path(__file__).resolve().parent.parent


def test_every_relative_path_in_a_system_command_is_taken_from_the_repository_root():
    """Nodes start in a working directory of their own, so a script given as an argument
    (`python bench/x.py`) must be made absolute too, not only the program; other words stay."""
    ab = bench_module("ab")
    s = ab.parse_system("p=python3 bench/null_node.py --base-port 2000 bench")
    assert s.name == "p"
    assert s.argv == ["python3", str(ROOT / "bench" / "null_node.py"), "--base-port", "2000", "bench"]
    s = ab.parse_system("r=bin/rast --no-snapshots")
    assert s.argv == [str(ROOT / "bin" / "rast"), "--no-snapshots"]
    s = ab.parse_system("a=/usr/bin/env bin/rast")
    assert s.argv == ["/usr/bin/env", str(ROOT / "bin" / "rast")]
