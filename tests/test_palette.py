"""Every action that has a key is in the command palette too (issue 16, done-when 3), and the two
ways do the same: pressed, or picked from the palette (typed, as a user does).

UI only: the scripted session of the other console tests, given every optional action (a debugger,
a job that ended, a link that waits to reconnect, a sync halt) so that each one is offered.
"""

from __future__ import annotations

from app_fakes import ScriptedSession
from console_helpers import run_from_palette, wait_until
from test_sync_halt_console import DELETES

from tui.app import TetherApp
from tui.app.palette import TetherCommands
from tui.app.screens import HelpScreen, LogsScreen, SyncHaltScreen
from tui.events import AllocationChanged, JobState, LinkChanged, LinkState, OutputPage

SIZE = (120, 36)


class EverythingSession(ScriptedSession):
    """A session offering every action: each call is recorded."""

    def __init__(self) -> None:
        super().__init__(
            title="mnist",
            initial_events=[
                AllocationChanged("7", "compute01", None, JobState.ENDED),
                LinkChanged(LinkState.RECONNECTING, attempt=2),
            ],
        )

    def debugger(self, rank: int = 0) -> object:  # the palette offers "Debugger: open" for it
        raise AssertionError("not opened here")

    async def reconnect_now(self) -> None:
        self.calls.append("reconnect_now")

    async def restart_run(self) -> None:
        self.calls.append("restart_run")

    async def stop_run(self) -> None:
        self.calls.append("stop_run")

    async def page_output(self, before: int | None, count: int) -> OutputPage:
        return OutputPage(("line one",), 0, 9)


async def test_every_action_with_a_key_is_in_the_palette() -> None:
    session = EverythingSession()
    app = TetherApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        session.emit(DELETES)  # a sync halt: its key (s) and its palette entries
        await wait_until(pilot, lambda: app.sync_halt is not None and not isinstance(app.screen, SyncHaltScreen))
        offered = {getattr(command, "__name__", "") for _, _, command in TetherCommands(app.screen)._commands()}
        keyed = {binding.action for binding in TetherApp.BINDINGS if getattr(binding, "id", None)}
        keyed.discard("command_palette")  # the palette itself
        missing = sorted(action for action in keyed if f"action_{action}" not in offered)
        assert missing == [], f"actions with a key but not in the palette: {missing}"


async def test_a_key_and_its_palette_entry_do_the_same() -> None:
    for way in ("key", "palette"):
        session = EverythingSession()
        app = TetherApp(session)
        async with app.run_test(size=SIZE) as pilot:
            await session.wait_running()

            async def do(key: str, entry: str) -> None:
                if way == "key":
                    await pilot.press(key)
                    await pilot.pause()
                else:
                    await run_from_palette(app, pilot, entry)

            await do("question_mark", "Help: keys")
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
            await pilot.press("escape")
            await do("l", "Logs")
            await wait_until(pilot, lambda: isinstance(app.screen, LogsScreen))
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, LogsScreen))
            before = app.theme
            await do("t", "Switch theme: the next one")
            await wait_until(pilot, lambda: app.theme != before)
            await do("r", "Restart the run")
            await do("x", "Stop the run")
            await do("R", "Reconnect now")
            await wait_until(pilot, lambda: session.calls == ["restart_run", "stop_run", "reconnect_now"])
