"""The app's side of sync: what it reports shown (the panel, a conflict, a halt and its dialog),
pause and resume, and the halt's choices (allow the deletes, keep theirs, rescan)."""

from __future__ import annotations

from textual import work

from tui.app.alerting import Alerting
from tui.app.handlers import while_open
from tui.app.messages import SyncReported
from tui.app.screens import SyncHaltScreen
from tui.app.screens.sync_halt import CHOICE_DELETE, CHOICE_KEEP, CHOICE_RESCAN
from tui.app.widgets import EventLog, LogLine
from tui.app.widgets.sync_panel import SyncPanel
from tui.console_api import ConsoleSession
from tui.events import HALT_FOREIGN, SyncConflict, SyncHaltReport, SyncState, SyncStatus

SYNC_WORKER = "sync-halt"


class SyncHalts(Alerting):
    """Sync's part of ``TetherApp`` (a base of it)."""

    session: ConsoleSession
    hints: dict[str, str]  # action -> the key in force
    sync_state: SyncState | None  # as the sync last reported it
    sync_halt: SyncHaltReport | None  # the halt sync waits on, as last reported

    @while_open
    def on_sync_reported(self, message: SyncReported) -> None:
        event = message.event
        if isinstance(event, SyncHaltReport):
            self.sync_halt = event
            self.refresh_bindings()
            if event.reason == HALT_FOREIGN:  # a first sync into a folder with files of its own asks at once
                self.action_sync_halt()
            else:
                self.notify(
                    f"{event.message}. Press {self.hints['sync_halt']} to allow the deletes or rescan.",
                    title="Sync halted",
                    severity="error",
                    timeout=15,
                )
                self._tell_terminal("Sync halted", event.message)
            return
        self.query_one(SyncPanel).show(event)
        if isinstance(event, SyncStatus):
            self.sync_state = event.state
        if isinstance(event, SyncStatus) and event.state is not SyncState.HALTED and self.sync_halt is not None:
            self.sync_halt = None  # released, or its cause went away
            self.refresh_bindings()
            if isinstance(self.screen, SyncHaltScreen):
                self.screen.dismiss(None)
        if isinstance(event, SyncConflict):
            self.notify(event.message, title="Sync: both versions kept", severity="warning")

    def action_pause_sync(self) -> None:
        self.session.pause_sync()

    def action_resume_sync(self) -> None:
        self.session.resume_sync()

    def action_sync_halt(self) -> None:
        """Show what the halt holds back and ask (the dialog); nothing without a halt."""
        if self.sync_halt is None or isinstance(self.screen, SyncHaltScreen):
            return
        self.push_screen(SyncHaltScreen(self.sync_halt), callback=self._sync_choice)

    def _sync_choice(self, choice: str | None) -> None:
        if choice == CHOICE_DELETE:
            self.action_allow_sync_deletes()
        elif choice == CHOICE_KEEP:
            self.action_keep_sync_theirs()
        elif choice == CHOICE_RESCAN:
            self.action_rescan_sync()

    def action_allow_sync_deletes(self) -> None:
        self.query_one(EventLog).add_line(LogLine("Sync: going on with what the halt held back…"))
        self._sync_control("allow_sync_deletes")

    def action_rescan_sync(self) -> None:
        self.query_one(EventLog).add_line(LogLine("Sync: comparing both trees again…"))
        self._sync_control("rescan_sync")

    def action_keep_sync_theirs(self) -> None:
        self.query_one(EventLog).add_line(LogLine("Sync: moving the node's own files to the backup folder…"))
        self._sync_control("keep_sync_theirs")

    @work(name=SYNC_WORKER, group=SYNC_WORKER, exclusive=False, exit_on_error=False)
    async def _sync_control(self, method: str) -> None:
        await getattr(self.session, method)()
