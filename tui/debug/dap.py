"""A small Debug Adapter Protocol client (asyncio, stdlib only) for debugpy's adapter.

The console's debugger screen and the tests talk to ``python -m debugpy --listen 127.0.0.1:PORT``
(through the ssh tunnel, on the laptop) with this client. It speaks the DAP base protocol
(``Content-Length`` framed JSON, ``seq`` numbers, responses matched by ``request_seq``) and offers
the few requests the console needs: initialize, attach, setBreakpoints, configurationDone,
stackTrace, continue, disconnect.

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
import collections
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tui.errors import TetherError

log = logging.getLogger(__name__)

CLIENT_ID = "tether"
DEFAULT_TIMEOUT = 10.0
_BACKLOG = 1000  # events kept for wait_for_event; older ones are dropped first


class DapError(TetherError):
    """The debug adapter could not be reached, went away, did not answer, or refused a request."""


@dataclass(frozen=True)
class DapEvent:
    """An event from the adapter (``stopped``, ``output``, ``terminated`` ...) with its body."""

    name: str
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Breakpoint:
    """A breakpoint as the adapter accepted it; ``verified`` is False until code exists there."""

    verified: bool
    line: int | None
    message: str = ""


@dataclass(frozen=True)
class StackFrame:
    """One frame of a stack trace; ``path`` is as the debuggee sees it (remote path)."""

    id: int
    name: str
    path: str
    line: int


@dataclass(frozen=True)
class StoppedAt:
    """Where and why a thread stopped: what the console shows as ``file:line (reason)``."""

    thread_id: int
    reason: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.reason})"


EventCallback = Callable[[DapEvent], None]


def encode_message(message: Mapping[str, Any]) -> bytes:
    """One DAP message on the wire: a Content-Length header, a blank line, UTF-8 JSON."""
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message from ``reader``, or None at a clean end of stream.

    Raises DapError on a malformed header or body: a peer that is not a DAP adapter (a wrong port
    forwarded, say) must fail loudly rather than hang.
    """
    try:
        header = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise DapError("the debug adapter closed the connection in the middle of a message") from None
        return None
    except asyncio.LimitOverrunError:
        raise DapError("the peer sent a header too long for DAP: is this port really debugpy?") from None
    length = None
    for line in header.decode("ascii", "replace").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                length = None
    if length is None or length < 0:
        raise DapError(f"the peer sent no valid Content-Length header ({header[:80]!r}): is this debugpy?")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise DapError("the debug adapter closed the connection in the middle of a message") from None
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise DapError(f"the debug adapter sent a message that is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise DapError("the debug adapter sent a message that is not a JSON object")
    return message


class DapClient:
    """One DAP session over a connected stream pair.

    Events go, in order, to ``on_event`` (a plain callback: the app wraps them as messages), to
    ``queue`` when given, and to a backlog that ``wait_for_event`` consumes, so an event that
    arrives before anyone waits for it (a fast ``stopped``) is not lost.
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
        self.address = address
        self.queue = queue
        self._reader = reader
        self._writer = writer
        self._on_event = on_event
        self._seq = 0
        self._pending: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._backlog: collections.deque[DapEvent] = collections.deque(maxlen=_BACKLOG)
        self._waiters: list[tuple[str, Callable[[DapEvent], bool] | None, asyncio.Future[DapEvent]]] = []
        self._write_lock = asyncio.Lock()
        self._closed_reason: str | None = None
        self._closed_by_adapter = False
        self.capabilities: dict[str, Any] = {}
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    # ---- connection -------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_event: EventCallback | None = None,
        queue: asyncio.Queue[DapEvent] | None = None,
    ) -> DapClient:
        """Connect to the adapter at host:port, retrying while the port refuses, until ``timeout``.

        The debug loop starts debugpy and the tunnel at the same time as the console connects, so
        "connection refused" at first is normal; only the deadline turns it into an error.
        """
        address = f"{host}:{port}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.05
        last: OSError | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), remaining)
            except (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError) as exc:
                last = exc
            except asyncio.TimeoutError:
                break
            except OSError as exc:  # unknown host, no route: waiting will not help
                raise DapError(
                    f"cannot connect to the debug adapter at {address}: {exc.strerror or exc}",
                    fix="check the host and port of the debug forward",
                ) from None
            else:
                return cls(reader, writer, address=address, on_event=on_event, queue=queue)
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, 0.5)
        detail = f" (last error: {last.strerror or last})" if last else ""
        raise DapError(
            f"no debug adapter listening on {address} after {timeout:g}s{detail}",
            fix="check that the run started under debugpy (see the run pane) and that its port is forwarded",
        )

    @classmethod
    async def connect_initialized(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_event: EventCallback | None = None,
        queue: asyncio.Queue[DapEvent] | None = None,
    ) -> DapClient:
        """``connect`` and ``initialize``, both retried until ``timeout``.

        Through an ssh forward the local port accepts at once even while nothing listens on the
        node; ssh then closes the connection. So a connection closed before ``initialize`` is
        answered counts as "not listening yet", like a refused one.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = max(0.0, deadline - loop.time())
            client = await cls.connect(host, port, timeout=remaining, on_event=on_event, queue=queue)
            try:
                await client.initialize(timeout=max(0.1, deadline - loop.time()))
                return client
            except DapError as exc:
                await client.close()
                if not client.closed_by_adapter:
                    raise
                if loop.time() + 0.1 >= deadline:
                    raise DapError(
                        f"the debug adapter at {host}:{port} kept closing the connection for {timeout:g}s"
                        f" ({exc.message})",
                        fix="check that the run started under debugpy (see the run pane) and that its "
                        "port is forwarded",
                    ) from None
            await asyncio.sleep(0.1)

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    @property
    def closed_by_adapter(self) -> bool:
        """True when the other side hung up (or broke the protocol) before we closed."""
        return self._closed_by_adapter

    async def close(self) -> None:
        """Close the socket and stop reading; pending requests fail with DapError."""
        self._mark_closed("the client closed the connection")
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader_task
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def __aenter__(self) -> DapClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---- messages ---------------------------------------------------------------------------

    async def send_request(
        self, command: str, arguments: Mapping[str, Any] | None = None
    ) -> asyncio.Future[dict[str, Any]]:
        """Send a request and return the future of its response message (not yet awaited).

        For requests whose answer comes late by design (debugpy's ``attach``); most callers want
        ``request``.
        """
        if self._closed_reason is not None:
            raise DapError(f"cannot send '{command}': {self._closed_reason} ({self.address})")
        seq = self._next_seq()
        message: dict[str, Any] = {"seq": seq, "type": "request", "command": command}
        if arguments is not None:
            message["arguments"] = dict(arguments)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[seq] = (command, future)
        future.add_done_callback(lambda _: self._pending.pop(seq, None))  # also on timeout (cancel)
        try:
            await self._write(message)
        except BaseException:
            self._pending.pop(seq, None)
            raise
        return future

    async def request(
        self, command: str, arguments: Mapping[str, Any] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Send a request and return the body of its successful response."""
        future = await self.send_request(command, arguments)
        return await self._response_body(command, future, timeout)

    async def _response_body(
        self, command: str, future: asyncio.Future[dict[str, Any]], timeout: float
    ) -> dict[str, Any]:
        try:
            response = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise DapError(
                f"no answer to '{command}' from the debug adapter at {self.address} within {timeout:g}s",
                fix="the debuggee may be busy or hung; try again, or restart the run",
            ) from None
        if not response.get("success", False):
            raise DapError(f"the debug adapter refused '{command}': {_error_text(response)}")
        body = response.get("body")
        return body if isinstance(body, dict) else {}

    async def wait_for_event(
        self,
        name: str,
        predicate: Callable[[DapEvent], bool] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> DapEvent:
        """The oldest not yet consumed event called ``name`` (and matching ``predicate``).

        Events that arrived before this call count: each is handed to one waiter only.
        """
        for event in self._backlog:
            if event.name == name and (predicate is None or predicate(event)):
                self._backlog.remove(event)
                return event
        if self._closed_reason is not None:
            raise DapError(f"no '{name}' event: {self._closed_reason} ({self.address})")
        future: asyncio.Future[DapEvent] = asyncio.get_running_loop().create_future()
        waiter = (name, predicate, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise DapError(f"the debug adapter at {self.address} sent no '{name}' event within {timeout:g}s") from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def _write(self, message: Mapping[str, Any]) -> None:
        async with self._write_lock:
            try:
                self._writer.write(encode_message(message))
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                self._mark_closed(f"the connection to the debug adapter broke ({exc})")
                raise DapError(f"cannot send to the debug adapter at {self.address}: {exc}") from None

    async def _read_loop(self) -> None:
        reason = "the debug adapter closed the connection"
        try:
            while (message := await read_message(self._reader)) is not None:
                await self._dispatch(message)
        except DapError as exc:
            reason = exc.message
        except (ConnectionError, OSError) as exc:
            reason = f"the connection to the debug adapter broke ({exc})"
        finally:
            if not self.closed:
                self._closed_by_adapter = True
            self._mark_closed(reason)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "response":
            entry = self._pending.pop(message.get("request_seq", -1), None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(message)
        elif kind == "event":
            body = message.get("body")
            self._deliver(DapEvent(str(message.get("event", "")), body if isinstance(body, dict) else {}))
        elif kind == "request":
            # Reverse requests (runInTerminal, startDebugging): the console does neither.
            await self._write(
                {
                    "seq": self._next_seq(),
                    "type": "response",
                    "request_seq": message.get("seq", 0),
                    "command": message.get("command", ""),
                    "success": False,
                    "message": f"{CLIENT_ID} does not support '{message.get('command')}'",
                }
            )

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _deliver(self, event: DapEvent) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a broken listener must not stop the session
                log.exception("DAP event callback failed for %s", event.name)
        if self.queue is not None:
            self.queue.put_nowait(event)
        for waiter in list(self._waiters):
            name, predicate, future = waiter
            if name == event.name and not future.done() and (predicate is None or predicate(event)):
                self._waiters.remove(waiter)
                future.set_result(event)
                return
        self._backlog.append(event)

    def _mark_closed(self, reason: str) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        for command, future in self._pending.values():
            if not future.done():
                future.set_exception(DapError(f"no answer to '{command}': {reason} ({self.address})"))
        self._pending.clear()
        for name, _, waiting in self._waiters:
            if not waiting.done():
                waiting.set_exception(DapError(f"no '{name}' event: {reason} ({self.address})"))
        self._waiters.clear()

    # ---- the requests the console uses ------------------------------------------------------

    async def initialize(self, *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Say who we are; returns (and keeps) the adapter's capabilities."""
        self.capabilities = await self.request(
            "initialize",
            {
                "clientID": CLIENT_ID,
                "clientName": "Tether",
                "adapterID": "debugpy",
                "pathFormat": "path",
                "linesStartAt1": True,
                "columnsStartAt1": True,
                "supportsVariableType": True,
                "supportsRunInTerminalRequest": False,
            },
            timeout=timeout,
        )
        return self.capabilities

    async def attach(
        self,
        breakpoints: Mapping[str, Sequence[int]] | None = None,
        *,
        just_my_code: bool = False,
        path_mappings: Sequence[tuple[str, str]] = (),
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, dict[int, Breakpoint]]:
        """Attach, set ``breakpoints`` ({path: lines}) and finish configuration, in debugpy's order.

        Returns the accepted breakpoints per path and requested line. ``path_mappings`` are
        (local root, remote root) pairs, for breakpoints given as laptop paths.
        """
        arguments: dict[str, Any] = {"name": "Tether", "request": "attach", "justMyCode": just_my_code}
        if path_mappings:
            arguments["pathMappings"] = [{"localRoot": loc, "remoteRoot": rem} for loc, rem in path_mappings]
        attached = await self.send_request("attach", arguments)
        initialized = asyncio.ensure_future(self.wait_for_event("initialized", timeout=timeout))
        try:
            either: set[asyncio.Future[Any]] = {initialized, attached}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if attached.done() and not initialized.done():
                # debugpy answers early only to refuse (no initialized event will come): raise
                # that error now. Adapters that accept early still send initialized next.
                await self._response_body("attach", attached, timeout)
            await initialized
            accepted = {}
            for path, lines in (breakpoints or {}).items():
                accepted[path] = await self.set_breakpoints(path, lines, timeout=timeout)
            await self.configuration_done(timeout=timeout)
            await self._response_body("attach", attached, timeout)
        finally:
            for pending in (initialized, attached):
                pending.cancel()  # no-op when done; otherwise nobody will wait for it any more
        return accepted

    async def set_breakpoints(
        self, path: str, lines: Sequence[int], *, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[int, Breakpoint]:
        """Replace the breakpoints of one source file; returns them by requested line."""
        arguments = {"source": {"path": path}, "breakpoints": [{"line": line} for line in lines]}
        body = await self.request("setBreakpoints", arguments, timeout=timeout)
        result: dict[int, Breakpoint] = {}
        for line, item in zip(lines, body.get("breakpoints", [])):
            message = str(item.get("message", ""))
            result[line] = Breakpoint(bool(item.get("verified")), item.get("line"), message)
        return result

    async def configuration_done(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        await self.request("configurationDone", timeout=timeout)

    async def stack_trace(
        self, thread_id: int, *, levels: int = 20, timeout: float = DEFAULT_TIMEOUT
    ) -> list[StackFrame]:
        """The innermost ``levels`` frames of a stopped thread."""
        arguments = {"threadId": thread_id, "startFrame": 0, "levels": levels}
        body = await self.request("stackTrace", arguments, timeout=timeout)
        return [
            StackFrame(
                int(frame.get("id", 0)),
                str(frame.get("name", "")),
                str((frame.get("source") or {}).get("path", "")),
                int(frame.get("line", 0)),
            )
            for frame in body.get("stackFrames", [])
        ]

    async def wait_stopped(self, *, timeout: float = DEFAULT_TIMEOUT) -> StoppedAt:
        """Wait for the next ``stopped`` event and say where: the top frame's file and line."""
        event = await self.wait_for_event("stopped", timeout=timeout)
        thread_id = event.body.get("threadId")
        if thread_id is None:  # allowed by the spec; then take the first thread
            threads = (await self.request("threads", timeout=timeout)).get("threads", [])
            if not threads:
                raise DapError("the debuggee stopped, but the debug adapter lists no threads")
            thread_id = threads[0]["id"]
        frames = await self.stack_trace(int(thread_id), levels=1, timeout=timeout)
        top = frames[0] if frames else StackFrame(0, "", "", 0)
        return StoppedAt(int(thread_id), str(event.body.get("reason", "")), top.path, top.line)

    async def continue_(self, thread_id: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Resume (debugpy resumes all threads)."""
        await self.request("continue", {"threadId": thread_id}, timeout=timeout)

    async def disconnect(self, *, terminate_debuggee: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Detach and close; the debuggee keeps running unless ``terminate_debuggee``.

        The adapter may close the connection right after answering, or already have closed it
        (the debuggee exited): both mean we are detached, so neither is an error.
        """
        try:
            if not self.closed:
                await self.request("disconnect", {"terminateDebuggee": terminate_debuggee}, timeout=timeout)
        except DapError:
            if not self.closed:
                raise
        finally:
            await self.close()


def _error_text(response: Mapping[str, Any]) -> str:
    """The adapter's own words for a failed request (the formatted error, else the short message)."""
    body = response.get("body")
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("format"):
        text = str(error["format"])
        for key, value in (error.get("variables") or {}).items():
            text = text.replace("{" + key + "}", str(value))
        return text
    return str(response.get("message") or "unknown error")
