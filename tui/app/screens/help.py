"""The ``?`` screen: every key the console answers to, with what it does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Label


@dataclass(frozen=True)
class KeyHelp:
    """One row of the help screen."""

    key: str
    description: str
    detail: str = ""


class HelpScreen(ModalScreen[None]):
    """Lists the bindings it is given; the app builds the rows from its live (remappable) keys."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        #help {
            width: 84;
            height: auto;
            max-height: 90%;
            padding: 1 2;
            border: round $primary;
            border-title-color: $text-primary;
            background: $surface;
        }
        #keys {
            layout: grid;
            grid-size: 3;
            grid-columns: 10 28 1fr;
            grid-gutter: 0 1;
            height: auto;
        }
        .key { color: $text-accent; text-style: bold; }
        .detail { color: $text-muted; }
        #hint { margin-top: 1; color: $text-muted; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="help.close"),
        Binding("question_mark", "close", "Close", show=False, key_display="?"),
    ]

    def __init__(self, rows: Sequence[KeyHelp]) -> None:
        super().__init__()
        self._rows = tuple(rows)

    def compose(self) -> ComposeResult:
        with Vertical(id="help") as box:
            box.border_title = "Keys"
            with Grid(id="keys"):
                for row in self._rows:
                    yield Label(row.key, classes="key")
                    yield Label(row.description, classes="description")
                    yield Label(row.detail, classes="detail")
            yield Label("Escape closes this list.", id="hint")

    def action_close(self) -> None:
        self.dismiss(None)
