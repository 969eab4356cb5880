"""The smoke run of README's screenshot script (tests/screenshot.py): on the demo's throwaway
cluster it waits for the run's loss in the Metrics panel and writes the console's SVG."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "screenshot.py"
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(), reason="the demo needs openssh-server"
)
def test_the_screenshot_script_shows_the_running_demo(tmp_path: Path) -> None:
    out = tmp_path / "shot.svg"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--points", "2", "--out", str(out), "--timeout", "60"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    svg = out.read_text()
    assert svg.startswith("<svg") and "Metrics" in svg and "loss" in svg and "epoch" in svg
    assert "rror" not in svg and "crashed" not in svg  # no error on the screen it shows
