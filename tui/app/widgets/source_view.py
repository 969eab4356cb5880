"""The debugger's source view: the laptop's copy of a file with syntax colours, a cursor line,
the line the debuggee stopped on, and the breakpoints in the gutter.

The file shown is the local one: sync keeps it identical to the node's, and the user edits it.
Lines are drawn one at a time (Textual's line API), so a file of any length costs one screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

GUTTER_MARKS = {"plain": "●", "condition": "◆", "hits": "◆", "log": "◇"}
UNVERIFIED = "○"


@dataclass(frozen=True)
class GutterMark:
    kind: str  # "plain", "condition", "hits", "log"
    verified: bool = True


class SourceView(ScrollView, can_focus=True):
    """One file, read-only; the cursor picks the line that F9 acts on."""

    DEFAULT_CSS = """
    SourceView { background: $surface; }
    SourceView > .source--cursor { background: $boost; }
    SourceView > .source--current { background: $warning 25%; }
    SourceView > .source--gutter { color: $text-muted; }
    SourceView > .source--breakpoint { color: $error; }
    SourceView > .source--arrow { color: $warning; text-style: bold; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "source--cursor",
        "source--current",
        "source--gutter",
        "source--breakpoint",
        "source--arrow",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", show=False),
        Binding("down", "cursor(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", "edge(0)", show=False),
        Binding("end", "edge(1)", show=False),
    ]

    cursor_line: reactive[int] = reactive(1)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.path: Path | None = None
        self._lines: list[Text] = []
        self.current_line: int | None = None
        self.marks: dict[int, GutterMark] = {}

    # -- content ------------------------------------------------------------------------------

    def show_file(self, path: Path | None, text: str, *, dark: bool = True) -> None:
        if path != self.path or len(text.splitlines()) != len(self._lines):
            self.path = path
            lexer = Syntax.guess_lexer(str(path or "x.py"), text)
            syntax = Syntax(text, lexer, theme="ansi_dark" if dark else "ansi_light")
            self._lines = list(syntax.highlight(text).split("\n", allow_blank=True))
            if self._lines and not self._lines[-1].plain and text.endswith("\n"):
                self._lines.pop()
            width = max((line.cell_len for line in self._lines), default=0)
            self.virtual_size = Size(width + self._gutter_width(), len(self._lines))
        self.refresh()

    def show_message(self, text: str) -> None:
        """No file to show (a frame in a library only the node has): say so instead."""
        self.path = None
        self._lines = [Text(text, style="italic")]
        self.current_line = None
        self.virtual_size = Size(len(text) + self._gutter_width(), 1)
        self.refresh()

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def line_text(self, line: int) -> str:
        return self._lines[line - 1].plain if 1 <= line <= len(self._lines) else ""

    def set_current(self, line: int | None) -> None:
        """The line the debuggee stopped on (None: it runs); the cursor goes there."""
        self.current_line = line
        if line is not None:
            self.cursor_line = line
            self.scroll_to(y=max(0, line - 1 - self.size.height // 3), animate=False)
        self.refresh()

    def set_marks(self, marks: dict[int, GutterMark]) -> None:
        self.marks = dict(marks)
        self.refresh()

    # -- keys ---------------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        self.cursor_line = max(1, min(self.line_count or 1, self.cursor_line + delta))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.size.height - 1))

    def action_edge(self, end: int) -> None:
        self.cursor_line = self.line_count if end else 1

    def watch_cursor_line(self, line: int) -> None:
        top, height = int(self.scroll_offset.y), self.size.height
        if height and line - 1 < top:
            self.scroll_to(y=line - 1, animate=False)
        elif height and line - 1 >= top + height:
            self.scroll_to(y=line - height, animate=False)
        self.refresh()

    # -- drawing ------------------------------------------------------------------------------

    def _gutter_width(self) -> int:
        return 2 + len(str(max(1, len(self._lines)))) + 1  # mark, arrow, number, space

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        number = y + int(scroll_y) + 1
        width = self.size.width
        if number > len(self._lines):
            return Strip.blank(width, self.rich_style)
        gutter = self._gutter(number)
        code = self._lines[number - 1].copy()
        base = self.rich_style
        if number == self.current_line:
            base = base + self.get_component_rich_style("source--current")
        elif number == self.cursor_line and self.has_focus:
            base = base + self.get_component_rich_style("source--cursor")
        code.stylize_before(base)
        segments = list(code.render(self.app.console))
        code_strip = Strip(segments).crop(int(scroll_x), int(scroll_x) + max(0, width - gutter.cell_length))
        line = Strip.join([gutter, code_strip]).extend_cell_length(width, base).crop(0, width)
        return line.simplify()

    def _gutter(self, number: int) -> Strip:
        gutter_style = self.get_component_rich_style("source--gutter")
        mark = self.marks.get(number)
        segments: list[Segment] = []
        if mark is None:
            segments.append(Segment(" ", gutter_style))
        else:
            symbol = GUTTER_MARKS.get(mark.kind, "●") if mark.verified else UNVERIFIED
            segments.append(Segment(symbol, self.get_component_rich_style("source--breakpoint")))
        arrow = "▶" if number == self.current_line else " "
        segments.append(Segment(arrow, self.get_component_rich_style("source--arrow")))
        digits = len(str(max(1, len(self._lines))))
        style = gutter_style + Style(bold=True) if number == self.cursor_line else gutter_style
        segments.append(Segment(f"{number:>{digits}} ", style))
        return Strip(segments)
