"""The agent protocol: JSON objects, one per line, over the agent's ssh channel.

Shared by the node agent and the laptop side, so stdlib only (it is shipped to the node), and
types and constants only.

Requests carry an ``id`` and an ``op``; the reply carries the same ``id``. Messages without an
``id`` are events (the agent's ``hello``, later pane output and stats). Version 1 knows:
  hello  (agent -> laptop, first line): protocol, version, python, host, pid, capabilities
  ping   -> pong {time}
  bye    -> bye, then the agent exits
  error  (agent -> laptop): {error}, with the request's id when it had one
Later capabilities (sync, tmux, stats, the debug loop) add their own ops, with their messages'
types in ``protocol_<area>``; an agent that does not know an op answers with an error and keeps going.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypedDict, TypeVar

PROTOCOL_VERSION = 1

# Lines longer than this are refused rather than buffered without end.
MAX_LINE_BYTES = 16 * 1024 * 1024

# The start script sets the user's PYTHONPATH aside under this name: the agent runs on its own and
# hands the user's back to what it starts (tui.node.agent.hand_back_pythonpath).
USER_PYTHONPATH_ENV = "TETHER_USER_PYTHONPATH"

Message = Mapping[str, object]
"""A decoded line whose ``op`` nobody has looked at yet. Where a side dispatches on ``op`` it
casts the message to that op's type; elsewhere messages have their op's own types."""

RequestT = TypeVar("RequestT", bound=Message)
ReplyT = TypeVar("ReplyT", bound="Message | None")


@dataclass(frozen=True)
class Op(Generic[RequestT, ReplyT]):
    """A request's ``op`` name with the types of its request (the fields besides ``id`` and
    ``op``) and of its reply, declared once for both ends."""

    name: str


class NoFields(TypedDict):
    """A request with nothing but its ``id`` and ``op``."""


class Hello(TypedDict):
    op: str  # "hello"
    protocol: int  # PROTOCOL_VERSION
    version: str  # the agent's version (Tether's, plus a hash of its sources)
    python: str  # "3.11.4"
    host: str
    pid: int
    capabilities: list[str]  # the capability modules that loaded ("layout", "stats", ...)


class Pong(TypedDict):
    op: str  # "pong"
    time: float  # the node's clock, Unix seconds


class Bye(TypedDict):
    op: str  # "bye"


class Ok(TypedDict):
    """The reply of an op that has nothing to say but that it was done."""

    op: str  # "ok"


class _ErrorText(TypedDict):
    op: str  # "error"
    error: str


class ErrorReply(_ErrorText, total=False):
    id: int | None  # the request's (null: a request the agent could not read the op of)


PING: Op[NoFields, Pong] = Op("ping")
BYE: Op[NoFields, Bye] = Op("bye")


class MalformedMessage(ValueError):
    """A line that is not a JSON object with an ``op``."""


def encode(message: Message) -> bytes:
    """One message as one line of compact JSON."""
    return (json.dumps(message, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def decode(line: bytes | str) -> Message:
    """Parse one line; raises MalformedMessage with a short reason."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MalformedMessage("not a JSON object")
    if not isinstance(message.get("op"), str):
        raise MalformedMessage("no 'op' field")
    return message
