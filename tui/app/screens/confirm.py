"""A yes/no question before an action that ends something on the node (the run, the job).

Cancel is the default (Enter on the focused Cancel, or Escape); the action's own button says what
it does. Dismisses with True only when the user chose the action.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
        #confirm-box {
            width: 72;
            max-width: 95%;
            height: auto;
            padding: 1 2;
            border: round $warning;
            border-title-color: $text-warning;
            background: $surface;
        }
        #confirm-buttons { height: auto; margin-top: 1; }
        #confirm-buttons Button { margin-right: 2; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="confirm.cancel")]

    def __init__(self, title: str, question: str, action_label: str) -> None:
        super().__init__()
        self.title_text, self.question, self.action_label = title, question, action_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            box.border_title = self.title_text
            yield Label(self.question, id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button("Cancel", id="confirm-cancel", variant="primary")
                yield Button(self.action_label, id="confirm-do", variant="error")

    def on_mount(self) -> None:
        self.query_one("#confirm-cancel", Button).focus()  # the safe choice is the default

    @on(Button.Pressed, "#confirm-do")
    def _do(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#confirm-cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)
