"""LinkSupervisor.retry_now, the session's "reconnect at once" (a new job): it drops a live channel
and cuts a backoff wait short. Pure: the login refuses and the agent is a stand-in, so only the
supervisor's own state machine runs (the real link is tested against sshd in test_console_link)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tui.errors import TetherError
from tui.events import LinkChanged, LinkState
from tui.remote.link import Backoff, LinkSupervisor


class RefusingLogin:
    """A login master whose every start fails, as while a new job cannot be had yet."""

    name = "login"

    def __init__(self) -> None:
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        raise TetherError("the login host refused")

    async def stop(self) -> bool:
        return False


class LiveAgent:
    """Just enough of an AgentChannel: open until closed, and talking (no ping needed)."""

    def __init__(self) -> None:
        self._closed = asyncio.Event()
        self.last_heard = time.monotonic()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self, timeout: float = 3) -> None:
        self._closed.set()


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still false after {timeout} s"
        await asyncio.sleep(0.01)


async def test_retry_now_drops_a_live_link_then_cuts_the_backoff_short() -> None:
    events: list[LinkChanged] = []
    login = RefusingLogin()

    async def no_node() -> None:
        return None

    supervisor = LinkSupervisor(login, no_node, events.append, backoff=Backoff(first=60, maximum=60))  # type: ignore[arg-type]
    agent = LiveAgent()
    supervisor.agent = agent  # type: ignore[assignment]
    task = asyncio.create_task(supervisor.run(connected=True))
    try:
        await asyncio.sleep(0.05)
        assert not events  # up and quiet
        await supervisor.retry_now()
        assert agent.closed
        await until(lambda: login.starts == 1 and "next try in 60 s" in supervisor.state.detail)
        assert [e.state for e in events][:2] == [LinkState.LOST, LinkState.RECONNECTING]

        started = time.monotonic()
        await supervisor.retry_now()  # no channel now: the 60 s wait is what gets cut
        await until(lambda: login.starts == 2)
        assert time.monotonic() - started < 2
        assert supervisor.state.attempt == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
