"""A scripted ``ConsoleSession`` for UI tests ONLY.

``ScriptedSession`` connects to nothing: the test decides which core events the console receives
and when. It exists so pilot and snapshot tests can check what the console *shows*. The real
session (ssh, the link supervisor, the node agent) is tested against a real sshd elsewhere; do not
use this stand-in to test core behaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from tui.events import EventSink


class ScriptedSession:
    """Implements ``tui.console_api.ConsoleSession``; the test emits events through it.

    Controls:
        ``initial_events``: emitted as soon as the console starts ``run``.
        ``emit(event)``: send one event to the console (from any thread, like the real core).
        ``fail_with``: ``run`` raises this after the initial events (tests the error path).
        ``detach_error``: ``detach`` raises this.
        ``allocate_error``: ``allocate_again`` raises this.
    Records: ``detach_calls``, ``answers`` (every ``answer_prompt`` value), ``cancelled``,
    ``allocate_calls``, ``calls`` (down, pause_sync, resume_sync, rebuild_layout, rescan_sync).
    """

    def __init__(
        self,
        title: str = "demo-workspace",
        chain: tuple[str, ...] = ("login", "compute01"),
        initial_events: Iterable[object] = (),
        fail_with: BaseException | None = None,
        detach_error: BaseException | None = None,
        allocate_error: BaseException | None = None,
    ) -> None:
        self._title = title
        self._chain = chain
        self._initial_events = tuple(initial_events)
        self._fail_with = fail_with
        self._detach_error = detach_error
        self._allocate_error = allocate_error
        self.allocate_calls = 0
        self._sink: EventSink | None = None
        self.running = asyncio.Event()
        self.detach_calls = 0
        self.answers: list[str | None] = []
        self.cancelled = False
        self.calls: list[str] = []  # the console's commands, in order

    @property
    def title(self) -> str:
        return self._title

    @property
    def chain(self) -> tuple[str, ...]:
        return self._chain

    async def run(self, sink: EventSink) -> None:
        self._sink = sink
        for event in self._initial_events:
            sink(event)
        self.running.set()
        if self._fail_with is not None:
            raise self._fail_with
        try:
            await asyncio.Event().wait()  # supervise "forever", like the real link supervisor
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def detach(self) -> None:
        self.detach_calls += 1
        if self._detach_error is not None:
            raise self._detach_error

    async def allocate_again(self) -> None:
        self.allocate_calls += 1
        if self._allocate_error is not None:
            raise self._allocate_error

    def answer_prompt(self, answer: str | None) -> None:
        self.answers.append(answer)

    async def down(self, sink: EventSink) -> list[str]:
        self.calls.append("down")
        return ["the run", "tmux session tether-demo"]

    def pause_sync(self) -> None:
        self.calls.append("pause_sync")

    def resume_sync(self) -> None:
        self.calls.append("resume_sync")

    async def rebuild_layout(self) -> None:
        self.calls.append("rebuild_layout")

    async def rescan_sync(self) -> None:
        self.calls.append("rescan_sync")

    def emit(self, event: object) -> None:
        """Send ``event`` to the console, as the core would."""
        if self._sink is None:
            raise RuntimeError("the console has not started session.run yet; await wait_running()")
        self._sink(event)

    async def wait_running(self, timeout: float = 5.0) -> None:
        """Wait (with a deadline) until the console has started ``run``."""
        await asyncio.wait_for(self.running.wait(), timeout)
