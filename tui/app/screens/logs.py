"""``l``: the run's whole output, paged on demand from the rotated log on the node.

Nothing is fetched until the screen opens; each ``pageup`` at the top asks the node for the page
before the oldest one shown, so a long log never crosses the link as a whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Label, RichLog

from tui.app.widgets.footer import FittingFooter
from tui.events import OutputPage

PageFetcher = Callable[[int | None, int], Awaitable[OutputPage]]
PAGE_LINES = 200


class LogsScreen(Screen[None]):
    """Pages of the node's run log, newest first; ``o`` loads the page before."""

    DEFAULT_CSS = """
    LogsScreen {
        #logs-status { height: 1; padding: 0 1; color: $text-muted; background: $panel; }
        #logs-body { height: 1fr; border: round $primary 50%; background: $surface; padding: 0 1; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,l", "close", "Back to the dashboard", id="tether.logs.close"),
        Binding("o", "older", "Older page", id="tether.logs.older"),
    ]

    def __init__(self, fetch: PageFetcher, page_lines: int = PAGE_LINES) -> None:
        super().__init__()
        self._fetch = fetch
        self._page_lines = page_lines
        self._pages: list[OutputPage] = []  # oldest first

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("loading the run's log from the node…", id="logs-status")
            yield RichLog(id="logs-body", wrap=False, markup=False, highlight=False)
        yield FittingFooter()

    def on_mount(self) -> None:
        self.load_page(None)

    @property
    def lines_text(self) -> list[str]:
        return [line for page in self._pages for line in page.lines]

    def action_close(self) -> None:
        self.dismiss(None)

    def action_older(self) -> None:
        if self._pages and self._pages[0].start > 0:
            self.load_page(self._pages[0].start)

    @work(exclusive=True, exit_on_error=False)
    async def load_page(self, before: int | None) -> None:
        status = self.query_one("#logs-status", Label)
        try:
            page = await self._fetch(before, self._page_lines)
        except Exception as exc:  # noqa: BLE001 - shown, the console stays
            status.update(f"could not read the log: {exc}")
            return
        self._pages.insert(0, page)
        body = self.query_one(RichLog)
        body.clear()
        for line in self.lines_text:
            body.write(Text(line))
        if before is not None:
            body.scroll_home(animate=False)
        shown = sum(len(p.lines) for p in self._pages)
        more = "o: older page, " if page.start > 0 else "the start of the log, "
        status.update(f"{shown} lines of {page.total / 1024:.0f} KiB on the node; {more}escape: back")
