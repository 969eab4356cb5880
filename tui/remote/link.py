"""The link supervisor: the one owner of the connection's state for a workspace.

It brings the link up (login master, node master, agent channel), measures the round trip with a
ping over the agent's channel, notices a drop (the channel closes, or a ping goes unanswered) and
reconnects with backoff. Nothing else reconnects on its own: sync, forwards and the scheduler
listen to ``LinkChanged`` and pause on "lost", resume on "up".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tui.errors import TetherError
from tui.events import EventSink, LinkChanged, LinkState
from tui.node.protocol import Message
from tui.remote.agent_channel import AgentChannel, AgentError, launch_agent
from tui.remote.ssh import ControlMaster


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnect attempts: quick at first, then at most ``maximum`` seconds."""

    first: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.first * self.factor ** max(0, attempt - 1))


@dataclass(frozen=True)
class AgentOptions:
    interpreter: str = "python3"
    env_lines: tuple[str, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()  # for the agent alone, e.g. its workspace


RTT_REFRESH_S = 30.0
# A silent link (packets dropped, no RST) is "lost" once nothing has come from the agent for
# 2 round trips + this long; keepalive pings go out whenever the channel is quiet, so a healthy
# link is never that silent.
SILENCE_GRACE_S = 1.0
CHECK_STEP_S = 0.1  # how often the watch looks at the silence
LOOP_LAG_S = 0.3  # the laptop itself stalled this long: let the channel's reader catch up first
LOGIN_CHECK_S = 5.0  # a login host that answers `true` within this long is healthy

NodeResolver = Callable[[], Awaitable["ControlMaster | None"]]


class LinkSupervisor:
    """Connects, watches and reconnects the chain laptop -> login -> node -> agent."""

    def __init__(
        self,
        login: ControlMaster | None,
        resolve_node: NodeResolver,
        sink: EventSink,
        *,
        agent_options: AgentOptions = AgentOptions(),
        ping_interval: float = 2.0,
        ping_timeout: float = 10.0,
        backoff: Backoff = Backoff(),
        on_agent_event: Callable[[Message], None] = lambda message: None,
    ) -> None:
        self.login = login
        self._resolve_node = resolve_node
        self._sink = sink
        self._agent_options = agent_options
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._backoff = backoff
        self._on_agent_event = on_agent_event
        self._listeners: list[Callable[[LinkChanged], None]] = []
        self._up = asyncio.Event()
        self.node: ControlMaster | None = None
        self.agent: AgentChannel | None = None
        self.state = LinkChanged(LinkState.CLOSED)
        self.agent_shipped = False
        self._task: asyncio.Task[None] | None = None
        self._retry = asyncio.Event()  # cuts a backoff wait short (retry_now)
        self.srtt: float | None = None  # smoothed round trip, seconds
        self._silent = False  # the last drop was a silent link, not a closed channel

    def silence_limit(self) -> float:
        """How long the agent may say nothing before the link counts as lost: 2 RTT + 1 s."""
        return 2 * (self.srtt if self.srtt is not None else 0.1) + SILENCE_GRACE_S

    def _keepalive_after(self) -> float:
        """Quiet this long, a keepalive ping goes out: a quarter of the silence limit, so a healthy
        link answers well within it (and never more often than the limit needs)."""
        return min(self._ping_interval, self.silence_limit() / 4)

    def _measured(self, rtt_ms: float) -> None:
        rtt = rtt_ms / 1000
        self.srtt = rtt if self.srtt is None else 0.875 * self.srtt + 0.125 * rtt

    # -- observers ---------------------------------------------------------------------------
    def add_listener(self, listener: Callable[[LinkChanged], None]) -> None:
        """Called when the state changes, not on every round-trip update (sync and forwards pause and resume on these)."""
        self._listeners.append(listener)

    async def wait_up(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._up.wait(), timeout)

    @property
    def node_master(self) -> ControlMaster:
        """The master that reaches the node (the login master when the node is the login host)."""
        master = self.node or self.login
        if master is None:
            raise AgentError("the node is not connected right now")
        return master

    def report(self, state: LinkState, *, detail: str = "") -> None:
        """Let the session report a state only it sees (ssh waiting on a password prompt)."""
        self._set(state, detail=detail)

    def _set(self, state: LinkState, *, rtt_ms: float | None = None, detail: str = "", attempt: int = 0) -> None:
        moved = state is not self.state.state
        self.state = LinkChanged(state, rtt_ms, detail, attempt)
        if state is LinkState.UP:
            self._up.set()
        else:
            self._up.clear()
        self._sink(self.state)
        if moved:
            for listener in self._listeners:
                listener(self.state)

    def reconnect_now(self) -> bool:
        """The user's "reconnect now": cut the backoff wait short. A live link is left alone.
        True when a reconnect was waiting."""
        if self.state.state is not LinkState.RECONNECTING:
            return False
        self._retry.set()
        return True

    async def retry_now(self) -> None:
        """Reconnect at once, e.g. because the session wants a new node.

        A live channel is closed, which the watch loop takes for a drop and reconnects after as
        usual; while reconnecting, the backoff wait before the next attempt is cut short.
        """
        agent = self.agent
        if agent is not None and not agent.closed:
            await agent.close(timeout=1)
        else:
            self._retry.set()

    # -- connecting --------------------------------------------------------------------------
    async def connect(self) -> None:
        """Bring every hop and the agent up once; raises TetherError with a fix on failure."""
        if self.login is not None:  # None: the node is reached without a login host (a pod)
            await self.login.start()
        self.node = await self._resolve_node()
        if self.node is not None:
            await self.node.start()
        launch = await launch_agent(
            self.node_master,
            interpreter=self._agent_options.interpreter,
            env_lines=self._agent_options.env_lines,
            environment=self._agent_options.environment,
            on_event=self._on_agent_event,
        )
        self.agent = launch.channel
        self.agent_shipped = self.agent_shipped or launch.shipped
        rtt = await self.agent.ping(self._ping_timeout)
        self._measured(rtt)
        self._set(LinkState.UP, rtt_ms=rtt)

    async def run(self, *, connected: bool = False) -> None:
        """Supervise until detached, shut down or cancelled. The first connect's failure is raised."""
        self._task = asyncio.current_task()
        if not connected:
            self._set(LinkState.CONNECTING)
            await self.connect()
        while True:
            self._silent = False
            reason = await self._watch()
            self._set(LinkState.LOST, detail=reason)  # at once: finding the silent hop takes a moment
            if self._silent:
                await self._stop_silent_hops()
            await self._drop_agent()
            await self._reconnect()

    async def _watch(self) -> str:
        """Watch the link until it fails; returns why it failed.

        Any line from the agent proves the link alive; when the channel has been quiet for a
        moment a keepalive ping goes out, so a silent outage (packets dropped, no RST) is told as
        lost within 2 round trips + 1 s instead of when TCP gives up. The round trip shown is
        refreshed every ``ping_interval`` at most. While the agent works on a request (it answers
        in order) silence proves less: then only ``ping_timeout`` of it counts as lost.
        """
        agent = self.agent
        assert agent is not None
        ping: asyncio.Task[float] | None = None
        last_ping = last_shown = time.monotonic()
        expected = last_ping + CHECK_STEP_S
        try:
            while True:
                closed = asyncio.ensure_future(agent.wait_closed())
                try:
                    await asyncio.wait_for(asyncio.shield(closed), CHECK_STEP_S)
                except asyncio.TimeoutError:
                    pass
                finally:
                    closed.cancel()
                if agent.closed:
                    return "the connection closed"
                now = time.monotonic()
                late, expected = now - expected, now + CHECK_STEP_S
                if late > LOOP_LAG_S:
                    continue  # the laptop stalled, not the link: read what arrived meanwhile first
                if ping is not None and ping.done():
                    failure = self._pong(ping, now - last_shown >= self._ping_interval)
                    if failure:
                        return failure
                    if now - last_shown >= self._ping_interval:
                        last_shown = now
                    ping = None
                silent = now - agent.last_heard
                limit = self._ping_timeout if getattr(agent, "busy", False) else self.silence_limit()
                # One check step early: the next look would come after the limit.
                if silent + CHECK_STEP_S > min(limit, self._ping_timeout):
                    self._silent = True
                    return f"no answer for {silent:.1f} s"
                due = silent >= self._keepalive_after() or now - last_ping >= RTT_REFRESH_S
                if ping is None and due:
                    last_ping = now
                    ping = asyncio.ensure_future(agent.ping(self._ping_timeout))
        finally:
            if ping is not None:
                ping.cancel()
                if ping.done() and not ping.cancelled():
                    ping.exception()  # retrieved: a ping failing with the channel is no news

    def _pong(self, ping: asyncio.Task[float], show: bool) -> str:
        """Take a finished keepalive: the round trip (shown when ``show``), or why it failed ("")."""
        if ping.cancelled():
            return ""
        error = ping.exception()
        if isinstance(error, asyncio.TimeoutError):
            return ""  # the silence check decides
        if isinstance(error, AgentError):
            return str(error)
        if error is not None:
            raise error
        rtt = ping.result()
        self._measured(rtt)
        if show:
            self._set(LinkState.UP, rtt_ms=rtt)
        return ""

    async def _stop_silent_hops(self) -> None:
        """A silent link: the masters may hang on a dead TCP connection, so start afresh. Only the
        hops that are silent, though: a login master that still answers is kept, since a new login
        may ask the user for a password or one-time code again."""
        if self.node is not None and self.login is not None and await self._answers(self.login):
            with contextlib.suppress(Exception):
                await self.node.stop()
            return
        await self._stop_masters()

    async def _answers(self, master: ControlMaster) -> bool:
        try:
            result = await master.run("true", timeout=LOGIN_CHECK_S)
        except (asyncio.TimeoutError, OSError, TetherError):
            return False
        return result.ok

    async def _reconnect(self) -> None:
        attempt = 0
        self._retry.clear()  # a retry asked for before this drop is this reconnect
        while True:
            attempt += 1
            self._set(LinkState.RECONNECTING, attempt=attempt)
            try:
                await self.connect()
                return
            except (TetherError, OSError, asyncio.TimeoutError) as exc:
                delay = self._backoff.delay(attempt)
                self._set(LinkState.RECONNECTING, attempt=attempt, detail=f"{exc}; next try in {delay:.0f} s")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._retry.wait(), delay)
                self._retry.clear()

    # -- leaving -----------------------------------------------------------------------------
    async def _drop_agent(self) -> None:
        if self.agent is not None:
            with contextlib.suppress(Exception):
                await self.agent.close(timeout=1)
            self.agent = None

    async def _stop_masters(self) -> None:
        for master in (self.node, self.login):
            if master is not None:
                with contextlib.suppress(Exception):
                    await master.stop()

    async def _stop_supervising(self) -> None:
        """Stop the watch loop first, so our own closing of the channel is not taken for a drop."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def detach(self) -> None:
        """End the agent channel and leave the masters up (ControlPersist keeps them a while)."""
        await self._stop_supervising()
        await self._drop_agent()
        self._set(LinkState.CLOSED, detail="detached")

    async def shutdown(self) -> None:
        """End the agent channel and close the masters."""
        await self._stop_supervising()
        await self._drop_agent()
        await self._stop_masters()
        self._set(LinkState.CLOSED, detail="closed")
