"""The sync benchmark runs end to end (`tests/bench/sync.py --smoke`: tiny sizes, 2 repetitions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_netns
BENCH = Path(__file__).resolve().parent / "bench" / "sync.py"


def test_sync_benchmark_smoke(needs_netns, tether_home):
    result = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    *table, last = result.stdout.strip().splitlines()
    figures = json.loads(last)
    assert figures["benchmark"] == "sync" and figures["smoke"] is True
    assert "W1 loopback" in "\n".join(table) and "W5 idle" in "\n".join(table)
    for key in ("w1_loopback_p50", "w1_100ms_p50", "w2", "w3", "w4"):
        assert figures["ratios"][key] > 0, key
    assert figures["w1_100ms"]["tether_p50_ms"] > 50  # the relay really delays (50 ms each way)
    assert figures["w5_peak_mb"] > 0
