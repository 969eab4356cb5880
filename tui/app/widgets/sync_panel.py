"""The sync panel: the state of the workspace's mirror on the node, and first-sync progress.

It only shows core events (``SyncStatus``, ``SyncProgress``, ``SyncConflict`` from
tui/sync/status.py); the app routes them here with ``show(event)``. Pausing, resuming and
allowing a halted push's deletes are the engine's methods, bound to keys by the app.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, ProgressBar

from tui.events import SyncConflict, SyncProgress, SyncState, SyncStatus


def describe_status(status: SyncStatus) -> str:
    """``"up to date · last push 4 ms, 1 file, 120 B"``, ``"link lost, 3 changes pending"`` ..."""
    text = status.message.removeprefix("sync: ")
    if status.state in (SyncState.UP_TO_DATE, SyncState.PENDING) and status.last_push_ms is not None:
        files = status.last_push_files or 0
        text += f" · last push {status.last_push_ms:.0f} ms, {files} file{'s' if files != 1 else ''}"
        if status.last_push_bytes is not None:
            text += f", {_size(status.last_push_bytes)}"
    if status.conflicts:
        text += f" · {status.conflicts} conflict cop{'ies' if status.conflicts != 1 else 'y'}"
    return text


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def describe_progress(progress: SyncProgress) -> str:
    text = f"first sync: {progress.files_done}/{progress.files_total} files, {_size(progress.bytes_done)} of {_size(progress.bytes_total)}"
    if progress.rate:
        text += f", {progress.rate}"
    if progress.eta:
        text += f", ETA {progress.eta}"
    return text


class SyncPanel(Vertical):
    """One line of state (coloured by state), a progress bar during a first sync, the last conflict."""

    DEFAULT_CSS = """
    SyncPanel {
        height: auto;
        padding: 0 1;
        #sync-state { width: 100%; text-wrap: nowrap; text-overflow: ellipsis; }
        #sync-progress { display: none; }
        #sync-conflict { display: none; color: $text-warning; }
        &.-progress #sync-progress { display: block; }
        &.-conflict #sync-conflict { display: block; }
        &.-up-to-date #sync-state { color: $text-success; }
        &.-pending #sync-state, &.-pushing #sync-state, &.-scanning #sync-state, &.-waiting #sync-state { color: $text-warning; }
        &.-paused #sync-state { color: $text-muted; }
        &.-halted #sync-state, &.-link-lost #sync-state { color: $text-error; text-style: bold; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Label("sync: starting", id="sync-state")
        yield ProgressBar(total=100, show_eta=False, id="sync-progress")
        yield Label("", id="sync-conflict")

    def show(self, event: object) -> None:
        """Take one sync event; anything else is ignored."""
        if isinstance(event, SyncStatus):
            for state in SyncState:
                self.set_class(state is event.state, "-" + state.name.lower().replace("_", "-"))
            self.query_one("#sync-state", Label).update("sync: " + describe_status(event))
            if event.state is not SyncState.PUSHING:
                self.remove_class("-progress")
        elif isinstance(event, SyncProgress):
            self.add_class("-progress")
            self.query_one("#sync-progress", ProgressBar).update(progress=round(event.fraction * 100))
            self.query_one("#sync-state", Label).update(describe_progress(event))
        elif isinstance(event, SyncConflict):
            self.add_class("-conflict")
            self.query_one("#sync-conflict", Label).update(
                f"conflict: {event.path} edited on the node; kept as {event.copy}"
            )
