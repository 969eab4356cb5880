"""The console CPU benchmark runs end to end (`tests/bench/console_cpu.py --smoke`: about 15 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_netns
BENCH = Path(__file__).resolve().parent / "bench" / "console_cpu.py"


def test_console_cpu_smoke(needs_netns, tether_home):
    result = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    *table, last = result.stdout.strip().splitlines()
    figures = json.loads(last)
    assert figures["benchmark"] == "console_cpu" and "tmux attach (node), the floor" in "\n".join(table)
    # The console did work while the run printed (it drew the lines): its process was the one measured.
    assert figures["loud"]["console"] > 0 and figures["loud"]["loop"] > 0
