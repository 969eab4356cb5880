"""The app's side of the debugger: a stop shown (from the dashboard straight to the debugger
screen, elsewhere a notification), ``b`` (the debugger, or pdb where breakpoint() waits in it),
letting the debugger go, a rank's debug address copied."""

from __future__ import annotations

from functools import partial

from textual import work

from tui.app.alerting import Alerting
from tui.app.handlers import while_open
from tui.app.messages import DebugUpdated
from tui.app.screens.debugger import DebuggerScreen
from tui.app.screens.pdb import PdbScreen
from tui.console_api import ConsoleDebugGroup, ConsoleSession
from tui.events import DebuggerWaiting, DebugOutput, DebugStatus, DebugView, RunState


class DebuggerGlue(Alerting):
    """The debugger's part of ``TetherApp`` (a base of it)."""

    session: ConsoleSession
    hints: dict[str, str]  # action -> the key in force
    run_state: RunState | None  # the ranks, as last reported
    _debug_stops: dict[tuple[int, int], object]  # per process, the stop last shown (each opens once)

    def _say_debugger_waiting(self, event: DebuggerWaiting) -> None:
        where = f"127.0.0.1:{event.local_port}" if event.local_port else "the rank's debug port"
        how = f"press {self.hints['debug']} for its pdb" if event.pdb else f"attach to {where}"
        self.notify(
            f"waiting for debugger at {event.where} (rank {event.rank}; {how})",
            title="breakpoint()",
            severity="warning",
            timeout=30,
        )
        self._tell_terminal("breakpoint()", f"waiting for debugger at {event.where} (rank {event.rank})")

    @while_open
    def on_debug_updated(self, message: DebugUpdated) -> None:
        event = message.event
        screen = next((s for s in self.screen_stack if isinstance(s, DebuggerScreen)), None)
        if isinstance(event, DebugOutput):
            if screen is not None:
                screen.show_output(event)
            return
        stopped_anew = event.status is DebugStatus.STOPPED and event.stop is not self._debug_stops.get(event.key)
        self._debug_stops[event.key] = event.stop
        if screen is not None:
            screen.show(event)
        if stopped_anew and screen is not self.screen:
            self._debug_stopped(event)

    def _debug_stopped(self, view: DebugView) -> None:
        """A breakpoint hit: from the dashboard straight to the debugger; elsewhere (logs, a
        dialog) a notification, since the user is in the middle of something."""
        where = view.stop.top.where if view.stop and view.stop.top else "?"
        reason = view.stop.reason if view.stop else "stopped"
        if len(self.screen_stack) == 1:
            self.action_debug(view.rank, view.process)
            return
        self.notify(
            f"{view.label or f'rank {view.rank}'} stopped ({reason}) at {where}: press {self.hints['debug']} on the dashboard",
            title="Debugger",
            severity="warning",
            timeout=30,
        )
        self._tell_terminal("Debugger", f"{view.label or f'rank {view.rank}'} stopped at {where}")

    def copy_debug_address(self, address: str) -> None:
        self.copy_to_clipboard(address)  # OSC 52: the terminal's clipboard, also over ssh
        self.notify(f"Copied {address} (if your terminal allows OSC 52 clipboard writes)", title="Debug")

    def action_debug(self, rank: int = 0, process: int = 0) -> None:
        """Attach the console's debugger to the rank (kept attached across restarts) and show it;
        a rank whose breakpoint() waits in pdb (no debugpy there) gets the pdb screen."""
        waiting = next((r for r in self.run_state.ranks if r.pdb and r.waiting_at), None) if self.run_state else None
        open_pdb = getattr(self.session, "open_pdb", None)
        if waiting is not None and open_pdb is not None:
            if not isinstance(self.screen, PdbScreen):
                self.push_screen(PdbScreen(partial(open_pdb, waiting.rank), waiting.rank, waiting.waiting_at))
            return
        opener = getattr(self.session, "debugger", None)
        if opener is None:
            self.notify("This session has no debugger.", title="Debugger", severity="warning")
            return
        debugger = opener(rank)
        debugger.start()
        grouper = getattr(self.session, "debug_group", None)
        group = grouper() if grouper is not None else None
        if process and group is not None:  # a launcher's worker stopped: show that one
            debugger = next((d for d in group.processes() if (d.rank, d.process) == (rank, process)), debugger)
        if not isinstance(self.screen, DebuggerScreen):
            self.push_screen(DebuggerScreen(debugger, group))

    def action_debug_release(self) -> None:
        grouper = getattr(self.session, "debug_group", None)
        if grouper is not None:
            self._release_debuggers(grouper())

    @work(group="debugger", exit_on_error=False)
    async def _release_debuggers(self, group: ConsoleDebugGroup) -> None:
        await group.close()
        self.notify("The console's debugger let go; the run goes on. VS Code can attach now.", title="Debugger")
