"""The contract between the console (Textual) and the core session it shows.

The app depends only on this protocol, so UI tests can drive it with a scripted session and the
real ``tui.session.Session`` can evolve without touching widgets.
"""

from __future__ import annotations

from typing import Protocol

from tui.events import EventSink


class ConsoleSession(Protocol):
    """What the console needs from a workspace session."""

    @property
    def title(self) -> str:
        """The workspace name shown in the header."""

    @property
    def chain(self) -> tuple[str, ...]:
        """The hops from the laptop to the node, e.g. ("login", "compute01")."""

    async def run(self, sink: EventSink) -> None:
        """Connect and supervise the link until cancelled, reporting events to ``sink``."""

    async def detach(self) -> None:
        """Leave the console: everything on the node keeps running."""

    def answer_prompt(self, answer: str | None) -> None:
        """Reply to a PasswordPrompt event (None cancels)."""
