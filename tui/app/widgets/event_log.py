"""The body placeholder: a log of Notice and Progress events, newest last.

Dashboards will replace it; until then it is how the user sees what the core is doing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from rich.style import Style
from rich.text import Text
from textual.color import Color, ColorParseError
from textual.theme import Theme
from textual.widgets import RichLog

from tui.events import Notice, Progress

Level = Literal["info", "progress", "warning", "error"]

_LEVEL_VARIABLES: dict[Level, str] = {
    "info": "foreground",
    "progress": "text-primary",
    "warning": "text-warning",
    "error": "text-error",
}
"""Which theme variable colours each level, so lines follow the theme."""


@dataclass(frozen=True)
class LogLine:
    """One line of the log, kept as data so it can be redrawn in another theme."""

    text: str
    level: Level = "info"


def format_notice(notice: Notice) -> LogLine:
    """A Notice as a log line; warnings and errors say so in words, not only in colour."""
    level: Level = notice.level if notice.level in ("warning", "error") else "info"  # type: ignore[assignment]
    prefix = "" if level == "info" else f"{level}: "
    return LogLine(prefix + notice.message, level)


def format_progress(progress: Progress) -> LogLine:
    """``Progress("sync", "first sync", 0.4)`` -> ``"sync: first sync 40%"``."""
    text = f"{progress.task}: {progress.message}"
    if progress.fraction is not None:
        percent = round(min(max(progress.fraction, 0.0), 1.0) * 100)
        text = f"{text} {percent}%"
    return LogLine(text, "progress")


def _style_for(colour: str) -> Style:
    # A theme may set a variable to something Rich cannot draw (an ANSI default); plain text then.
    try:
        return Style(color=Color.parse(colour).rich_color)
    except ColorParseError:
        return Style()


class EventLog(RichLog):
    """A scrolling log of what the core reports."""

    DEFAULT_CSS = """
    EventLog {
        padding: 0 1;
        overflow-y: auto;
    }
    """

    MAX_LINES = 1000
    """Older lines are dropped: the log is a view, not a record (the core keeps its own logs)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(wrap=True, markup=False, highlight=False, max_lines=self.MAX_LINES, id=id)
        self.border_title = "Events"
        self.add_class("panel")  # the frame all panels share (app.tcss)
        self._lines: deque[LogLine] = deque(maxlen=self.MAX_LINES)
        self._styles: dict[Level, Style] = {}

    def on_mount(self) -> None:
        # RichLog bakes colours into its lines when written, so a theme switch redraws them.
        self.app.theme_changed_signal.subscribe(self, self._redraw)

    @property
    def lines_text(self) -> list[str]:
        """The log's lines as plain text, oldest first."""
        return [line.text for line in self._lines]

    def add_notice(self, notice: Notice) -> None:
        self.add_line(format_notice(notice))

    def add_progress(self, progress: Progress) -> None:
        self.add_line(format_progress(progress))

    def add_line(self, line: LogLine) -> None:
        self._lines.append(line)
        self.write(self._styled(line))

    def _styled(self, line: LogLine) -> Text:
        if not self._styles:
            variables = self.app.get_css_variables()
            self._styles = {level: _style_for(variables.get(name, "")) for level, name in _LEVEL_VARIABLES.items()}
        return Text(line.text, style=self._styles[line.level])

    def _redraw(self, _theme: Theme) -> None:
        self._styles = {}
        self.clear()
        for line in self._lines:
            self.write(self._styled(line))
