"""A line of input that remembers what was entered: Up and Down walk back and forth through it.

The debug console's line and the pdb screen's line are both this.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Input

HISTORY = 200  # lines kept


class HistoryInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history(-1)", show=False),
        Binding("down", "history(1)", show=False),
    ]

    def __init__(self, *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id)
        self.history: list[str] = []
        self._position = 0

    def remember(self, text: str) -> None:
        """Keep ``text`` (not twice in a row); the walk starts again after it."""
        if text and (not self.history or self.history[-1] != text):
            self.history = (self.history + [text])[-HISTORY:]
        self._position = len(self.history)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._position = max(0, min(len(self.history), self._position + step))
        self.value = self.history[self._position] if self._position < len(self.history) else ""
        self.cursor_position = len(self.value)
