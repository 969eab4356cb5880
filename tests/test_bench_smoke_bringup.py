"""The bring-up benchmark runs end to end (`tests/bench/bringup.py --smoke`: a few seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tui.bringup import Stage

pytestmark = pytest.mark.needs_netns
BENCH = Path(__file__).resolve().parent / "bench" / "bringup.py"


def test_bringup_smoke(needs_netns, tether_home):
    result = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    *table, last = result.stdout.strip().splitlines()
    figures = json.loads(last)
    assert figures["benchmark"] == "bringup" and "floor: cold rsync" in "\n".join(table)
    assert 0 < figures["floor_s"] and 0 < figures["tether_s"]
    # The stages came from `tether up -v` on the terminal, every one of them.
    assert set(figures["stages_s"]) == {stage.value for stage in Stage}
