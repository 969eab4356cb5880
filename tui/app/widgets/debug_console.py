"""The debugger's console line: Enter evaluates in the picked frame, Up/Down walk the history, Tab
completes from the debuggee's own names. What it evaluates with comes from the screen (``connect``),
like the variables tree's fetches: the line knows no debugger, only the log it answers in.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.widgets import Input, RichLog

from tui.app.widgets.history_input import HistoryInput
from tui.dap_model import Completion, EvalResult, cap

Evaluate = Callable[[str], Awaitable[EvalResult]]  # a repl line, in the frame shown
Complete = Callable[[str, int], Awaitable[list[Completion]]]  # (text, column: 1-based, as DAP counts)


class ConsoleInput(HistoryInput):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("tab", "complete", "Complete", show=False)]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder="evaluate in the frame (Tab completes, ↑ history)", id=id)
        self._log: RichLog | None = None
        self._evaluate_in_frame: Evaluate | None = None
        self._complete_in_frame: Complete | None = None

    def connect(self, log: RichLog, evaluate: Evaluate, complete: Complete) -> None:
        self._log, self._evaluate_in_frame, self._complete_in_frame = log, evaluate, complete

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.value = ""
        if text:
            self.remember(text)
            self._evaluate(text)

    @work(group="console")
    async def _evaluate(self, text: str) -> None:
        log, evaluate = self._log, self._evaluate_in_frame
        if log is None or evaluate is None:
            return
        log.write(Text(f"> {text}", style="bold"))
        try:
            result = await evaluate(text)
        except Exception as exc:  # noqa: BLE001 - the adapter's words, where the user typed
            log.write(Text(cap(str(exc), 2000), style="red"))
            return
        log.write(cap(result.result, 2000) if result.result else "")

    def action_complete(self) -> None:
        self._complete(self.value, self.cursor_position)

    @work(group="console", exclusive=True)
    async def _complete(self, text: str, cursor: int) -> None:
        if self._complete_in_frame is None:
            return
        try:
            found = await self._complete_in_frame(text, cursor + 1)
        except Exception:  # noqa: BLE001 - nothing to complete with
            return
        if not found:
            return
        word = _last_word(text[:cursor])
        start = cursor - len(word)
        # debugpy matches without regard to case: the names with the typed case come first
        names = [c.text or c.label for c in found]
        exact = [name for name in names if name.startswith(word)] or names
        common = os.path.commonprefix(exact)
        if len(exact) > 1 and self._log is not None:
            self._log.write(Text("  ".join(exact[:40]), style="dim"))
        if len(common) > len(word):
            self.value = text[:start] + common + text[cursor:]
            self.cursor_position = start + len(common)


def _last_word(text: str) -> str:
    word = ""
    for char in reversed(text):
        if not (char.isalnum() or char == "_"):
            break
        word = char + word
    return word
