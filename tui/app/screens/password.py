"""A modal that asks for what ssh asks for (password, one-time code) without showing it."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from tui.events import PasswordPrompt


class PasswordScreen(ModalScreen[str | None]):
    """Dismisses with the typed text on Enter, or None on Escape (the session then cancels)."""

    DEFAULT_CSS = """
    PasswordScreen {
        align: center middle;
        #password-box {
            width: 64;
            height: auto;
            padding: 1 2;
            border: round $warning;
            border-title-color: $text-warning;
            background: $surface;
        }
        #prompt { margin-bottom: 1; }
        #hint { margin-top: 1; color: $text-muted; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="password.cancel"),
    ]

    def __init__(self, prompt: PasswordPrompt) -> None:
        super().__init__()
        self._prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(id="password-box") as box:
            box.border_title = f"ssh: {self._prompt.host}"
            yield Label(self._prompt.prompt, id="prompt")
            # echo=True is for codes that are safe to show (some sites' OTP prompts ask for it).
            yield Input(password=not self._prompt.echo, id="secret")
            yield Label("Enter answers · Escape cancels", id="hint")

    def on_mount(self) -> None:
        self.query_one("#secret", Input).focus()

    @on(Input.Submitted, "#secret")
    def _answer(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
