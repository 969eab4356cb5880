"""The dialog for a sync halt: what would go, and the user's choice.

A halt on the node's own files (HALT_FOREIGN: files Tether did not write that the sync would
delete or replace) offers "Delete them", "Keep theirs" (moved to a dated backup folder in the
remote root) and Cancel; the emptied-root halt (HALT_DELETES) offers "Allow the deletes",
"Rescan and resume" and Cancel. It dismisses with the choice (one of the CHOICE_* names) or None.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from tui.events import HALT_FOREIGN, SyncHaltReport

CHOICE_DELETE = "delete"  # let the deletes (and replacements) happen
CHOICE_KEEP = "keep"  # move the node's own files to the backup folder, then go on
CHOICE_RESCAN = "rescan"  # compare both trees again; go on if nothing holds any more
SHOWN_PATHS = 12


class SyncHaltScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    SyncHaltScreen {
        align: center middle;
        #halt-box {
            width: 84;
            max-height: 90%;
            height: auto;
            padding: 1 2;
            border: round $error;
            border-title-color: $text-error;
            background: $surface;
        }
        #halt-paths { margin: 1 0; color: $text-warning; }
        #halt-fix { color: $text-muted; }
        #halt-buttons { height: auto; margin-top: 1; }
        #halt-buttons Button { margin-right: 2; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="sync_halt.cancel")]

    def __init__(self, report: SyncHaltReport) -> None:
        super().__init__()
        self.report = report

    def compose(self) -> ComposeResult:
        report = self.report
        foreign = report.reason == HALT_FOREIGN
        with Vertical(id="halt-box") as box:
            box.border_title = "Sync halted"
            if foreign:
                yield Label(
                    f"{report.total} file{'s' if report.total != 1 else ''} on the node were not written by "
                    "Tether, and this sync would delete or replace them:",
                    id="halt-message",
                )
                shown = list(report.paths[:SHOWN_PATHS])
                if len(report.paths) > SHOWN_PATHS:
                    shown.append(f"… and {len(report.paths) - SHOWN_PATHS} more")
                yield Label("\n".join("  " + path for path in shown), id="halt-paths")
                yield Label(
                    "Keep theirs moves them to .tether-backup/<date>/ in the remote root (sync leaves "
                    "that folder alone).",
                    id="halt-fix",
                )
            else:
                yield Label(report.message, id="halt-message")
                yield Label(
                    "Rescan compares both trees again and goes on if the cause is gone (a folder put back).",
                    id="halt-fix",
                )
            with Horizontal(id="halt-buttons"):
                if foreign:
                    yield Button("Keep theirs", id=CHOICE_KEEP, variant="primary")
                    yield Button("Delete them", id=CHOICE_DELETE, variant="error")
                else:
                    yield Button("Rescan and resume", id=CHOICE_RESCAN, variant="primary")
                    yield Button("Allow the deletes", id=CHOICE_DELETE, variant="error")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Button).focus()  # the safe choice first

    @on(Button.Pressed)
    def _chosen(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
