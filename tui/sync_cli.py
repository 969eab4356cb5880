"""`tether sync` without the console: the route (tui.route), the engine, and a progress bar on stderr.

The route logs in (with the terminal at hand); a link supervisor of sync's own runs as a task
(no tmux layout, no run: those belong to `tether up`), and the engine syncs once (`tether sync`)
or keeps watching (`tether sync --watch`) until interrupted. With ``sync_via = "login"`` no node
is needed: the login master alone carries sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TextIO

from tui.config import Workspace
from tui.errors import TetherError
from tui.events import EventSink, LinkChanged, LinkState, Notice, Progress
from tui.remote.link import AgentOptions, LinkSupervisor, NodeResolver
from tui.remote.ssh import ControlMaster
from tui.route import Route
from tui.sync import safety
from tui.sync.engine import SyncEngine
from tui.sync.safety import workspace_path
from tui.sync.status import SyncConflict, SyncProgress, SyncStatus, clear_status
from tui.sync.target import LoginTarget, NodeTarget, SyncTarget


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def render_progress(p: SyncProgress, width: int = 24) -> str:
    """``[#####.......]  120/10000 files  12.0/150.0 MB  31.25MB/s  ETA 0:00:12``"""
    filled = int(width * p.fraction)
    text = f"[{'#' * filled}{'.' * (width - filled)}] {p.files_done}/{p.files_total} files  {_mb(p.bytes_done)}/{_mb(p.bytes_total)}"
    if p.rate:
        text += f"  {p.rate}"
    if p.eta:
        text += f"  ETA {p.eta}"
    return text


class ProgressPrinter:
    """An EventSink for the terminal: a bar redrawn in place on a tty, a line a second otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, *, quiet_links: bool = True) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0
        self._bar = False
        self._quiet_links = quiet_links

    def _line(self, text: str) -> None:
        if self._bar:
            self.stream.write("\n")
            self._bar = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: object) -> None:
        if isinstance(event, SyncProgress):
            now = time.monotonic()
            final = event.bytes_done >= event.bytes_total and event.files_done >= event.files_total
            if self.tty:
                self.stream.write("\r" + render_progress(event))
                self._bar = True
                self.stream.flush()
            elif final or now - self._last >= 1.0:
                self._line(render_progress(event))
                self._last = now
        elif isinstance(event, (SyncStatus, SyncConflict, Notice, Progress)):
            self._line(event.message)
        elif isinstance(event, LinkChanged) and not self._quiet_links:
            self._line(f"link: {event.state.value} {event.detail}".rstrip())


def node_resolver(route: Route) -> NodeResolver:
    """The node sync writes to: the configured one, or the scheduler's recorded node (never a new job)."""
    workspace = route.workspace

    async def resolve() -> ControlMaster | None:
        if workspace.connection.node_from_scheduler:
            recorded = route.recorded_allocation()
            if recorded is None or not recorded.node:
                raise TetherError(
                    f"{workspace.name} has no node yet: sync writes to the node of a running job",
                    fix='start the job with `tether up`, or set sync_via = "login" where the login host shares the nodes\' filesystem',
                )
        return route.recorded_route()  # as the console reached it: ssh, srun steps or kubectl exec

    return resolve


def sync_supervisor(route: Route, sink: EventSink, *, ping_interval: float = 2.0) -> LinkSupervisor:
    """A link supervisor for sync alone: no tmux layout, no run, no forwards (those are `tether up`'s)."""
    workspace = route.workspace
    return LinkSupervisor(
        None if route.uses_pod else route.login_master(),
        node_resolver(route),
        sink,
        agent_options=AgentOptions(workspace.run.interpreter, tuple(workspace.run.env)),
        ping_interval=ping_interval,
    )


async def until_up(supervisor: LinkSupervisor, task: asyncio.Task[None]) -> None:
    """Wait for the first connect; its error, if any, is raised here."""
    while supervisor.state.state is not LinkState.UP:
        if task.done():
            task.result()
            raise TetherError("the link supervisor ended before the link came up")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def sync_target(route: Route, sink: EventSink, *, ping_interval: float = 2.0) -> AsyncIterator[SyncTarget]:
    """The workspace's target, connected, and taken down after (the masters stay for ControlPersist)."""
    workspace = route.workspace
    if workspace.connection.sync_via == "login":
        options = AgentOptions(workspace.run.interpreter, tuple(workspace.run.env))
        yield LoginTarget(route.login_master(), options, restart_master=True)
        return
    supervisor = sync_supervisor(
        route, lambda event: sink(event) if isinstance(event, LinkChanged) else None, ping_interval=ping_interval
    )
    task = asyncio.create_task(supervisor.run())
    try:
        await until_up(supervisor, task)
        yield NodeTarget(supervisor)
    finally:
        with contextlib.suppress(Exception):
            await supervisor.detach()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def run_sync(
    workspace: Workspace,
    *,
    watch: bool,
    allow_deletes: bool,
    sink: EventSink,
    on_ready: Callable[[SyncEngine], None] = lambda engine: None,
    keep_theirs: bool = False,
) -> int:
    """One-shot or watching sync; returns the exit code. Halts raise (the CLI prints the fix).

    ``keep_theirs``: files on the node that Tether did not write, and that the sync would delete
    or replace, are moved to the root's backup folder first (``allow_deletes``: they go).
    """
    route = Route(workspace)
    await route.login()
    async with sync_target(route, sink) as target:
        engine = SyncEngine(workspace, target, sink, ws_id=route.ws_id, allow_deletes=allow_deletes)
        try:
            if watch:
                await engine.start()
                if keep_theirs and isinstance(engine.halt, safety.ForeignFiles):
                    await engine.keep_theirs()
                on_ready(engine)
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        loop.add_signal_handler(signum, stop.set)
                await stop.wait()  # ctrl-c or a kill: leave cleanly
            else:
                try:
                    await engine.sync_once()
                except safety.ForeignFiles as halt:
                    if not keep_theirs:
                        raise
                    await engine.back_up(halt.paths)
                    await engine.sync_once()
                on_ready(engine)
            return 0
        finally:
            with contextlib.suppress(Exception):
                await engine.close()
            if watch:
                clear_status(route.ws_id)


async def pull(workspace: Workspace, rel: str, sink: EventSink) -> None:
    """`tether pull PATH`: bring a file or folder written on the node back to the laptop."""
    rel = workspace_path(workspace.local_root, rel)
    route = Route(workspace)
    await route.login()
    async with sync_target(route, sink) as target:
        engine = SyncEngine(workspace, target, sink)
        try:
            await target.start()
            await engine.pull(rel)
        finally:
            with contextlib.suppress(Exception):
                await engine.close()
