"""The restart benchmark runs end to end (`tests/bench/restart.py --smoke`: two restarts each)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_netns
BENCH = Path(__file__).resolve().parent / "bench" / "restart.py"


def test_restart_bench_smoke(needs_netns, tether_home):
    result = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    *table, last = result.stdout.strip().splitlines()
    figures = json.loads(last)
    assert figures["benchmark"] == "restart" and "tether loop" in "\n".join(table)
    assert len(figures["tether_s"]) == 2 and len(figures["bash_s"]) == 2 and figures["floor_s"] > 0
    assert figures["meets_must"], figures  # the must-hold: at most half the bash loop's
