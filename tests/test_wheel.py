"""The package as a user installs it: build the wheel, install it into a fresh virtual environment
outside the checkout, and run a short lin-kv test of the installed `rast` under the installed
`maelstrom-py` from another working directory (issue 15).

Nothing here may lean on the checkout: the environment is stripped of PYTHONPATH and the venv's own
interpreter runs everything, so a module missing from the wheel or a console script that is not
declared fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT_S = 600  # a cold pip cache downloads orjson, msgspec and matplotlib
RUN_TIMEOUT_S = 120

pytestmark = pytest.mark.e2e


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (outside the checkout) with the freshly built wheel installed; its bin dir."""
    base = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the sources, so the build leaves nothing in the checkout.
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "store", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    dist = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)], base,
         INSTALL_TIMEOUT_S)
    wheels = sorted(dist.glob("rast_maelstrom-*.whl"))
    assert len(wheels) == 1, wheels
    print(f"wheel {wheels[0].name}: {wheels[0].stat().st_size} bytes")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], base, INSTALL_TIMEOUT_S)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheels[0])], base,
         INSTALL_TIMEOUT_S)
    return venv / "bin"


def test_installed_package_is_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    out = _run([str(installed / "python"), "-c", "import rast_maelstrom; print(rast_maelstrom.__file__)"],
               tmp_path, RUN_TIMEOUT_S).stdout.strip()
    assert not out.startswith(str(ROOT)), out
    assert "site-packages" in out, out


def test_every_way_in_prints_the_version(installed: Path, tmp_path: Path) -> None:
    import rast_maelstrom

    version = rast_maelstrom.__version__
    for cmd, name in (([str(installed / "rast"), "--version"], "rast"),
                      ([str(installed / "python"), "-m", "rast_maelstrom", "--version"], "rast"),
                      ([str(installed / "maelstrom-py"), "--version"], "maelstrom-py")):
        assert _run(cmd, tmp_path, RUN_TIMEOUT_S).stdout.strip() == f"{name} {version}", cmd


def test_installed_rast_passes_lin_kv_under_installed_runner(installed: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    started = time.monotonic()
    proc = subprocess.run(
        [str(installed / "maelstrom-py"), "test", "-w", "lin-kv", "--bin", str(installed / "rast"),
         "--node-count", "3", "--concurrency", "2n", "--rate", "50", "--time-limit", "5",
         "--nemesis", "partition", "--nemesis-interval", "2"],
        cwd=work, env=_clean_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    elapsed = time.monotonic() - started
    print(f"installed lin-kv run: {elapsed:.1f} s")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Everything looks good!" in proc.stdout
    results = work / "store" / "latest" / "results.json"
    assert results.is_file(), "the run's store/ belongs to the working directory it was started from"
    assert json.loads(results.read_text())["valid?"] is True
