"""Snapshot tests of the console at a fixed 100x30 terminal.

The SVGs live in ``tests/__snapshots__/test_snapshots/``. After an intended change of look, review
and regenerate them with:

    python3 -m pytest tests/test_snapshots.py --snapshot-update

Nothing time-dependent is on screen (no clock, no timestamps, rtt given by the script), so the
snapshots are stable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app_fakes import ScriptedSession
from textual.pilot import Pilot

from tui.app import TetherApp
from tui.events import LinkChanged, LinkState, Notice, Progress

SIZE = (100, 30)


def linked_console(theme_name: str) -> tuple[TetherApp, Callable[[Pilot], Awaitable[None]]]:
    """A console whose link is up, with a few lines in the log, and a hook that waits for them."""
    session = ScriptedSession(
        title="mnist-ddp",
        chain=("login", "compute01"),
        initial_events=[
            LinkChanged(LinkState.CONNECTING, detail="login.example.org"),
            Progress("connect", "authenticated at login.example.org", 1.0),
            LinkChanged(LinkState.UP, rtt_ms=12.4),
            Notice("Node compute01 is ready"),
            Progress("sync", "first sync", 0.42),
            Notice("GPU 1 is in use by another job", level="warning"),
            Notice("tensorboard port 6006 is taken on the laptop", level="error"),
        ],
    )

    async def settle(pilot: Pilot) -> None:
        await session.wait_running()
        await pilot.pause()

    return TetherApp(session, theme_name=theme_name), settle


def test_console_link_up_dark(snap_compare) -> None:
    app, settle = linked_console("dark")
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_console_link_up_light(snap_compare) -> None:
    app, settle = linked_console("light")
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_help_screen(snap_compare) -> None:
    app, settle = linked_console("dark")

    async def open_help(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_help)
