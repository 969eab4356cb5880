"""Where sync writes: the node (through the link supervisor) or the login host (``sync_via="login"``).

A target offers the master rsync rides on, the agent channel small pushes go over, and up/down
transitions. The node target owns nothing: the supervisor connects and reconnects, and after a
reconnect ``supervisor.agent`` is a new channel, so it is always read from there. The login
target runs an agent of its own on the login master, because on shared-filesystem sites the node
may not exist yet (the job waits in the queue); it relaunches that agent when its channel closes,
once the login master is back (the supervisor restarts the master; headless, it restarts it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from tui.errors import TetherError
from tui.events import LinkChanged, LinkState
from tui.remote.agent_channel import AgentChannel, launch_agent
from tui.remote.link import AgentOptions, Backoff, LinkSupervisor
from tui.remote.ssh import ControlMaster

Listener = Callable[[bool, str], None]  # (up, why)


class SyncTarget(Protocol):
    name: str

    @property
    def master(self) -> ControlMaster: ...

    @property
    def agent(self) -> AgentChannel | None: ...

    def is_up(self) -> bool: ...

    async def wait_up(self) -> None: ...

    def add_listener(self, listener: Listener) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class NodeTarget:
    """The node, as the link supervisor keeps it."""

    def __init__(self, supervisor: LinkSupervisor) -> None:
        self.supervisor = supervisor
        self.name = "node"

    @property
    def master(self) -> ControlMaster:
        return self.supervisor.node_master

    @property
    def agent(self) -> AgentChannel | None:
        return self.supervisor.agent

    def is_up(self) -> bool:
        agent = self.supervisor.agent
        return self.supervisor.state.state is LinkState.UP and agent is not None and not agent.closed

    async def wait_up(self) -> None:
        while not self.is_up():
            try:
                await self.supervisor.wait_up(timeout=1.0)
            except asyncio.TimeoutError:
                continue
            if not self.is_up():
                await asyncio.sleep(0.05)  # up was reported, but the old channel is still closing

    def add_listener(self, listener: Listener) -> None:
        def on_change(event: LinkChanged) -> None:
            listener(event.state is LinkState.UP, event.detail or event.state.value)

        self.supervisor.add_listener(on_change)

    async def start(self) -> None:
        await self.wait_up()

    async def close(self) -> None:
        """The supervisor owns the channel."""


class LoginTarget:
    """The login host with an agent of sync's own."""

    def __init__(
        self,
        login: ControlMaster,
        agent_options: AgentOptions = AgentOptions(),
        *,
        restart_master: bool = False,
        backoff: Backoff = Backoff(first=0.5, maximum=10.0),
    ) -> None:
        self.login = login
        self.name = "login"
        self._options = agent_options
        self._restart_master = restart_master
        self._backoff = backoff
        self._agent: AgentChannel | None = None
        self._listeners: list[Listener] = []
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def master(self) -> ControlMaster:
        return self.login

    @property
    def agent(self) -> AgentChannel | None:
        return self._agent

    def is_up(self) -> bool:
        return self._agent is not None and not self._agent.closed

    async def wait_up(self) -> None:
        while not self.is_up():
            await self._up.wait()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _tell(self, up: bool, why: str) -> None:
        (self._up.set if up else self._up.clear)()
        for listener in self._listeners:
            listener(up, why)

    async def _connect(self) -> None:
        if self._restart_master:
            await self.login.start()
        elif await self.login.pid() is None:
            raise TetherError(f"the connection to {self.login.name} is down")
        launch = await launch_agent(
            self.login, interpreter=self._options.interpreter, env_lines=self._options.env_lines
        )
        self._agent = launch.channel

    async def start(self) -> None:
        await self._connect()
        self._tell(True, "up")
        self._task = asyncio.create_task(self._keep())

    async def _keep(self) -> None:
        while True:
            assert self._agent is not None
            await self._agent.wait_closed()  # it swallows a cancel: hence the _closing flag
            if self._closing:
                return
            self._tell(False, "the channel to the login host closed")
            attempt = 0
            while not self._closing:
                attempt += 1
                try:
                    await self._connect()
                    break
                except (TetherError, OSError, asyncio.TimeoutError):
                    await asyncio.sleep(self._backoff.delay(attempt))
            self._tell(True, "up")

    async def close(self) -> None:
        self._closing = True
        if self._agent is not None:
            await self._agent.close(timeout=2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
