"""Snapshots of the debugger screen in each theme at 80x24 and 200x50, stopped at a breakpoint in a real debugpy
(on 127.0.0.1; the session around it is the scripted one of the other console tests).

The stop is the loop's first step (the debuggee waits for the debugger, then hits the breakpoint
saved beforehand), so what the screen shows is the same every run. Review and regenerate with
``python -m pytest tests/test_debugger_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from console_helpers import wait_until
from debugger_helpers import LOOP, DebuggingSession, loop_line, open_stopped
from test_dap import Debuggee, free_port
from test_dashboard_snapshots import SIZES, THEMES
from textual.pilot import Pilot
from textual.widgets import OptionList

from tui.app import TetherApp
from tui.debug.breakpoints import DebugMemory

STEP_LINE = loop_line("STEP LINE")


StoppedConsole = Callable[[str], tuple[TetherApp, Callable[[Pilot], object]]]


@pytest.fixture
def stopped_console(tmp_path: Path) -> Iterator[StoppedConsole]:
    """A console in the given theme, and what brings its debugger screen to the stop."""
    runs: list[Debuggee] = []
    try:
        yield lambda theme: _stopped_console(tmp_path, theme, runs)
    finally:
        for run in runs:
            run.kill()


def _stopped_console(tmp_path: Path, theme: str, runs: list[Debuggee]) -> tuple[TetherApp, Callable[[Pilot], object]]:
    port = free_port()
    run = Debuggee(port, tmp_path / "out", LOOP)
    runs.append(run)
    memory = DebugMemory(tmp_path / "debug.json")
    memory.toggle(LOOP.name, STEP_LINE)
    memory.add_watch("weight * 2")
    session = DebuggingSession(port, memory)
    app = TetherApp(session, theme_name=theme)

    async def stop_there(pilot: Pilot) -> None:
        screen = await open_stopped(app, pilot, session)
        watches = screen.query_one("#debug-watches", OptionList)
        await wait_until(
            pilot, lambda: watches.option_count > 0 and "= 2.0" in str(watches.get_option_at_index(0).prompt), 10
        )
        await pilot.pause()

    return app, stop_there


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_debugger_screen_in_each_theme(snap_compare, stopped_console: StoppedConsole, theme: str, size) -> None:
    app, stop_there = stopped_console(theme)
    assert snap_compare(app, terminal_size=size, run_before=stop_there)
