"""The debugger screen in the console, against a real debugpy on 127.0.0.1 (tests/debugger_helpers):
a breakpoint that hits on the dashboard opens the screen; one that hits while another screen is
open is a notification naming the key; the keys follow [ui.keys]; ? lists the screen's keys; the
console's debug line completes and keeps a history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console_helpers import run_from_palette, screen_text, wait_until
from debugger_helpers import LOOP, DebuggingSession, debugger_stopped, loop_line, open_stopped
from test_dap import Debuggee, free_port
from textual.widgets import RichLog

from tui.app import TetherApp
from tui.app.screens import HelpScreen
from tui.app.screens.debugger import ConsoleInput, DebuggerScreen
from tui.debug.breakpoints import DebugMemory
from tui.events import DebugStatus


@pytest.fixture
def debuggee(tmp_path: Path) -> Iterator[tuple[DebuggingSession, DebugMemory]]:
    port = free_port()
    run = Debuggee(port, tmp_path / "out", LOOP)
    memory = DebugMemory(tmp_path / "debug.json")
    memory.toggle(LOOP.name, loop_line("STEP LINE"))
    try:
        yield DebuggingSession(port, memory), memory
    finally:
        run.kill()


async def test_a_breakpoint_hit_on_the_dashboard_opens_the_debugger(debuggee) -> None:
    session, _ = debuggee
    app = TetherApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await session.wait_running()
        session.debugger(0).start()  # as the session does when the workspace has breakpoints saved
        await wait_until(pilot, lambda: debugger_stopped(app, loop_line("STEP LINE")), 30)
        said = f"breakpoint at {LOOP.name}:{loop_line('STEP LINE')}"
        await wait_until(pilot, lambda: said in screen_text(app), 5)


async def test_a_breakpoint_hit_elsewhere_is_a_notification_with_the_key(debuggee) -> None:
    session, _ = debuggee
    app = TetherApp(session, keys=(("debug", "ctrl+d"),))
    async with app.run_test(size=(120, 40)) as pilot:
        await session.wait_running()
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        session.debugger(0).start()
        said = f"rank 0 stopped (breakpoint) at {LOOP.name}:{loop_line('STEP LINE')}: press ctrl+d on the dashboard"
        await wait_until(pilot, lambda: any(said in str(n.message) for n in app._notifications), 30)
        assert isinstance(app.screen, HelpScreen)  # the user's screen stays
        await pilot.press("escape")
        await pilot.press("ctrl+d")
        await wait_until(pilot, lambda: debugger_stopped(app, loop_line("STEP LINE")), 10)
        # the stop that came before the screen opened is drawn: the stack, the locals
        await wait_until(pilot, lambda: f"main  {LOOP.name}:{loop_line('STEP LINE')}" in screen_text(app), 10)
        assert "weight = 1.0" in screen_text(app)


async def test_the_screens_keys_follow_ui_keys_and_help_lists_them(debuggee) -> None:
    session, _ = debuggee
    app = TetherApp(session, keys=(("debug_over", "n"), ("debug_continue", "f8")))
    async with app.run_test(size=(160, 40)) as pilot:
        await open_stopped(app, pilot, session)
        await wait_until(pilot, lambda: "Over" in screen_text(app), 5)
        footer = next(line for line in screen_text(app).splitlines() if "Over" in line)
        assert "F8 Continue" in footer.replace("f8", "F8") or "f8 Continue" in footer
        assert "n Over" in footer
        await pilot.press("n")
        await wait_until(pilot, lambda: debugger_stopped(app, loop_line("CALL LINE")), 10)
        # the palette has the screen's actions too, named with the keys in force
        await run_from_palette(app, pilot, "Debugger: Continue (f8)")
        await wait_until(pilot, lambda: debugger_stopped(app, loop_line("STEP LINE")), 10)
        await run_from_palette(app, pilot, "Debugger: Over (n)")
        await wait_until(pilot, lambda: debugger_stopped(app, loop_line("CALL LINE")), 10)
        await pilot.press("f10")  # the default is gone
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = screen_text(app)
        assert "Condition" in text and "Exceptions" in text and "Watch" in text
        await pilot.press("escape")
        assert debugger_stopped(app, loop_line("CALL LINE"))  # f10 did nothing
        await pilot.press("f8")
        await wait_until(pilot, lambda: debugger_stopped(app, loop_line("STEP LINE")), 10)


async def test_the_debug_console_completes_evaluates_and_remembers(debuggee) -> None:
    session, _ = debuggee
    app = TetherApp(session)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await open_stopped(app, pilot, session)
        log = screen.query_one(RichLog)
        line = screen.query_one(ConsoleInput)
        await pilot.press("e")
        assert app.focused is line
        await pilot.press(*"optim", "tab")
        await wait_until(pilot, lambda: line.value == "optimizer", 10)
        await pilot.press(*".lr * 10", "enter")
        await wait_until(pilot, lambda: any(strip.text == "1.0" for strip in log.lines), 10)
        await pilot.press(*"no_such_name", "enter")
        await wait_until(pilot, lambda: any("NameError" in strip.text for strip in log.lines), 10)
        await pilot.press("up", "up")
        assert line.value == "optimizer.lr * 10"
        await pilot.press("escape", "escape")
        assert not isinstance(app.screen, DebuggerScreen)


async def test_let_go_from_the_palette_leaves_the_run_going(debuggee) -> None:
    """debugpy takes one client: "Debugger: let go" hands the run back (for VS Code), running."""
    session, _ = debuggee
    app = TetherApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_stopped(app, pilot, session)
        await pilot.press("escape")
        await run_from_palette(app, pilot, "Debugger: let go")
        debugger = session.debugger(0)
        await wait_until(pilot, lambda: debugger.view.status is DebugStatus.OFF, 10)
        assert not debugger.wanted and session.group.processes() == []
        await wait_until(pilot, lambda: any("let go" in str(n.message) for n in app._notifications), 5)
