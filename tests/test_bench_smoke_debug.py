"""The debugger step benchmark runs end to end (`tests/bench/debug_step.py --smoke`: 2 steps each
way over a 100 ms round trip, one restart)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_netns
BENCH = Path(__file__).resolve().parent / "bench" / "debug_step.py"


def test_debug_step_bench_smoke(needs_netns, tether_home):
    result = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    *table, last = result.stdout.strip().splitlines()
    figures = json.loads(last)
    assert figures["benchmark"] == "debug_step" and "tether" in "\n".join(table)
    assert figures["tether"]["round_trips"] == 1 and figures["plain"]["round_trips"] == 4
    assert figures["tether"]["ms"] > 0 and figures["plain"]["ms"] > 0
    assert len(figures["restart_to_reattached_ms"]) == 1
