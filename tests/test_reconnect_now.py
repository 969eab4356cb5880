"""The "reconnect now" key and palette command: shown only while the link waits to reconnect, it
cuts the backoff wait short (the session's reconnect_now). The console part with a scripted
session; the supervisor part with a refusing login (test_link_retry's stand-ins)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from app_fakes import ScriptedSession
from console_helpers import screen_text, wait_until
from test_link_retry import LiveAgent, RefusingLogin, until
from textual.command import CommandList

from tui.app import TetherApp
from tui.events import LinkChanged, LinkState
from tui.remote.link import Backoff, LinkSupervisor

WIDE = (160, 30)
WAITING = LinkChanged(LinkState.RECONNECTING, detail="cannot reach compute01; next try in 30 s", attempt=6)


class ReconnectingSession(ScriptedSession):
    def __init__(self) -> None:
        super().__init__()
        self.reconnect_calls = 0

    async def reconnect_now(self) -> None:
        self.reconnect_calls += 1


async def test_the_reconnect_key_shows_while_waiting_and_cuts_the_wait() -> None:
    session = ReconnectingSession()
    app = TetherApp(session)
    async with app.run_test(size=WIDE) as pilot:
        await session.wait_running()
        session.emit(LinkChanged(LinkState.UP, rtt_ms=2))
        await pilot.pause()
        assert app.check_action("reconnect_now", ()) is False
        assert "Reconnect now" not in screen_text(app)
        session.emit(WAITING)
        await wait_until(pilot, lambda: "Reconnect now" in screen_text(app))
        assert app.check_action("reconnect_now", ()) is True
        await pilot.press("R")
        await wait_until(pilot, lambda: session.reconnect_calls == 1)

        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Reconnect now")

        def found() -> bool:
            hits = app.screen.query(CommandList)
            return (
                bool(hits)
                and hits.first().option_count > 0
                and str(hits.first().get_option_at_index(0).prompt).startswith("Reconnect now")
            )

        await wait_until(pilot, found)
        await pilot.press("enter")
        await wait_until(pilot, lambda: session.reconnect_calls == 2)

        session.emit(LinkChanged(LinkState.UP, rtt_ms=2))
        await wait_until(pilot, lambda: "Reconnect now" not in screen_text(app))


async def test_reconnect_now_cuts_the_backoff_and_leaves_a_live_link_alone() -> None:
    events: list[LinkChanged] = []
    login = RefusingLogin()

    async def no_node() -> None:
        return None

    supervisor = LinkSupervisor(login, no_node, events.append, backoff=Backoff(first=60, maximum=60))  # type: ignore[arg-type]
    agent = LiveAgent()
    supervisor.agent = agent  # type: ignore[assignment]
    supervisor.state = LinkChanged(LinkState.UP, rtt_ms=1)
    task = asyncio.create_task(supervisor.run(connected=True))
    try:
        assert supervisor.reconnect_now() is False  # up: nothing to cut short, the link is kept
        await asyncio.sleep(0.05)
        assert not agent.closed
        await agent.close()
        await until(lambda: login.starts == 1 and "next try in 60 s" in supervisor.state.detail)
        started = time.monotonic()
        assert supervisor.reconnect_now() is True
        await until(lambda: login.starts == 2)
        assert time.monotonic() - started < 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
