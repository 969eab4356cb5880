"""The console's debugger for one rank: attached while the user wants it, again after every restart.

Textual-free. ``Debugger`` keeps a DAP session to the rank's debugpy through a ``Connector`` (the
session gives one that rides the agent's channel, reachable by no one else), attaches with the
user's breakpoints and exception filters from ``DebugMemory``, and after a stop fetches what the
screen shows first (the stack, the top frame's locals) in one go. When the adapter goes away (a
restart with ``r``, a crash, a restart after sync) it connects again with a short backoff and sends
the breakpoints again, so the user never sets them twice. Every change is a ``DebugView``; output
and logpoints are ``DebugOutput``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.dap_model import (
    ArrayStats,
    ArraySummary,
    Breakpoint,
    Completion,
    DapEvent,
    EvalResult,
    Scope,
    SourceBreakpoint,
    StackFrame,
    Variable,
)
from tui.debug.breakpoints import DebugMemory, PathMap
from tui.debug.dap import DapClient, DapError
from tui.debug.values import parse_stats, parse_summary, stats_expression, summary_expression
from tui.events import DebugOutput, DebugStatus, DebugView, Frame, Stop
from tui.remote.link import Backoff

log = logging.getLogger(__name__)

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Connector = Callable[[], Awaitable[Streams]]
Emit = Callable[[object], None]
# A subprocess the debuggee started under debugpy (a launcher's worker): its attach arguments (the
# body of debugpy's ``debugpyAttach`` event, passed on whole: tui/debug/ranks.py takes it so).
ChildCallback = Callable[["Debugger", dict[str, Any]], None]
StopRead = tuple[list[StackFrame], int, tuple[Variable, ...]]  # frames, the top frame's locals reference, locals

STACK_LEVELS = 30
LOCALS_PAGE = 100  # variables fetched per page; more on request
CONNECT_TIMEOUT = 5.0
# A restart brings debugpy back within tens of ms (the loop's standby: tui/node/standby.py), or
# about half a second without one: try soon and often at first (each try is one small relay.open on
# the link), then, for a run stopped for good, every 2 s.
RECONNECT = Backoff(first=0.02, factor=2.0, maximum=0.25)
QUICK_TRIES = 40  # ~10 s of quick tries
IDLE_RETRY_S = 2.0


class Debugger:
    """One process's debug session as the console sees it: a rank, or (``config`` given) a
    subprocess of one, which debugpy holds until a client attaches to it: so the console attaches
    to every subprocess it is told of (``on_child``), or a launcher's workers would wait forever."""

    def __init__(
        self,
        memory: DebugMemory,
        local_root: Path,
        remote_root: Callable[[], str],
        connect: Connector,
        emit: Emit,
        *,
        rank: int = 0,
        config: Mapping[str, object] | None = None,
        on_child: ChildCallback | None = None,
        stops_prefetched: bool = False,
    ) -> None:
        self.memory = memory
        self.rank = rank
        self.config = config  # a subprocess's attach arguments; None: the rank's own process
        process = config.get("subProcessId", 0) if config else 0
        self.process = int(process) if isinstance(process, (int, str)) else 0
        self.label = f"rank {rank}" if config is None else f"pid {self.process} of rank {rank}"
        self._on_child = on_child
        self._prefetch = stops_prefetched  # the stream's node end answers each stop (tui.node.dapstorm)
        self._resending: set[asyncio.Task[None]] = set()
        self.local_root = local_root.resolve()
        self._remote_root = remote_root  # read anew: the node's root is known once the agent said it
        self._connect = connect
        self._emit = emit
        self._client: DapClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._view = DebugView(rank, DebugStatus.OFF, process=self.process, label=self.label)
        self._verified: dict[tuple[str, int], bool] = {}
        self._attaches = 0

    # -- what it shows --------------------------------------------------------------------------

    @property
    def view(self) -> DebugView:
        return self._view

    @property
    def client(self) -> DapClient | None:
        """The live DAP session (None while not attached): for the link-cost figures."""
        return self._client

    @property
    def wanted(self) -> bool:
        return self._task is not None and not self._task.done()

    def _paths(self) -> PathMap | None:
        remote = self._remote_root()
        return PathMap(self.local_root, remote) if remote else None

    def local_path(self, remote: str) -> Path | None:
        paths = self._paths()
        return paths.to_local(remote) if paths else None

    def relative(self, local: Path) -> str:
        """``local`` as the memory keys it; ValueError outside the workspace (no copy on the node)."""
        return local.resolve().relative_to(self.local_root).as_posix()

    def _publish(self, status: DebugStatus, detail: str = "", stop: Stop | None = None) -> None:
        verified = tuple(sorted(key for key, ok in self._verified.items() if ok))
        self._view = DebugView(
            self.rank, status, detail, stop, verified, self._attaches, process=self.process, label=self.label
        )
        self._emit(self._view)

    def _republish(self) -> None:
        """The same state again, with what changed beside it (the label, the breakpoints placed)."""
        self._publish(self._view.status, self._view.detail, self._view.stop)

    # -- attach, and again after each restart ---------------------------------------------------

    def start(self) -> None:
        """Attach now and after every restart, until ``stop``."""
        if not self.wanted:
            self.memory.listen(self._memory_changed)
            self._task = asyncio.get_running_loop().create_task(self._keep_attached())

    def _memory_changed(self, what: str) -> None:
        """Another process's debugger changed the shared breakpoints: this session gets them too."""
        if self._client is None or self._client.closed:
            return  # the next attach sends them all
        send = self._send_filters() if what == "" else self._send_file(what)
        task = asyncio.get_running_loop().create_task(quietly(send))
        self._resending.add(task)
        task.add_done_callback(self._resending.discard)

    async def _send_filters(self) -> None:
        if self._client is not None and not self._client.closed:
            await self._client.set_exception_breakpoints(list(self.memory.exception_filters))

    async def stop(self) -> None:
        """Let go (VS Code may attach then); the run goes on."""
        task, self._task = self._task, None
        self.memory.unlisten(self._memory_changed)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._drop_client(disconnect=True)
        self._publish(DebugStatus.OFF, "detached: the run goes on")

    async def _keep_attached(self) -> None:
        attempt = 0
        while True:
            self._publish(DebugStatus.CONNECTING if attempt == 0 else DebugStatus.WAITING, self._waiting_text(attempt))
            try:
                client = await self._open()
            except (DapError, OSError) as exc:
                attempt += 1
                log.debug("rank %d: no adapter yet (%s)", self.rank, exc)
                await asyncio.sleep(RECONNECT.delay(attempt) if attempt < QUICK_TRIES else IDLE_RETRY_S)
                continue
            attempt = 0
            held_elsewhere = False
            try:
                await self._configure(client)
                self._attaches += 1
                if self._view.status is DebugStatus.STOPPED:  # a breakpoint hit while attaching
                    self._republish()
                else:
                    self._publish(DebugStatus.RUNNING, "attached")
                if self.config is not None:
                    await self._name_worker(client)
                await client.wait_closed()
            except DapError as exc:
                # debugpy takes one client per process: "Server[pid=N] is already being debugged."
                held_elsewhere = "already being debugged" in exc.message
                log.debug("%s: session ended (%s)", self.label, exc)
            finally:
                await self._drop_client(disconnect=False)
            self._verified.clear()
            if self.config is not None:  # a subprocess that ended is gone: nothing comes back on its id
                self.memory.unlisten(self._memory_changed)
                self._publish(DebugStatus.OFF, "ended")
                return
            attempt = 1
            if held_elsewhere:
                self._publish(
                    DebugStatus.WAITING,
                    f"another debugger (VS Code?) holds {self.label}: the console attaches once it "
                    "detaches (or after r, before it)",
                )
                await asyncio.sleep(IDLE_RETRY_S)
                attempt = QUICK_TRIES  # keep that word on screen until the next try

    async def _name_worker(self, client: DapClient) -> None:
        """A launcher's worker is known by the RANK its launcher gave it (torchrun, accelerate and
        deepspeed all set it): asked once, in the running process, a few bytes."""
        with contextlib.suppress(DapError):
            result = await client.evaluate("__import__('os').environ.get('RANK', '')", context="repl")
            rank = result.result.strip("'\"")
            if rank.isdigit():
                self.label = f"rank {rank} (pid {self.process})"
                self._republish()

    def _waiting_text(self, attempt: int) -> str:
        if attempt >= QUICK_TRIES and "another debugger" in self._view.detail:
            return self._view.detail
        if attempt == 0:
            return f"attaching to {self.label}…"
        return f"waiting for {self.label}'s debuggee (it restarts, or is stopped: r starts it)"

    async def _open(self) -> DapClient:
        reader, writer = await asyncio.wait_for(self._connect(), CONNECT_TIMEOUT)
        client = DapClient(reader, writer, address=f"rank {self.rank}'s debugger", on_event=self._on_event)
        try:
            await client.initialize(timeout=CONNECT_TIMEOUT)
        except BaseException:
            await client.close()
            raise
        return client

    async def _configure(self, client: DapClient) -> None:
        self._client = client
        accepted = await client.attach(
            self._remote_breakpoints(),
            exception_filters=self.memory.exception_filters,
            config=self.config,
            timeout=CONNECT_TIMEOUT,
        )
        for remote, placed in accepted.items():
            local = self.local_path(remote)
            if local is not None:
                self._note_placed(self.relative(local), placed)

    def _remote_breakpoints(self) -> dict[str, list[SourceBreakpoint]]:
        paths = self._paths()
        if paths is None:
            return {}
        return {paths.to_remote(self.local_root / rel): bps for rel, bps in self.memory.all().items()}

    def _note_placed(self, relative: str, placed: dict[int, Breakpoint]) -> None:
        for line, bp in placed.items():
            if bp.verified and bp.line and bp.line != line:
                self.memory.move(relative, line, bp.line)  # the adapter's line is where it will stop
                line = bp.line
            self._verified[(relative, line)] = bp.verified

    async def _drop_client(self, *, disconnect: bool) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if disconnect:
            with contextlib.suppress(DapError):
                await client.disconnect(timeout=2.0)
        await client.close()

    # -- events -------------------------------------------------------------------------------

    def _on_event(self, event: DapEvent) -> None:
        if event.name == "stopped":
            asyncio.get_running_loop().create_task(self._stopped(event))
        elif event.name == "continued":
            self._publish(DebugStatus.RUNNING, "running")
        elif event.name == "output":
            text = str(event.body.get("output", ""))
            category = str(event.body.get("category", "console"))
            if text and category != "telemetry":
                self._emit(DebugOutput(self.rank, category, text, self.label))
        elif event.name == "debugpyAttach" and self._on_child is not None:
            self._on_child(self, dict(event.body))
        elif event.name in ("terminated", "exited"):
            code = event.body.get("exitCode")
            detail = f"the debuggee exited with code {code}" if code is not None else "the debuggee ended"
            self._publish(DebugStatus.WAITING, detail)

    async def _stopped(self, event: DapEvent) -> None:
        client = self._client
        if client is None:
            return
        reason = str(event.body.get("reason", ""))
        description = str(event.body.get("text") or event.body.get("description") or "")
        try:
            thread_id = event.body.get("threadId")
            if thread_id is None:
                threads = await client.threads()
                thread_id = threads[0].id if threads else 0
            read = await self._prefetched_stop(client, int(thread_id)) if self._prefetch else None
            if read is None:
                read = await self._ask_stop(client, int(thread_id))
        except DapError as exc:
            log.debug("%s: could not read the stop (%s)", self.label, exc)
            return
        frames, reference, variables = read
        stop = Stop(
            int(thread_id),
            reason,
            tuple(Frame(f, self.local_path(f.path)) for f in frames),
            reference,
            variables,
            description,
        )
        self._publish(DebugStatus.STOPPED, f"stopped: {reason}", stop)

    async def _ask_stop(self, client: DapClient, thread_id: int) -> StopRead:
        """The stack, then the top frame's scopes, then its locals: three round trips."""
        frames = await client.stack_trace(thread_id, levels=STACK_LEVELS)
        if not frames:
            return [], 0, ()
        reference, variables = await self._frame_locals(client, frames[0].id)
        return frames, reference, variables

    async def _prefetched_stop(self, client: DapClient, thread_id: int) -> StopRead | None:
        """What the node asked for this stop (tui.node.dapstorm): no round trip at all. None when
        it could not (the answer then comes from ``_ask_stop``)."""
        try:
            event = await client.wait_for_event(
                "tetherStop", lambda e: e.body.get("threadId") == thread_id, timeout=CONNECT_TIMEOUT
            )
        except DapError:
            return None
        body = event.body
        if body.get("error") or not isinstance(body.get("stackTrace"), dict):
            return None
        frames = [StackFrame.from_dap(f) for f in body["stackTrace"].get("stackFrames", []) if isinstance(f, dict)]
        first = locals_scope(
            [Scope.from_dap(s) for s in (body.get("scopes") or {}).get("scopes", []) if isinstance(s, dict)]
        )
        items = (body.get("variables") or {}).get("variables", [])
        variables = tuple(Variable.from_dap(v) for v in items[:LOCALS_PAGE] if isinstance(v, dict))
        return frames, first.variables_reference if first else 0, variables

    async def _frame_locals(
        self, client: DapClient, frame_id: int, count: int = LOCALS_PAGE
    ) -> tuple[int, tuple[Variable, ...]]:
        first = locals_scope(await client.scopes(frame_id))
        if first is None:
            return 0, ()
        return first.variables_reference, tuple(await client.variables(first.variables_reference, count=count))

    async def frame_locals(self, frame_id: int, count: int = 0) -> tuple[int, tuple[Variable, ...]]:
        """A frame's locals (its first cheap scope): (their reference, them); (0, ()) for a frame
        without any. ``count`` > 0: at most that many."""
        return await self._frame_locals(self._session(), frame_id, count)

    # -- commands -----------------------------------------------------------------------------

    def _session(self) -> DapClient:
        if self._client is None or self._client.closed:
            raise DapError(f"rank {self.rank}'s debugger is not attached", fix="wait for the run to start")
        return self._client

    def _thread(self) -> int:
        stop = self._view.stop
        if stop is None:
            raise DapError("the debuggee is running: nothing to step", fix="set a breakpoint or pause it (F6)")
        return stop.thread_id

    async def resume(self) -> None:
        await self._session().continue_(self._thread())
        self._publish(DebugStatus.RUNNING, "running")

    async def step_over(self) -> None:
        await self._step(self._session().next)

    async def step_in(self) -> None:
        await self._step(self._session().step_in)

    async def step_out(self) -> None:
        await self._step(self._session().step_out)

    async def _step(self, request: Callable[[int], Awaitable[None]]) -> None:
        thread = self._thread()
        self._publish(DebugStatus.RUNNING, "stepping")
        await request(thread)

    async def pause(self) -> None:
        client = self._session()
        if self._view.status is DebugStatus.STOPPED:
            return
        threads = await client.threads()
        if threads:
            await client.pause(threads[0].id)

    async def toggle_breakpoint(self, local: Path, line: int) -> SourceBreakpoint | None:
        """Add or remove a breakpoint; sent at once when attached, kept for every later attach."""
        relative = self.relative(local)
        added = self.memory.toggle(relative, line)
        self.memory.tell_others(relative, self._memory_changed)
        await self._send_file(relative)
        return added

    async def put_breakpoint(self, local: Path, breakpoint: SourceBreakpoint) -> None:
        relative = self.relative(local)
        self.memory.put(relative, breakpoint)
        self.memory.tell_others(relative, self._memory_changed)
        await self._send_file(relative)

    async def _send_file(self, relative: str) -> None:
        paths = self._paths()
        client = self._client
        if client is None or client.closed or paths is None:
            return
        placed = await client.set_breakpoints(
            paths.to_remote(self.local_root / relative), self.memory.breakpoints(relative)
        )
        for key in [key for key in self._verified if key[0] == relative]:
            del self._verified[key]
        self._note_placed(relative, placed)
        self._republish()

    async def set_exception_filters(self, filters: list[str]) -> None:
        self.memory.set_exception_filters(filters)
        self.memory.tell_others("", self._memory_changed)
        await self._send_filters()

    async def scopes(self, frame_id: int) -> list[Scope]:
        return await self._session().scopes(frame_id)

    async def variables(self, reference: int, start: int = 0, count: int = 0) -> list[Variable]:
        """Children of a scope or a value; ``count`` > 0: one page of a sequence (see DapClient)."""
        return await self._session().variables(reference, start=start, count=count)

    async def evaluate(self, expression: str, frame_id: int | None = None, context: str = "repl") -> EvalResult:
        return await self._session().evaluate(expression, frame_id=frame_id, context=context)

    async def complete(self, text: str, column: int, frame_id: int | None = None) -> list[Completion]:
        return await self._session().completions(text, column, frame_id=frame_id)

    async def set_variable(self, reference: int, name: str, value: str) -> Variable:
        return await self._session().set_variable(reference, name, value)

    async def summarize(self, expression: str, frame_id: int | None) -> ArraySummary | None:
        """Shape, dtype and device of an array, computed on the node (a few bytes on the link)."""
        result = await self.evaluate(summary_expression(expression), frame_id, context="watch")
        return parse_summary(result.result)

    async def array_stats(self, expression: str, frame_id: int | None) -> ArrayStats | None:
        """min, max and NaN count, computed on the node, only when the user asks."""
        result = await self.evaluate(stats_expression(expression), frame_id, context="watch")
        return parse_stats(result.result)


if TYPE_CHECKING:  # the debugger screen's contract: mypy checks that Debugger keeps it
    from tui.console_api import ConsoleDebugger

    _KEEPS_THE_CONTRACT: type[ConsoleDebugger] = Debugger


def locals_scope(scopes: list[Scope]) -> Scope | None:
    """The scope a stop shows first: the frame's first that the adapter calls cheap (its locals)."""
    return next((s for s in scopes if not s.expensive), None)


async def quietly(step: Awaitable[None]) -> None:
    """One process's share of a command to several (breakpoints sent again, continue all): one
    that ended meanwhile must not stop the rest; each one's view says its state."""
    try:
        await step
    except Exception as exc:  # noqa: BLE001 - the others still get theirs
        log.debug("a command to one process failed (%s)", exc)
