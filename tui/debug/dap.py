"""A Debug Adapter Protocol client (asyncio, stdlib only) for debugpy's adapter.

The console's debugger screen and the tests talk to ``python -m debugpy --listen 127.0.0.1:PORT``
(through the ssh tunnel, on the laptop) with this client. The base protocol (framing, ``seq``
numbers, events, byte counts) is ``tui.debug.wire``; the values handed out are ``tui.dap_model``.
This module has the requests a debugger screen needs: attach and configuration, line, function
and exception breakpoints, threads, stack pages, scopes, paged variables, setVariable, evaluate,
completions, stepping, pause, goto.

debugpy follows the DAP "late case" for attach: it sends the ``initialized`` event only after it
got the ``attach`` request, and it answers ``attach`` only after ``configurationDone``. So
``attach()`` sends attach, waits for ``initialized``, sets breakpoints, sends configurationDone and
only then awaits the attach response; awaiting the response first would deadlock.

Every failure is a ``DapError`` that says which adapter and what to do: nothing listening before
the deadline, the connection closed, no answer in time, or an error response (with the adapter's
own message).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Mapping, Sequence
from typing import cast

from tui.dap_model import (
    Breakpoint,
    Completion,
    DapEvent,
    EvalResult,
    ExceptionFilter,
    Scope,
    SourceBreakpoint,
    StackFrame,
    StoppedAt,
    Thread,
    Variable,
)
from tui.debug.wire import (
    CLIENT_ID,
    DEFAULT_TIMEOUT,
    DapConnection,
    DapError,
    EventCallback,
    encode_message,
    read_message,
)
from tui.node import protocol_dap as dap

__all__ = [
    "CLIENT_ID",
    "DEFAULT_TIMEOUT",
    "Breakpoint",
    "Completion",
    "DapClient",
    "DapError",
    "DapEvent",
    "EvalResult",
    "EventCallback",
    "ExceptionFilter",
    "Scope",
    "SourceBreakpoint",
    "StackFrame",
    "StoppedAt",
    "Thread",
    "Variable",
    "encode_message",
    "read_message",
]

BreakpointSpec = int | SourceBreakpoint
# After these the adapter's variables references are stale (it drops them when the debuggee runs on).
_REFERENCES_END = frozenset({"continued", "stopped", "terminated", "exited"})


def _source_breakpoint(spec: BreakpointSpec) -> SourceBreakpoint:
    return spec if isinstance(spec, SourceBreakpoint) else SourceBreakpoint(int(spec))


def _page_expression(expression: str, start: int, count: int) -> str:
    """Python that builds ``{index: item}`` for one page in the debuggee (``expression`` evaluated once)."""
    return f"(lambda v: {{i: v[i] for i in range({start}, min({start + count}, len(v)))}})({expression})"


class DapClient(DapConnection):
    """One DAP session with debugpy: ``connect_initialized``, ``attach``, then the requests.

    Each request method is one round trip (``requests_sent`` counts them), but a page of
    ``variables`` (two); ``bytes_sent`` and ``bytes_received`` count whole framed messages,
    headers included.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        address: str = "the debug adapter",
        on_event: EventCallback | None = None,
        queue: asyncio.Queue[DapEvent] | None = None,
    ) -> None:
        super().__init__(reader, writer, address=address, on_event=on_event, queue=queue)
        # While stopped: which frame and expression each variables reference stands for, and the
        # page items served by evaluate (set through setExpression). See ``variables``.
        self._origins: dict[int, tuple[int, str]] = {}
        self._paged: dict[tuple[int, str], tuple[int, str]] = {}

    # ---- session setup ----------------------------------------------------------------------

    async def attach(
        self,
        breakpoints: Mapping[str, Sequence[BreakpointSpec]] | None = None,
        *,
        just_my_code: bool = False,
        path_mappings: Sequence[tuple[str, str]] = (),
        exception_filters: Sequence[str] = (),
        config: Mapping[str, object] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, dict[int, Breakpoint]]:
        """Attach, set ``breakpoints`` ({path: lines}) and ``exception_filters``, finish configuration.

        Returns the accepted breakpoints per path and requested line. ``path_mappings`` are
        (local root, remote root) pairs, for breakpoints given as laptop paths. ``config``: the
        attach arguments debugpy gave for a subprocess (its ``debugpyAttach`` event: the
        ``subProcessId`` that picks the process on the same adapter port).
        """
        ours: dap.AttachRequestArguments = {"name": "Tether", "request": "attach", "justMyCode": just_my_code}
        arguments: dict[str, object] = {**ours, **(config or {})}
        if path_mappings:
            mappings: list[dap.PathMapping] = [{"localRoot": loc, "remoteRoot": rem} for loc, rem in path_mappings]
            arguments["pathMappings"] = mappings
        attached = await self.send_request("attach", arguments)
        initialized = asyncio.ensure_future(self.wait_for_event("initialized", timeout=timeout))
        try:
            either: set[asyncio.Future[DapEvent] | asyncio.Future[dap.Response]] = {initialized, attached}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if attached.done() and not initialized.done():
                # debugpy answers early only to refuse (no initialized event will come): raise
                # that error now. Adapters that accept early still send initialized next.
                await self._response_body("attach", attached, timeout)
            await initialized
            # The whole configuration is sent back to back and answered in order: one round trip
            # for it, not one per file (a reattach after every restart pays it over a slow link).
            paths = list(breakpoints or {})
            placing = [self.set_breakpoints(path, (breakpoints or {})[path], timeout=timeout) for path in paths]
            steps: list[Awaitable[None]] = []
            # Sent even when empty, to any adapter that offers filters (debugpy always does): a
            # reattach must not inherit what an earlier session set. The spec's rule for skipping it.
            if exception_filters or self.capabilities.get("exceptionBreakpointFilters"):
                steps.append(self.set_exception_breakpoints(exception_filters, timeout=timeout))
            steps.append(self.configuration_done(timeout=timeout))
            answers, _ = await asyncio.gather(asyncio.gather(*placing), asyncio.gather(*steps))
            accepted = dict(zip(paths, answers))
            await self._response_body("attach", attached, timeout)
        finally:
            for pending in (initialized, attached):
                pending.cancel()  # no-op when done; otherwise nobody will wait for it any more
        return accepted

    async def configuration_done(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        await self.request("configurationDone", timeout=timeout)

    # ---- breakpoints ------------------------------------------------------------------------

    async def set_breakpoints(
        self, path: str, breakpoints: Sequence[BreakpointSpec], *, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[int, Breakpoint]:
        """Replace the breakpoints of one source file; returns them by requested line."""
        wanted = [_source_breakpoint(spec) for spec in breakpoints]
        arguments: dap.SetBreakpointsArguments = {
            "source": {"path": path},
            "breakpoints": [bp.to_dap() for bp in wanted],
        }
        body = await self.ask(dap.SetBreakpointsResponseBody, "setBreakpoints", arguments, timeout=timeout)
        return {bp.line: Breakpoint.from_dap(item) for bp, item in zip(wanted, body.get("breakpoints", []))}

    async def set_function_breakpoints(
        self, names: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT
    ) -> list[Breakpoint]:
        """Replace the function breakpoints (debugpy takes ``name`` or ``module:name``)."""
        arguments: dap.SetFunctionBreakpointsArguments = {"breakpoints": [{"name": name} for name in names]}
        body = await self.ask(dap.SetBreakpointsResponseBody, "setFunctionBreakpoints", arguments, timeout=timeout)
        return [Breakpoint.from_dap(item) for item in body.get("breakpoints", [])]

    async def set_exception_breakpoints(self, filters: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Stop on exceptions of these kinds (ids from ``exception_filters``); an empty list clears."""
        arguments: dap.SetExceptionBreakpointsArguments = {"filters": list(filters)}
        await self.request("setExceptionBreakpoints", arguments, timeout=timeout)

    def exception_filters(self) -> list[ExceptionFilter]:
        """The exception breakpoint kinds the adapter offered in ``initialize`` (no request)."""
        return [ExceptionFilter.from_dap(item) for item in self.capabilities.get("exceptionBreakpointFilters", [])]

    # ---- threads and stacks -----------------------------------------------------------------

    async def threads(self, *, timeout: float = DEFAULT_TIMEOUT) -> list[Thread]:
        body = await self.ask(dap.ThreadsResponseBody, "threads", timeout=timeout)
        return [Thread.from_dap(item) for item in body.get("threads", [])]

    async def stack_trace(
        self, thread_id: int, *, start: int = 0, levels: int = 20, timeout: float = DEFAULT_TIMEOUT
    ) -> list[StackFrame]:
        """``levels`` frames of a stopped thread from ``start`` (0: the innermost)."""
        frames, _ = await self.stack_page(thread_id, start=start, levels=levels, timeout=timeout)
        return frames

    async def stack_page(
        self, thread_id: int, *, start: int = 0, levels: int = 20, timeout: float = DEFAULT_TIMEOUT
    ) -> tuple[list[StackFrame], int | None]:
        """A page of frames and the stack's whole depth (``totalFrames``) when the adapter says it."""
        arguments: dap.StackTraceArguments = {"threadId": thread_id, "startFrame": start, "levels": levels}
        body = await self.ask(dap.StackTraceResponseBody, "stackTrace", arguments, timeout=timeout)
        total = body.get("totalFrames")
        frames = [StackFrame.from_dap(frame) for frame in body.get("stackFrames", [])]
        return frames, int(total) if isinstance(total, int) else None

    async def wait_stopped(self, *, timeout: float = DEFAULT_TIMEOUT) -> StoppedAt:
        """Wait for the next ``stopped`` event and say where: the top frame's file and line."""
        event = await self.wait_for_event("stopped", timeout=timeout)
        thread_id = event.body.get("threadId")
        if thread_id is None:  # allowed by the spec; then take the first thread
            threads = await self.threads(timeout=timeout)
            if not threads:
                raise DapError("the debuggee stopped, but the debug adapter lists no threads")
            thread_id = threads[0].id
        frames = await self.stack_trace(int(thread_id), levels=1, timeout=timeout)
        top = frames[0] if frames else StackFrame(0, "", "", 0)
        return StoppedAt(int(thread_id), str(event.body.get("reason", "")), top.path, top.line)

    # ---- variables and expressions ----------------------------------------------------------

    async def scopes(self, frame_id: int, *, timeout: float = DEFAULT_TIMEOUT) -> list[Scope]:
        arguments: dap.ScopesArguments = {"frameId": frame_id}
        body = await self.ask(dap.ScopesResponseBody, "scopes", arguments, timeout=timeout)
        scopes = [Scope.from_dap(item) for item in body.get("scopes", [])]
        for scope in scopes:
            self._origins[scope.variables_reference] = (frame_id, "")
        return scopes

    async def variables(
        self, reference: int, *, start: int = 0, count: int = 0, timeout: float = DEFAULT_TIMEOUT
    ) -> list[Variable]:
        """The children of a scope or variable; ``count`` > 0 asks for items ``start`` .. ``start+count-1``.

        A page is what keeps a 10,000-item list from crossing a slow link whole. debugpy 1.8
        ignores ``start`` and ``count`` (it always sends the first 100 items and a "more" entry),
        so for a sequence whose frame and expression are known here (it came from ``scopes``,
        ``variables`` or a watch ``evaluate`` of this stop) the page is built in the debuggee by
        one evaluate, children named by their index. Otherwise start/count go to the adapter and
        an answer that ignored them is cut to the page here.
        """
        origin = self._origins.get(reference)
        if count > 0 and origin is not None and origin[1]:
            page = await self._evaluated_page(reference, *origin, start, count, timeout)
            if page is not None:
                return page
        arguments: dap.VariablesArguments = {"variablesReference": reference}
        if count > 0:
            arguments["start"] = start
            arguments["count"] = count
        body = await self.ask(dap.VariablesResponseBody, "variables", arguments, timeout=timeout)
        children = [Variable.from_dap(item) for item in body.get("variables", [])]
        if count > 0 and len(children) > count:
            children = children[start : start + count]
        if origin is not None:
            for child in children:
                if child.expandable and child.evaluate_name:
                    self._origins[child.variables_reference] = (origin[0], child.evaluate_name)
        return children

    async def _evaluated_page(
        self, reference: int, frame_id: int, expression: str, start: int, count: int, timeout: float
    ) -> list[Variable] | None:
        """One page of a sequence through evaluate, or None when that expression is no sequence."""
        arguments: dap.EvaluateArguments = {
            "expression": _page_expression(expression, start, count),
            "frameId": frame_id,
            "context": "watch",
        }
        response = await self._response("evaluate", await self.send_request("evaluate", arguments), timeout)
        body = response.get("body")
        if not response.get("success") or not isinstance(body, dict):
            return None  # not indexable by int, or no len(): the adapter's own listing will do
        page = EvalResult.from_dap(cast(dap.EvaluateResponseBody, body))
        if not page.expandable:
            return []  # an empty page: "{}"
        wanted = {str(index) for index in range(start, start + count)}
        listing: dap.VariablesArguments = {"variablesReference": page.variables_reference}
        items = await self.ask(dap.VariablesResponseBody, "variables", listing, timeout=timeout)
        result = []
        for item in items.get("variables", []):
            child = Variable.from_dap(item)
            if child.name not in wanted:  # the dict's own entries: "special variables", "len()"
                continue
            evaluate_name = f"{expression}[{child.name}]"
            child = dataclasses.replace(child, evaluate_name=evaluate_name)
            self._paged[(reference, child.name)] = (frame_id, evaluate_name)
            if child.expandable:
                self._origins[child.variables_reference] = (frame_id, evaluate_name)
            result.append(child)
        return result

    async def set_variable(
        self, reference: int, name: str, value: str, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Variable:
        """Assign ``value`` (an expression, evaluated in the debuggee) to a child of ``reference``.

        debugpy keeps the old value, without an error, when ``value`` does not evaluate: compare
        the returned value with what was asked for.
        """
        paged = self._paged.get((reference, name))
        if paged is not None:  # the child lives in the list itself, not in the page's dict
            expression: dap.SetExpressionArguments = {"expression": paged[1], "value": value, "frameId": paged[0]}
            body = await self.ask(dap.Variable, "setExpression", expression, timeout=timeout)
        else:
            variable: dap.SetVariableArguments = {"variablesReference": reference, "name": name, "value": value}
            body = await self.ask(dap.Variable, "setVariable", variable, timeout=timeout)
        return Variable.from_dap(body, name)

    async def evaluate(
        self,
        expression: str,
        *,
        frame_id: int | None = None,
        context: str = "repl",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> EvalResult:
        """Evaluate in a frame (``context``: "watch", "repl" or "hover"); an error is a DapError."""
        arguments: dap.EvaluateArguments = {"expression": expression, "context": context}
        if frame_id is not None:
            arguments["frameId"] = frame_id
        result = EvalResult.from_dap(await self.ask(dap.EvaluateResponseBody, "evaluate", arguments, timeout=timeout))
        if result.expandable and frame_id is not None and context != "repl":  # a repl line may not bear repeating
            self._origins[result.variables_reference] = (frame_id, expression)
        return result

    async def completions(
        self, text: str, column: int, *, frame_id: int | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> list[Completion]:
        """Completions for ``text`` with the cursor at ``column`` (1-based, as DAP counts)."""
        arguments: dap.CompletionsArguments = {"text": text, "column": column}
        if frame_id is not None:
            arguments["frameId"] = frame_id
        body = await self.ask(dap.CompletionsResponseBody, "completions", arguments, timeout=timeout)
        return [Completion.from_dap(item) for item in body.get("targets", [])]

    def _deliver(self, event: DapEvent) -> None:
        if event.name in _REFERENCES_END:
            self._origins.clear()
            self._paged.clear()
        super()._deliver(event)

    # ---- execution control ------------------------------------------------------------------

    async def continue_(self, thread_id: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Resume (debugpy resumes all threads)."""
        await self._thread_request("continue", thread_id, timeout)

    async def next(self, thread_id: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Step over; a ``stopped`` event (reason "step") follows."""
        await self._thread_request("next", thread_id, timeout)

    async def step_in(self, thread_id: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        await self._thread_request("stepIn", thread_id, timeout)

    async def step_out(self, thread_id: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        await self._thread_request("stepOut", thread_id, timeout)

    async def pause(self, thread_id: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Ask a running thread to stop; a ``stopped`` event (reason "pause") follows."""
        await self._thread_request("pause", thread_id, timeout)

    async def _thread_request(self, command: str, thread_id: int, timeout: float) -> None:
        arguments: dap.ThreadArguments = {"threadId": thread_id}
        await self.request(command, arguments, timeout=timeout)

    async def goto_targets(self, path: str, line: int, *, timeout: float = DEFAULT_TIMEOUT) -> list[int]:
        """Target ids for jumping to ``path:line`` (needs ``supportsGotoTargetsRequest``)."""
        arguments: dap.GotoTargetsArguments = {"source": {"path": path}, "line": line}
        body = await self.ask(dap.GotoTargetsResponseBody, "gotoTargets", arguments, timeout=timeout)
        return [int(target["id"]) for target in body.get("targets", []) if isinstance(target.get("id"), int)]

    async def goto(self, thread_id: int, target_id: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Make a stopped thread's next statement the target; a ``stopped`` event (reason "goto") follows."""
        arguments: dap.GotoArguments = {"threadId": thread_id, "targetId": target_id}
        await self.request("goto", arguments, timeout=timeout)

    async def disconnect(self, *, terminate_debuggee: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Detach and close; the debuggee keeps running unless ``terminate_debuggee``.

        The adapter may close the connection right after answering, or already have closed it
        (the debuggee exited): both mean we are detached, so neither is an error.
        """
        try:
            if not self.closed:
                arguments: dap.DisconnectArguments = {"terminateDebuggee": terminate_debuggee}
                await self.request("disconnect", arguments, timeout=timeout)
        except DapError:
            if not self.closed:
                raise
        finally:
            await self.close()
