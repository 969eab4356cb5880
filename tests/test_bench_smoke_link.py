"""The link benchmark runs end to end (`tests/bench/link_cost.py --smoke`: a few seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.needs_netns
BENCH = Path(__file__).resolve().parent / "bench" / "link_cost.py"


def test_link_cost_smoke(needs_netns, tether_home):
    result = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    *table, last = result.stdout.strip().splitlines()
    figures = json.loads(last)
    assert figures["benchmark"] == "link_cost" and "(a) dashboard" in "\n".join(table)
    rates = figures["plain"]
    assert rates["dashboard"] > 0 and rates["attach"] > 0 and rates["info"] > 0
    assert figures["reattach"]["no_delay_s"] > 0
