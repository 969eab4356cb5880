"""A relayed DAP stream that answers the stop storm on the node: one round trip per stop.

After every stop a debugger asks for the stack, then the top frame's scopes, then its variables:
three round trips in a row, each waiting for the last. Over a 100 ms link that is 300 ms before
the user sees where the run stopped. A relay stream opened with ``dap: true`` reads whole DAP
messages both ways; when the adapter says ``stopped`` it forwards that at once and asks the three
requests itself, here, next to the adapter, then sends their answers to the laptop as one
``tetherStop`` event. The console's debugger reads the stop from that event and asks nothing.

Requests the relay makes carry seq numbers from ``INJECTED_SEQ`` up, far above any client's; their
responses are kept here, never forwarded. Messages are forwarded whole (a client's request is
never split by one of ours), in the order they came. Stdlib only: this runs in the agent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from tui.node.protocol_dap import (
    HEADER_END,
    Event,
    ProtocolMessage,
    Request,
    Response,
    ScopesArguments,
    ScopesResponseBody,
    StackTraceArguments,
    StackTraceResponseBody,
    TetherStopEventBody,
    VariablesArguments,
    VariablesResponseBody,
    content_length,
    frame,
)

__all__ = ["INJECTED_SEQ", "Framer", "StopStorm", "content_length", "frame"]

INJECTED_SEQ = 1_000_000_000
STACK_LEVELS = 30
VARIABLES_COUNT = 100


class Framer:
    """Bytes in, whole DAP messages out (raw bytes and parsed JSON); a malformed header passes
    the bytes through unparsed, so a stream that is not DAP still flows."""

    def __init__(self) -> None:
        self._buffer = b""
        self.broken = False

    def feed(self, data: bytes) -> list[tuple[bytes, ProtocolMessage | None]]:
        if self.broken:
            return [(data, None)]
        self._buffer += data
        out: list[tuple[bytes, ProtocolMessage | None]] = []
        while True:
            end = self._buffer.find(HEADER_END)
            if end < 0:
                return out
            length = content_length(self._buffer[:end])
            if length is None:
                self.broken = True
                out.append((self._buffer, None))
                self._buffer = b""
                return out
            total = end + len(HEADER_END) + length
            if len(self._buffer) < total:
                return out
            raw, self._buffer = self._buffer[:total], self._buffer[total:]
            try:
                message = json.loads(raw[end + len(HEADER_END) :])
            except ValueError:
                message = None
            out.append((raw, cast(ProtocolMessage, message) if isinstance(message, dict) else None))


@dataclass
class _Storm:
    thread_id: int
    answers: TetherStopEventBody = field(default_factory=TetherStopEventBody)

    def __post_init__(self) -> None:
        self.answers["threadId"] = self.thread_id  # first: the event's body starts with it


class StopStorm:
    """One relayed stream's DAP traffic. ``to_adapter`` writes to the adapter's socket (under the
    stream's lock), ``to_laptop`` sends bytes on to the laptop."""

    def __init__(self, to_adapter: Callable[[bytes], None], to_laptop: Callable[[bytes], None]) -> None:
        self._to_adapter = to_adapter
        self._to_laptop = to_laptop
        self._from_adapter = Framer()
        self._from_laptop = Framer()
        self._lock = threading.Lock()  # the laptop's messages (agent thread) and ours (reader thread)
        self._seq = INJECTED_SEQ
        self._pending: dict[int, tuple[str, _Storm]] = {}

    def laptop_data(self, data: bytes) -> None:
        for raw, _ in self._from_laptop.feed(data):
            with self._lock:
                self._to_adapter(raw)

    def adapter_data(self, data: bytes) -> None:
        forward = []
        for raw, message in self._from_adapter.feed(data):
            if (
                message is not None
                and message.get("type") == "response"
                and message.get("request_seq") in self._pending
            ):
                self._answered(cast(Response, message))
                continue
            forward.append(raw)
            if message is not None and message.get("type") == "event" and message.get("event") == "stopped":
                thread = (cast(Event, message).get("body") or {}).get("threadId")
                if isinstance(thread, int):
                    self._flush(forward)
                    arguments: StackTraceArguments = {"threadId": thread, "startFrame": 0, "levels": STACK_LEVELS}
                    self._ask("stackTrace", arguments, _Storm(thread))
        self._flush(forward)

    def _flush(self, forward: list[bytes]) -> None:
        if forward:
            self._to_laptop(b"".join(forward))
            forward.clear()

    def _ask(
        self, command: str, arguments: StackTraceArguments | ScopesArguments | VariablesArguments, storm: _Storm
    ) -> None:
        with self._lock:
            self._seq += 1
            self._pending[self._seq] = (command, storm)
            request: Request = {"seq": self._seq, "type": "request", "command": command, "arguments": arguments}
            self._to_adapter(frame(request))

    def _answered(self, response: Response) -> None:
        command, storm = self._pending.pop(response["request_seq"])
        body = response.get("body") if response.get("success") else None
        answer = body if isinstance(body, dict) else {}
        if command == "stackTrace":
            stack = storm.answers["stackTrace"] = cast(StackTraceResponseBody, answer)
        elif command == "scopes":
            scopes = storm.answers["scopes"] = cast(ScopesResponseBody, answer)
        else:
            storm.answers["variables"] = cast(VariablesResponseBody, answer)
        if body is None:
            storm.answers["error"] = str(response.get("message") or f"{command} failed")
        elif command == "stackTrace" and stack.get("stackFrames"):
            self._ask("scopes", {"frameId": stack["stackFrames"][0].get("id", 0)}, storm)
            return
        elif command == "scopes":
            first = next((s for s in scopes.get("scopes", []) if not s.get("expensive")), None)
            if first is not None:
                arguments: VariablesArguments = {
                    "variablesReference": first.get("variablesReference", 0),
                    "count": VARIABLES_COUNT,
                }
                self._ask("variables", arguments, storm)
                return
        event: Event = {"seq": 0, "type": "event", "event": "tetherStop", "body": storm.answers}
        self._to_laptop(frame(event))
