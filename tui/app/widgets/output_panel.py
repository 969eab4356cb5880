"""The run's output: the tail the agent streams (only new lines cross the link), with scrollback.

The whole output stays in the rotated log on the node; ``l`` pages through it (``LogsScreen``).
"""

from __future__ import annotations

import re
from collections import deque

from rich.text import Text
from textual import events
from textual.widgets import RichLog

from tui.events import OutputLines

# The debug loop's first line (tui/node/loop.py says it when it starts, not on a restart): the log
# on the node is kept across `tether down`, so a replay can hold the end of an earlier run before it.
RUN_STARTS = re.compile(r"^tether: starting ")
NEW_RUN = "──── a new run starts here; the lines above are an earlier run's ────"


class OutputPanel(RichLog):
    """Shows ``OutputLines``; a ``history`` event (after a (re)attach) replaces what is shown.

    A line wider than the panel is folded at spaces (``fold``), or kept whole and reached by
    scrolling sideways (the arrows once the panel has the focus, or shift and the wheel)."""

    DEFAULT_CSS = """
    OutputPanel {
        padding: 0 1;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-gutter: stable;  /* the width lines fold at stays put when the scrollbar comes */
    }
    """

    SCROLLBACK = 5000
    """Lines kept in the console; older ones are still in the node's log (the logs screen)."""

    def __init__(self, *, fold: bool = True, id: str | None = None) -> None:
        # min_width 1: RichLog renders at least 78 wide by default, which a narrow panel cuts off.
        super().__init__(wrap=fold, markup=False, highlight=False, max_lines=self.SCROLLBACK, min_width=1, id=id)
        self.fold = fold
        if not fold:
            self.styles.overflow_x = "auto"
        self.border_title = "Run output"
        self.add_class("panel")  # the frame all panels share (app.tcss)
        self._lines: deque[tuple[str, str]] = deque(maxlen=self.SCROLLBACK)  # (text, style)
        self._folded_at = 0  # the width the lines shown were folded at

    @property
    def lines_text(self) -> list[str]:
        """The lines shown, oldest first (plain text, for tests and screen readers)."""
        return [text for text, _style in self._lines]

    def show(self, output: OutputLines) -> None:
        if output.history:
            self.clear()
            self._lines.clear()
        starts = {i for i, line in enumerate(output.lines) if RUN_STARTS.match(line)}
        # Of a replayed log, what came before the last start belongs to earlier runs: dimmed.
        current = max(starts) if output.history and starts else 0
        for i, line in enumerate(output.lines):
            if i in starts and self._lines:
                self._append(NEW_RUN, "bold")
            self._append(line, "dim" if i < current else "")

    def _append(self, line: str, style: str) -> None:
        self._lines.append((line, style))
        self.write(Text(line, style=style))

    def on_resize(self, event: events.Resize) -> None:
        # RichLog keeps lines as folded when written: fold them again at the new width.
        width = self.scrollable_content_region.width
        if self.fold and self._folded_at and width != self._folded_at and self._lines:
            super().clear()
            for line, style in self._lines:
                self.write(Text(line, style=style))
        self._folded_at = width
