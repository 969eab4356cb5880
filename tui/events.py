"""Events the core emits, as small frozen dataclasses.

The core never imports Textual: every subsystem reports through an ``EventSink`` (a plain callable),
and the console wraps what it receives into Textual messages. The CLI prints them instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable


class LinkState(enum.Enum):
    """What the link supervisor knows about the connection to the login host and the node."""

    CONNECTING = "connecting"
    UP = "up"
    LOST = "lost"
    RECONNECTING = "reconnecting"
    NEEDS_PASSWORD = "needs password"
    CLOSED = "closed"


@dataclass(frozen=True)
class LinkChanged:
    """The link moved to ``state``; ``rtt_ms`` is the last measured round trip while up."""

    state: LinkState
    rtt_ms: float | None = None
    detail: str = ""
    attempt: int = 0


@dataclass(frozen=True)
class Progress:
    """A step of long work (connecting, allocating, shipping the agent) with an optional fraction."""

    task: str
    message: str
    fraction: float | None = None


@dataclass(frozen=True)
class Notice:
    """Something the user should read: ``level`` is "info", "warning" or "error"."""

    message: str
    level: str = "info"


EventSink = Callable[[object], None]


def ignore_events(event: object) -> None:
    """An EventSink for callers that do not care."""


@dataclass(frozen=True)
class PasswordPrompt:
    """ssh asks for a secret (password, one-time code); answer with ``ConsoleSession.answer_prompt``."""

    prompt: str
    host: str
    echo: bool = False
