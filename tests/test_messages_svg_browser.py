"""messages.svg in a real browser: a short run's Lamport diagram, screenshotted by headless
Chromium, must show the diagram (grey node lines, light-blue client arrows, black server and
service arrows, labels). Skipped where Chromium is not installed (Debian: `apt-get install -y
chromium`); the README names this check. Run it alone with

    .venv/bin/python -m pytest tests/test_messages_svg_browser.py -q

It leaves the screenshot beside the SVG (messages-screenshot.png) for a person to look at."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from test_runner_e2e import latest, maelstrom

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which(
    "google-chrome")
screenshot_timeout_s = 90


def _pixels(png):
    import matplotlib.image
    return (matplotlib.image.imread(png)[:, :, :3] * 255).round().astype(int)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install -y chromium)")
def test_messages_svg_renders_in_headless_chromium(tmp_path):
    r = maelstrom(tmp_path, "kv_proxy.py", "--time-limit", "1", "--rate", "20",
                  "--svg-events", "60", node_args=("--service", "lin-kv"))
    assert r.returncode in (0, 1), r.stdout + r.stderr   # 1 s may see no ok cas: stats say 1
    svg = latest(tmp_path) / "messages.svg"
    shot = svg.with_name("messages-screenshot.png")
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1250,1400",
                    svg.as_uri()], capture_output=True, timeout=screenshot_timeout_s, check=True)
    px = _pixels(shot)
    assert px.shape[:2] == (1400, 1250)

    def count(rgb, tolerance=12):
        return int((abs(px - rgb).max(axis=2) <= tolerance).sum())
    assert count((0x81, 0xBF, 0xFC)) > 2000     # client arrows
    assert count((0, 0, 0), 40) > 2000           # server/service arrows, arrowheads, labels
    assert count((0xCC, 0xCC, 0xCC)) > 500       # the participants' lines
    assert count((255, 255, 255)) > px.shape[0] * px.shape[1] // 2   # and a white page
