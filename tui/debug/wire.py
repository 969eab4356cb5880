"""The DAP base protocol: ``Content-Length`` framing and one message connection over a stream pair.

``DapConnection`` connects (retrying while the adapter is not up yet), initializes, numbers
requests, matches responses by ``request_seq``, hands events to listeners and waiters, refuses
reverse requests, and counts what crosses the link (the console shows those figures: over a slow
tunnel a big variables page is something a user notices). The typed requests are
``tui.debug.dap.DapClient``'s.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import TypeVar, cast

from tui.dap_model import DapEvent
from tui.errors import TetherError
from tui.node.protocol_dap import (
    Capabilities,
    ErrorResponseBody,
    EventBody,
    InitializeRequestArguments,
    ProtocolMessage,
    Request,
    Response,
    content_length,
    frame,
)

log = logging.getLogger(__name__)

CLIENT_ID = "tether"
DEFAULT_TIMEOUT = 10.0
_BACKLOG = 1000  # events kept for wait_for_event; older ones are dropped first

EventCallback = Callable[[DapEvent], None]
_C = TypeVar("_C", bound="DapConnection")
_Body = TypeVar("_Body", bound=Mapping[str, object])


class DapError(TetherError):
    """The debug adapter could not be reached, went away, did not answer, or refused a request."""


def encode_message(message: Mapping[str, object]) -> bytes:
    """One DAP message on the wire: a Content-Length header, a blank line, UTF-8 JSON."""
    return frame(message)


async def read_message(reader: asyncio.StreamReader) -> ProtocolMessage | None:
    """The next message from ``reader``, or None at a clean end of stream.

    Raises DapError on a malformed header or body: a peer that is not a DAP adapter (a wrong port
    forwarded, say) must fail loudly rather than hang.
    """
    framed = await read_framed(reader)
    return None if framed is None else framed[0]


async def read_framed(reader: asyncio.StreamReader) -> tuple[ProtocolMessage, int] | None:
    """``read_message`` plus the size of the whole framed message (header included), in bytes."""
    try:
        header = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise DapError("the debug adapter closed the connection in the middle of a message") from None
        return None
    except asyncio.LimitOverrunError:
        raise DapError("the peer sent a header too long for DAP: is this port really debugpy?") from None
    length = content_length(header)
    if length is None:
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
    return cast(ProtocolMessage, message), len(header) + length


def error_text(response: Response) -> str:
    """The adapter's own words for a failed request (the formatted error, else the short message)."""
    body = response.get("body")
    error = cast(ErrorResponseBody, body).get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("format"):
        text = str(error["format"])
        for key, value in (error.get("variables") or {}).items():
            text = text.replace("{" + key + "}", str(value))
        return text
    return str(response.get("message") or "unknown error")


class DapConnection:
    """One DAP session's messages over a connected stream pair.

    Events go, in order, to ``on_event`` (a plain callback: the app wraps them as messages), to
    ``queue`` when given, and to a backlog that ``wait_for_event`` consumes, so an event that
    arrives before anyone waits for it (a fast ``stopped``) is not lost. Any event name is
    delivered that way, debugpy's own (``debugpySockets``, ``debugpyAttach`` ...) included.
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
        self.bytes_sent = 0
        self.bytes_received = 0
        self.requests_sent = 0
        self._reader = reader
        self._writer = writer
        self._on_event = on_event
        self._seq = 0
        self._pending: dict[int, tuple[str, asyncio.Future[Response]]] = {}
        self._backlog: collections.deque[DapEvent] = collections.deque(maxlen=_BACKLOG)
        self._waiters: list[tuple[str, Callable[[DapEvent], bool] | None, asyncio.Future[DapEvent]]] = []
        self._write_lock = asyncio.Lock()
        self._closed_reason: str | None = None
        self._closed_by_adapter = False
        self._closed_event = asyncio.Event()
        self.capabilities: Capabilities = {}
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(
        cls: type[_C],
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_event: EventCallback | None = None,
        queue: asyncio.Queue[DapEvent] | None = None,
    ) -> _C:
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
        cls: type[_C],
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_event: EventCallback | None = None,
        queue: asyncio.Queue[DapEvent] | None = None,
    ) -> _C:
        """``connect`` and ``initialize``, both retried until ``timeout``.

        Through an ssh forward the local port accepts at once even while nothing listens on the
        node; ssh then closes the connection. So a connection closed before ``initialize`` is
        answered counts as "not listening yet", like a refused one.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.01  # soon at first: a restarted run's adapter listens within tens of ms
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
                if loop.time() + delay >= deadline:
                    raise DapError(
                        f"the debug adapter at {host}:{port} kept closing the connection for {timeout:g}s"
                        f" ({exc.message})",
                        fix="check that the run started under debugpy (see the run pane) and that its "
                        "port is forwarded",
                    ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def initialize(self, *, timeout: float = DEFAULT_TIMEOUT) -> Capabilities:
        """Say who we are; returns (and keeps) the adapter's capabilities."""
        arguments: InitializeRequestArguments = {
            "clientID": CLIENT_ID,
            "clientName": "Tether",
            "adapterID": "debugpy",
            "pathFormat": "path",
            "linesStartAt1": True,
            "columnsStartAt1": True,
            "supportsVariableType": True,
            "supportsVariablePaging": True,
            "supportsRunInTerminalRequest": False,
        }
        self.capabilities = await self.ask(Capabilities, "initialize", arguments, timeout=timeout)
        return self.capabilities

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    @property
    def closed_by_adapter(self) -> bool:
        """True when the other side hung up (or broke the protocol) before we closed."""
        return self._closed_by_adapter

    async def wait_closed(self) -> None:
        """Return once the connection is closed, by either side (the session's end, for a watcher)."""
        await self._closed_event.wait()

    async def close(self) -> None:
        """Close the socket and stop reading; pending requests fail with DapError."""
        self._mark_closed("the client closed the connection")
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader_task
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def send_request(
        self, command: str, arguments: Mapping[str, object] | None = None
    ) -> asyncio.Future[Response]:
        """Send a request and return the future of its response message (not yet awaited).

        For requests whose answer comes late by design (debugpy's ``attach``); most callers want
        ``request``.
        """
        if self._closed_reason is not None:
            raise DapError(f"cannot send '{command}': {self._closed_reason} ({self.address})")
        seq = self._next_seq()
        message: Request = {"seq": seq, "type": "request", "command": command}
        if arguments is not None:
            message["arguments"] = dict(arguments)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[seq] = (command, future)
        future.add_done_callback(lambda _: self._pending.pop(seq, None))  # also on timeout (cancel)
        try:
            await self._write(message)
        except BaseException:
            self._pending.pop(seq, None)
            raise
        self.requests_sent += 1
        return future

    async def request(
        self, command: str, arguments: Mapping[str, object] | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Mapping[str, object]:
        """Send a request and return the body of its successful response."""
        future = await self.send_request(command, arguments)
        return await self._response_body(command, future, timeout)

    async def ask(
        self,
        answer: type[_Body],
        command: str,
        arguments: Mapping[str, object] | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> _Body:
        """``request``, its body read as ``answer`` (the command's response body in protocol_dap)."""
        return cast(_Body, await self.request(command, arguments, timeout=timeout))

    async def _response(self, command: str, future: asyncio.Future[Response], timeout: float) -> Response:
        """The whole response message, refusals included; no answer in time is a DapError."""
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise DapError(
                f"no answer to '{command}' from the debug adapter at {self.address} within {timeout:g}s",
                fix="the debuggee may be busy or hung; try again, or restart the run",
            ) from None

    async def _response_body(
        self, command: str, future: asyncio.Future[Response], timeout: float
    ) -> Mapping[str, object]:
        response = await self._response(command, future, timeout)
        if not response.get("success", False):
            raise DapError(f"the debug adapter refused '{command}': {error_text(response)}")
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

    async def _write(self, message: Request | Response) -> None:
        framed = encode_message(message)
        async with self._write_lock:
            try:
                self._writer.write(framed)
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                self._mark_closed(f"the connection to the debug adapter broke ({exc})")
                raise DapError(f"cannot send to the debug adapter at {self.address}: {exc}") from None
        self.bytes_sent += len(framed)

    async def _read_loop(self) -> None:
        reason = "the debug adapter closed the connection"
        try:
            while (framed := await read_framed(self._reader)) is not None:
                self.bytes_received += framed[1]
                await self._dispatch(framed[0])
        except DapError as exc:
            reason = exc.message
        except (ConnectionError, OSError) as exc:
            reason = f"the connection to the debug adapter broke ({exc})"
        finally:
            if not self.closed:
                self._closed_by_adapter = True
            self._mark_closed(reason)

    async def _dispatch(self, message: ProtocolMessage) -> None:
        kind = message.get("type")
        if kind == "response":
            response = cast(Response, message)
            entry = self._pending.pop(response.get("request_seq", -1), None)
            if entry is not None and not entry[1].done():
                entry[1].set_result(response)
        elif kind == "event":
            body = message.get("body")
            name = str(message.get("event", ""))
            self._deliver(DapEvent(name, cast(EventBody, body) if isinstance(body, dict) else {}))
        elif kind == "request":
            request = cast(Request, message)
            # Reverse requests (runInTerminal, startDebugging): the console does neither, and an
            # unanswered one would leave the adapter waiting.
            await self._write(
                {
                    "seq": self._next_seq(),
                    "type": "response",
                    "request_seq": request.get("seq", 0),
                    "command": request.get("command", ""),
                    "success": False,
                    "message": f"{CLIENT_ID} does not support '{request.get('command')}'",
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
        self._closed_event.set()
        for command, future in self._pending.values():
            if not future.done():
                future.set_exception(DapError(f"no answer to '{command}': {reason} ({self.address})"))
        self._pending.clear()
        for name, _, waiting in self._waiters:
            if not waiting.done():
                waiting.set_exception(DapError(f"no '{name}' event: {reason} ({self.address})"))
        self._waiters.clear()
