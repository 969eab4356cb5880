"""The run's output: the tail the agent streams (only new lines cross the link), with scrollback.

The whole output stays in the rotated log on the node; ``l`` pages through it (``LogsScreen``).
"""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widgets import RichLog

from tui.events import OutputLines


class OutputPanel(RichLog):
    """Shows ``OutputLines``; a ``history`` event (after a (re)attach) replaces what is shown."""

    DEFAULT_CSS = """
    OutputPanel {
        padding: 0 1;
        overflow-x: hidden;
        overflow-y: auto;
    }
    """

    SCROLLBACK = 5000
    """Lines kept in the console; older ones are still in the node's log (the logs screen)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, max_lines=self.SCROLLBACK, id=id)
        self.border_title = "Run output"
        self.add_class("panel")  # the frame all panels share (app.tcss)
        self._lines: deque[str] = deque(maxlen=self.SCROLLBACK)

    @property
    def lines_text(self) -> list[str]:
        """The lines shown, oldest first (plain text, for tests and screen readers)."""
        return list(self._lines)

    def show(self, output: OutputLines) -> None:
        if output.history:
            self.clear()
            self._lines.clear()
        for line in output.lines:
            self._lines.append(line)
            self.write(Text(line))
