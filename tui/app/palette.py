"""The command palette's entries: what the console can do now (detach, the run, sync, the debugger,
themes), each the app's own action, so a palette entry and its key do the same."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, runtime_checkable

from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.theme import Theme

from tui.app.bindings import NEW_JOB_ACTION, RECONNECT_ACTION
from tui.app.screens.debugger import DebuggerScreen
from tui.events import HALT_FOREIGN, RunState, SyncHaltReport, SyncState


@runtime_checkable
class PaletteHost(Protocol):
    """What the palette offers, on the app (``TetherApp``; named here so this module needs no app)."""

    run_state: RunState | None
    sync_state: SyncState | None
    sync_halt: SyncHaltReport | None
    tether_themes: dict[str, Theme]

    @property
    def screen_stack(self) -> list[Screen[Any]]: ...
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None: ...
    def action_detach(self) -> None: ...
    def action_down(self) -> None: ...
    def action_attach(self) -> None: ...
    def action_logs(self) -> None: ...
    def action_rebuild(self) -> None: ...
    def action_rescan_sync(self) -> None: ...
    def action_restart_run(self) -> None: ...
    def action_stop_run(self) -> None: ...
    def action_provide_debugpy(self) -> None: ...
    def action_help(self) -> None: ...
    def action_debug(self, rank: int = 0, process: int = 0) -> None: ...
    def action_debug_release(self) -> None: ...
    def copy_debug_address(self, address: str) -> None: ...
    def action_resume_sync(self) -> None: ...
    def action_pause_sync(self) -> None: ...
    def action_reconnect_now(self) -> None: ...
    def action_sync_halt(self) -> None: ...
    def action_allow_sync_deletes(self) -> None: ...
    def action_keep_sync_theirs(self) -> None: ...
    def action_allocate_again(self) -> None: ...
    def action_cycle_theme(self) -> None: ...
    def switch_theme(self, name: str) -> None: ...


class TetherCommands(Provider):
    """Command palette entries for what the console can do (detach, themes, help)."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        assert isinstance(app, PaletteHost)
        commands: list[tuple[str, str, Callable[[], object]]] = [
            ("Detach", "Leave the console; the run keeps going on the node", app.action_detach),
            ("Down", "Stop the run, the tmux session and the job, and leave (asks first)", app.action_down),
            ("Attach tmux", "Suspend the console and attach the tmux session on the node", app.action_attach),
            ("Logs", "Page through the run's whole output, kept on the node", app.action_logs),
            (
                "Rebuild the tmux layout",
                "Kill the tmux session and the run, and lay it out again (asks first)",
                app.action_rebuild,
            ),
            ("Sync now", "Compare both trees and send what differs", app.action_rescan_sync),
            (
                "Restart the run",
                "Restart the debuggee on the node (like Ctrl-C in the run pane)",
                app.action_restart_run,
            ),
            ("Stop the run", "Stop the debuggee; r starts it again", app.action_stop_run),
            (
                "Make debugpy available",
                "Copy Tether's own debugpy to the node (works offline) and restart the run",
                app.action_provide_debugpy,
            ),
            ("Help: keys", "Show every key and what it does", app.action_help),
        ]
        # the screen the palette was opened on (the palette is a screen of its own above it)
        shown = next((s for s in reversed(app.screen_stack) if not isinstance(s, CommandPalette)), None)
        if isinstance(shown, DebuggerScreen):
            commands += shown.palette_commands()
        if app.check_action("debug", ()):
            commands.append(
                ("Debugger: open", "Breakpoints, stack, variables and a console for the run", app.action_debug)
            )
            commands.append(
                (
                    "Debugger: let go",
                    "Detach the console's debugger (the run goes on); VS Code can attach then",
                    app.action_debug_release,
                )
            )
        for rank in app.run_state.ranks if app.run_state else ():
            if rank.local_port:
                address = f"127.0.0.1:{rank.local_port}"
                commands.append(
                    (
                        f"Copy debug address: {address} (rank {rank.rank})",
                        "For a debugger on this machine (VS Code's launch.json has it too)",
                        partial(app.copy_debug_address, address),
                    )
                )
        if app.sync_state is SyncState.PAUSED:
            commands.append(
                ("Sync: resume", "Send the edits made while sync was paused, and go on", app.action_resume_sync)
            )
        elif app.sync_state is not None:
            commands.append(
                ("Sync: pause", "Keep edits on the laptop until you resume (they are not lost)", app.action_pause_sync)
            )
        if app.check_action(RECONNECT_ACTION, ()):
            commands.append(
                ("Reconnect now", "The link waits before its next try: try again at once", app.action_reconnect_now)
            )
        if app.sync_halt is not None:
            commands += [
                ("Sync halt: show it", "What the halt holds back, and the choices", app.action_sync_halt),
                (
                    "Sync: allow the deletes",
                    "Release the sync halt: do what it held back",
                    app.action_allow_sync_deletes,
                ),
                (
                    "Sync: rescan and resume",
                    "Compare both trees again; go on if the cause is gone",
                    app.action_rescan_sync,
                ),
            ]
            if app.sync_halt.reason == HALT_FOREIGN:
                commands.append(
                    (
                        "Sync: keep theirs",
                        "Move the node's own files to .tether-backup/<date>/, then go on",
                        app.action_keep_sync_theirs,
                    )
                )
        if app.check_action(NEW_JOB_ACTION, ()):
            commands.append(
                (
                    "New job",
                    "The job has ended: ask the scheduler for a new one and reconnect",
                    app.action_allocate_again,
                )
            )
        commands.append(("Switch theme: the next one", "Tether's next theme (as t does)", app.action_cycle_theme))
        for name in app.tether_themes:
            commands.append((f"Switch theme: {name}", f"Use Tether's {name} theme", partial(app.switch_theme, name)))
        return commands

    async def discover(self) -> Hits:
        for text, help_text, command in self._commands():
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, command in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)
