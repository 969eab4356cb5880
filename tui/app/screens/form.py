"""A small modal form: a few text fields, Enter to accept, Escape to cancel.

For what the debugger asks in words: a breakpoint's condition, hit count and log message, or a
watch expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


@dataclass(frozen=True)
class Field:
    label: str
    value: str = ""
    placeholder: str = ""


class FormScreen(ModalScreen[list[str] | None]):
    """Returns the fields' texts in order, or None when cancelled."""

    DEFAULT_CSS = """
    FormScreen { align: center middle; }
    FormScreen > Vertical {
        width: 72; max-width: 100%; height: auto; padding: 1 2;
        border: round $accent; background: $panel;
    }
    FormScreen Label { margin-top: 1; }
    FormScreen .form--help { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, fields: list[Field], help_text: str = "") -> None:
        super().__init__()
        self.form_title = title
        self.fields = fields
        self.help_text = help_text

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.form_title
            if self.help_text:
                yield Label(self.help_text, classes="form--help")
            for index, item in enumerate(self.fields):
                yield Label(item.label)
                yield Input(item.value, placeholder=item.placeholder, id=f"form-field-{index}")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss([self.query_one(f"#form-field-{i}", Input).value for i in range(len(self.fields))])

    def action_cancel(self) -> None:
        self.dismiss(None)
