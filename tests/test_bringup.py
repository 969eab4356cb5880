"""`tether up -v`: the bring-up's stages with their times (issue 14, done-when 5).

A real `tether up -v` in a laptop terminal (tmux) against the testbed: once the run's first line is
on screen the console's log gives the stages in one line, and when the console closes (`q`) the
terminal shows them one per line, in the order reached, every time counted from the command's start.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from node_helpers import tick_workspace
from testbed import Testbed
from testbed.wait import wait_until

from tui.bringup import Stage
from tui.cli import main

pytestmark = pytest.mark.needs_netns
STAGE_LINE = re.compile(r"^\s+(\d+\.\d\d) s  \(\+(\d+\.\d\d)\)  (.+)$")


def test_up_v_prints_each_stage_with_its_time(node: Testbed, tmp_path: Path, terminal):
    config = tick_workspace(tmp_path / "ws", node)
    terminal.run_tether("-c", str(config), "up", "-v")
    screen = terminal.screen
    try:
        try:
            wait_until(lambda: "tick " in screen() and "first line +" in screen(), 60, 0.1, "the ticks and the stages")
        except TimeoutError:
            pytest.fail(f"no ticks and stages on screen:\n{screen()}")
        terminal("send-keys", "q")
        wait_until(lambda: f"{terminal.EXITED}0" in screen(), 30, 0.1, "the console closed")
    finally:
        assert main(["-c", str(config), "down"]) == 0
    text = screen()
    assert "bring-up stages (seconds since the command started):" in text
    stages = [match.groups() for line in text.splitlines() if (match := STAGE_LINE.match(line))]
    names = [name for _, _, name in stages]
    # Every stage was reached (a plain run: its debug port is forwarded too), each once.
    assert sorted(names) == sorted(stage.value for stage in Stage), text
    assert "not reached" not in text
    times = [float(at) for at, _, _ in stages]
    assert times == sorted(times) and 0 < times[-1] < 60
    assert names[:2] == [Stage.LOGIN.value, Stage.CONSOLE.value]  # logged in before the console took the terminal
    assert names.index(Stage.FIRST_SYNC.value) < names.index(Stage.RUNNING.value)  # the run starts on synced code
    assert names.index(Stage.LAYOUT.value) < names.index(Stage.FIRST_LINE.value)
    for (at, step, _), before in zip(stages, [0.0, *times]):
        assert abs(float(at) - before - float(step)) < 0.011
