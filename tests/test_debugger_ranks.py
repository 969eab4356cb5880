"""A launcher's workers in the debugger (issue 13, done-when 2): the launcher is a stand-in for
torchrun (tests/fixtures/launcher_standin.py: it starts 4 workers as torchrun does, with RANK set),
run under a real debugpy on 127.0.0.1, which follows the subprocesses. Every worker appears as a
rank, the breakpoint hits in each, and "all together" stops and continues them all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console_helpers import screen_text, wait_until
from debugger_helpers import DebuggingSession
from test_dap import Debuggee, free_port
from textual.pilot import Pilot

from tui.app import TetherApp
from tui.app.screens.debugger import DebuggerScreen
from tui.debug.breakpoints import DebugMemory
from tui.events import DebugStatus, DebugView

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LAUNCHER = FIXTURES / "launcher_standin.py"
WORKER = FIXTURES / "launcher_worker.py"
WORKER_LINE = next(n for n, text in enumerate(WORKER.read_text().splitlines(), 1) if "# WORKER LINE" in text)
WORKERS = 4


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[DebuggingSession]:
    port = free_port()
    run = Debuggee(port, tmp_path / "out", LAUNCHER, (f"--nproc_per_node={WORKERS}", str(WORKER)))
    memory = DebugMemory(tmp_path / "debug.json")
    memory.toggle(WORKER.name, WORKER_LINE)
    try:
        yield DebuggingSession(port, memory, FIXTURES)
    finally:
        run.kill()  # the launcher's process group: its workers too
        # (debugpy's adapter is found and ended by its port, as for every Debuggee)


def workers(session: DebuggingSession) -> list[DebugView]:
    return [d.view for d in session.group.processes() if d.process]


def all_stopped(session: DebuggingSession, reasons: tuple[str, ...] = ("breakpoint",)) -> bool:
    views = workers(session)
    return len(views) == WORKERS and all(
        v.status is DebugStatus.STOPPED and v.stop is not None and v.stop.reason in reasons for v in views
    )


def all_running(session: DebuggingSession) -> bool:
    views = workers(session)
    return len(views) == WORKERS and all(v.status is DebugStatus.RUNNING for v in views)


async def test_every_worker_is_a_rank_and_stops_and_goes_all_together(launch: DebuggingSession) -> None:
    session = launch
    app = TetherApp(session)
    async with app.run_test(size=(160, 50)) as pilot:
        await session.wait_running()
        await pilot.press("b")
        # the breakpoint hits in each worker; each is known by the RANK the launcher gave it
        await wait_until(pilot, lambda: all_stopped(session), 60)
        labels = sorted(v.label.split(" (")[0] for v in workers(session))
        assert labels == [f"rank {r}" for r in range(WORKERS)]
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        await wait_until(pilot, lambda: all(f"rank {r} (pid" in screen_text(app) for r in range(WORKERS)), 10)
        assert f"{WORKER.name}:{WORKER_LINE}" in screen_text(app)

        # "all together": F5 continues every worker; the first to hit the breakpoint pauses the rest
        await pilot.press("ctrl+a")
        await pilot.press("f5")
        await wait_until(pilot, lambda: all_running(session) or all_stopped(session, ("breakpoint", "pause")), 20)
        await wait_until(pilot, lambda: all_stopped(session, ("breakpoint", "pause")), 20)
        assert "all processes together" in screen_text(app)

        # the breakpoint off, F5: all run; F6: all pause
        await remove_breakpoint(pilot, app)
        await pilot.press("f5")
        await wait_until(pilot, lambda: all_running(session), 20)
        await pilot.press("f6")
        await wait_until(pilot, lambda: all_stopped(session, ("pause",)), 20)
        await pilot.press("f5")
        try:
            await wait_until(pilot, lambda: all_running(session), 20)
        except AssertionError:
            raise AssertionError(
                [(v.label, v.status, v.stop.reason if v.stop else "") for v in workers(session)]
            ) from None


async def remove_breakpoint(pilot: Pilot, app: TetherApp) -> None:
    """F9 on the worker's line, which the screen shows where the worker stopped."""
    screen = app.screen
    assert isinstance(screen, DebuggerScreen)
    source = screen.query_one("#debug-source")
    source.focus()
    await pilot.press("home", *["down"] * (WORKER_LINE - 1), "f9")
    await wait_until(pilot, lambda: not screen.debugger.memory.files(), 5)
