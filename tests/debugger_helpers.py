"""A console with a real debugger on a local debugpy, for the debugger screen's pilot and snapshot
tests: the scripted session of the other console tests plus ``debugger()``, attached over plain
TCP to ``python -m debugpy --listen 127.0.0.1:PORT --wait-for-client`` (tests/test_dap.Debuggee).
The testbed test (tests/test_debugger_screen.py) covers the real session and its private stream.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from app_fakes import ScriptedSession
from console_helpers import wait_until
from textual.pilot import Pilot

from tui.app import TetherApp
from tui.app.screens.debugger import DebuggerScreen
from tui.debug.breakpoints import DebugMemory
from tui.debug.debugger import Debugger, Streams
from tui.debug.ranks import RankDebuggers
from tui.events import DebugStatus, LinkChanged, LinkState

LOOP = Path(__file__).resolve().parent / "fixtures" / "debugger_loop.py"


def loop_line(marker: str) -> int:
    return next(n for n, text in enumerate(LOOP.read_text().splitlines(), 1) if f"# {marker}" in text)


class DebuggingSession(ScriptedSession):
    """The scripted session plus the real debuggers (``RankDebuggers``), attached to a local
    debugpy on ``port`` over plain TCP."""

    def __init__(self, port: int, memory: DebugMemory, root: Path = LOOP.parent) -> None:
        super().__init__(title="mnist", initial_events=[LinkChanged(LinkState.UP, rtt_ms=24.0)])
        self.port = port
        self.memory = memory

        async def connect(rank: int) -> Streams:
            return await asyncio.open_connection("127.0.0.1", self.port)

        self.group = RankDebuggers(memory, root, lambda: str(root), connect, self.emit)

    def debugger(self, rank: int = 0) -> Debugger:
        return self.group.debugger(rank)

    def debug_group(self) -> RankDebuggers:
        return self.group


def debugger_stopped(app: TetherApp, line: int | None = None) -> bool:
    screen = app.screen
    if not isinstance(screen, DebuggerScreen) or screen.view.status is not DebugStatus.STOPPED:
        return False
    top = screen.view.stop.top if screen.view.stop else None
    return line is None or (top is not None and top.frame.line == line)


async def open_stopped(app: TetherApp, pilot: Pilot, session: DebuggingSession, key: str = "b") -> DebuggerScreen:
    """Open the debugger with ``key`` and wait for the stop at the saved breakpoint."""
    await session.wait_running()
    await pilot.press(key)
    await wait_until(pilot, lambda: debugger_stopped(app), 30)
    screen = app.screen
    assert isinstance(screen, DebuggerScreen)
    return screen
