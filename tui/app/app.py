"""TetherApp: the console, a pure view over a ``ConsoleSession``.

The app shows what the core reports and sends the core commands; it never opens a connection
itself. That is why it imports only event types (``tui.events``, ``tui.sync.status``), the
debugger's data (``tui.dap_model``) and ``tui.console_api`` from the core: the same
session drives the plain CLI, and UI tests drive the app with a scripted session.

Data flow: ``session.run(sink)`` runs in a worker; the sink (``EventForwarder``) posts each core
event as a message (messages up); the app routes it to the widget that shows it by calling that
widget's methods (method calls down).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from functools import partial, wraps
from typing import ClassVar, TypeVar

from textual import events, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.worker import Worker, WorkerState

from tui.alerts import Alert, JobAlerts, LinkAlerts, RunAlerts, terminal_sequence
from tui.app.messages import (
    AllocationUpdated,
    DebugUpdated,
    EventForwarder,
    LinkUpdated,
    NodeUpdated,
    NoticePosted,
    OutputReceived,
    PasswordRequested,
    ProgressReported,
    RunUpdated,
    SyncReported,
    UnhandledEvent,
)
from tui.app.screens import ConfirmScreen, HelpScreen, KeyHelp, LogsScreen, PasswordScreen, SyncHaltScreen
from tui.app.screens.debugger import DebuggerScreen
from tui.app.screens.pdb import PdbScreen
from tui.app.screens.sync_halt import CHOICE_DELETE, CHOICE_KEEP, CHOICE_RESCAN
from tui.app.themes import load_themes
from tui.app.widgets import (
    EventLog,
    GpuPanel,
    LinkHeader,
    LogLine,
    MetricsPanel,
    NodePanel,
    OutputPanel,
    ProcessTable,
    RunPanel,
)
from tui.app.widgets.footer import FittingFooter
from tui.app.widgets.sync_panel import SyncPanel
from tui.console_api import ConsoleDebugGroup, ConsoleSession
from tui.events import (
    HALT_FOREIGN,
    AllocationChanged,
    DebuggerWaiting,
    DebugOutput,
    DebugStatus,
    DebugView,
    GpuStats,
    JobState,
    LayoutChanged,
    LinkChanged,
    LinkState,
    NodeStats,
    RunProcesses,
    RunState,
    SyncConflict,
    SyncHaltReport,
    SyncState,
    SyncStatus,
)
from tui.keys import binding_keymap, shown_keys
from tui.state import UiPrefs

DETACHED = "detached"
"""``TetherApp.run()`` returns this after ``q``: the session detached and the run keeps going."""
DOWN = "down"  # the console ended with `down`: everything stopped (the CLI prints what)
DOWN_WORKER = "down"

DEFAULT_THEME = "dark"
NARROW_BELOW = 100  # columns: below this the console is laid out for a small terminal
SHORT_BELOW = 30  # rows: likewise
SESSION_WORKER = "session"
DETACH_WORKER = "detach"
REBUILD_WORKER = "rebuild"
RUN_WORKER = "run-control"
NEW_JOB_WORKER = "new-job"
NEW_JOB_ACTION = "allocate_again"
SYNC_HALT_ACTION = "sync_halt"
SYNC_WORKER = "sync-halt"
RECONNECT_ACTION = "reconnect_now"
RECONNECT_WORKER = "reconnect"


class TetherCommands(Provider):
    """Command palette entries for what the console can do (detach, themes, help)."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        assert isinstance(app, TetherApp)
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


M = TypeVar("M")


def while_open(handler: Callable[[TetherApp, M], None]) -> Callable[[TetherApp, M], None]:
    """Run a core-event handler only while the console is open.

    The core posts from its own threads, so events can still be queued when the console closes;
    by then the dashboard's widgets are being removed and there is nothing left to show them on.
    """

    @wraps(handler)
    def handle(app: TetherApp, message: M) -> None:
        if app.is_running:
            handler(app, message)

    return handle


class TetherApp(App[str]):
    """The full-screen console for one workspace session."""

    CSS_PATH = "app.tcss"
    TITLE = "Tether"
    COMMANDS = App.COMMANDS | {TetherCommands}
    # Small terminals (a laptop corner, 80x24): the screen gets -narrow / -short and app.tcss
    # gives the run's output the room (a shorter events box, a tighter footer).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_BELOW, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (SHORT_BELOW, "-tall")]

    # Every binding has an id so users can remap keys from config (``App.set_keymap``).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "question_mark",
            "help",
            "Help",
            key_display="?",
            tooltip="Show every key and what it does",
            id="tether.help",
        ),
        Binding(
            "q",
            "detach",
            "Detach",
            tooltip="Leave the console; everything keeps running on the node",
            id="tether.detach",
        ),
        Binding(
            "a",
            "attach",
            "Attach tmux",
            tooltip="Suspend the console and attach the tmux session on the node; detach (C-b d) to return",
            id="tether.attach",
        ),
        Binding("l", "logs", "Logs", tooltip="Page through the run's whole output, kept on the node", id="tether.logs"),
        Binding(
            "r",
            "restart_run",
            "Restart",
            tooltip="Restart the debuggee on the node (like Ctrl-C in the run pane)",
            id="tether.restart",
        ),
        Binding(
            "x",
            "stop_run",
            "Stop",
            tooltip="Stop the debuggee; the loop waits, r starts it again",
            id="tether.stop",
        ),
        Binding("t", "cycle_theme", "Theme", tooltip="Switch to the next Tether theme", id="tether.theme"),
        Binding(
            "b",
            "debug",
            "Debug",
            tooltip="Open the debugger: breakpoints (F9), stack, variables, a console (F5 continue, F10 over)",
            id="tether.debug",
        ),
        # Shown only where the scheduler gives jobs; dimmed while the job runs (see check_action).
        Binding(
            "A",
            NEW_JOB_ACTION,
            "New job",
            key_display="A",
            tooltip="The job has ended: forget it, ask the scheduler for a new one and reconnect",
            id="tether.new_job",
        ),
        # Shown only while the link waits between reconnect attempts (see check_action).
        Binding(
            "R",
            RECONNECT_ACTION,
            "Reconnect now",
            key_display="R",
            tooltip="The link waits before its next try (the wait grows to 30 s): try again at once",
            id="tether.reconnect",
        ),
        # Shown only while sync is halted on a safety rule (see check_action).
        Binding(
            "s",
            SYNC_HALT_ACTION,
            "Sync halt",
            tooltip="Sync is halted: see what would go and allow it, keep the node's files, or rescan",
            id="tether.sync_halt",
        ),
        # Declared here (Textual adds an id-less one otherwise) so the palette key is remappable too.
        Binding(
            "ctrl+p",
            "command_palette",
            "Commands",
            show=False,
            priority=True,
            tooltip="Open the command palette",
            id="tether.palette",
        ),
    ]

    def __init__(
        self,
        session: ConsoleSession,
        theme_name: str | None = None,
        prefs: UiPrefs | None = None,
        keys: tuple[tuple[str, str], ...] = (),
        terminal_alert: str = "off",
        metrics: Sequence[str] | None = None,
        long_lines: str = "fold",
    ) -> None:
        """``theme_name``: the one asked for (``--theme``, ``[ui] theme``); None: the one the user
        last picked (``prefs``), else the default. A theme picked with ``t`` or the palette is
        remembered in ``prefs``. ``terminal_alert``: ``[ui] terminal_alert``, how an alert is also
        told to the terminal (bell, desktop notification) or not at all. ``metrics``: ``[ui] metrics``,
        the numbers of the run's output to plot (None: the usual names). ``long_lines``: ``[ui]
        long_lines``, a line wider than the output panel folded at spaces or scrolled to sideways."""
        super().__init__()
        self.session = session
        self.prefs = prefs
        self.keys = keys  # [ui.keys], checked by the config: (action, Textual key names)
        self.terminal_alert = terminal_alert
        self.metrics = metrics
        self.long_lines = long_lines
        self.terminal_writes: list[str] = []  # what alerts wrote to the terminal, oldest first
        self.sync_state: SyncState | None = None  # as the sync last reported it
        self.stopped: list[str] = []  # what `down` stopped, for the CLI to print
        self.run_state: RunState | None = None  # the ranks, as last reported
        hints = shown_keys(keys)  # the keys that alerts and panels name follow [ui.keys]
        self.hints = hints
        self.alerts = RunAlerts(keys=hints)  # OOM, NCCL errors and crashes, each told once
        self.link_alerts = LinkAlerts()  # the link lost and back, once per outage
        self.job_alerts = JobAlerts(keys=hints)  # the job's last minutes, once per job
        # Loaded here, before the terminal is taken over, so a broken theme file is a plain
        # error message (ThemeFileError names the file) rather than a crash inside the UI.
        self.tether_themes = load_themes()
        for theme in self.tether_themes.values():
            self.register_theme(theme)
        self._theme_asked = theme_name is not None
        self._requested_theme = theme_name or (prefs.theme() if prefs else None) or DEFAULT_THEME
        self._detach_worker: Worker[None] | None = None
        self._new_job_worker: Worker[None] | None = None
        self._allocation: AllocationChanged | None = None  # the job behind the node, as last reported
        self.sync_halt: SyncHaltReport | None = None  # the halt sync waits on, as last reported
        self._link_state: LinkState | None = None  # the link's state, as last reported
        self._debug_stops: dict[tuple[int, int], object] = {}  # per process, the stop last shown (each opens once)

    # -- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield LinkHeader(self.session.title, tuple(self.session.chain), id="header")
        with Horizontal(id="dashboard"):
            with Vertical(id="main"):
                yield OutputPanel(fold=self.long_lines == "fold", id="output")
                yield MetricsPanel(self.metrics, id="metrics")
            with Vertical(id="side"):
                yield SyncPanel(id="sync")
                yield RunPanel(self.hints, id="run")
                yield NodePanel(id="node")
                yield ProcessTable(id="processes")
                yield GpuPanel(id="gpus")
        yield EventLog(id="events")
        yield FittingFooter(compact=self.size.width < NARROW_BELOW, id="footer")

    def on_resize(self, event: events.Resize) -> None:
        # The footer's spacing is a widget setting, not a style, so it is switched here.
        for footer in self.screen_stack[0].query(FittingFooter):
            footer.compact = event.size.width < NARROW_BELOW

    def on_mount(self) -> None:
        if self.keys:
            self.set_keymap(binding_keymap(self.keys))
        self._apply_requested_theme()
        self._run_session()
        self.set_interval(5.0, self._check_job_end)  # the job's end comes without a new event

    def _check_job_end(self) -> None:
        self._alert(self.job_alerts.check(self._allocation, time.time()))

    @property
    def detach_message(self) -> str:
        """What the CLI prints after the console returns ``DETACHED``."""
        said = getattr(self.session, "detach_message", None)  # the session knows a job still queued
        if isinstance(said, str):
            return said
        node = self.session.chain[-1] if self.session.chain else "the node"
        return f"Detached: the run keeps going on {node}. `tether attach` to come back, `tether down` to stop it."

    # -- the session --------------------------------------------------------------------------

    @work(name=SESSION_WORKER, group=SESSION_WORKER, exclusive=True, exit_on_error=False)
    async def _run_session(self) -> None:
        await self.session.run(EventForwarder(self))

    @work(name=DETACH_WORKER, group=DETACH_WORKER, exit_on_error=False)
    async def _detach_session(self) -> None:  # not _detach: Textual's MessagePump has one
        await self.session.detach()
        self.exit(DETACHED)

    @work(name=DOWN_WORKER, group=DOWN_WORKER, exclusive=True, exit_on_error=False)
    async def _down(self) -> None:
        self.stopped = await self.session.down(EventForwarder(self))
        self.exit(DOWN)

    @while_open
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is WorkerState.ERROR:
            error = worker.error
            reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            if worker.name == SESSION_WORKER:
                self._show_link_closed("session failed")
                self._report_error(f"The session stopped: {reason}")
            elif worker.name == DETACH_WORKER:
                self._report_error(f"Detach failed: {reason}")
            elif worker.name == DOWN_WORKER:
                self._report_error(f"Down failed: {reason}")
            elif worker.name == REBUILD_WORKER:
                self._report_error(f"Rebuilding the layout failed: {reason}")
            elif worker.name == RUN_WORKER:
                self._report_error(f"The run command failed: {reason}")
            elif worker.name == NEW_JOB_WORKER:
                self._report_error(f"No new job: {reason}")
            elif worker.name == SYNC_WORKER:
                self._report_error(f"Sync: {reason}")
            elif worker.name == RECONNECT_WORKER:
                self._report_error(f"Reconnect failed: {reason}")
        elif event.state is WorkerState.SUCCESS and worker.name == SESSION_WORKER:
            self.query_one(EventLog).add_line(LogLine("The session ended."))

    def _report_error(self, text: str) -> None:
        self.query_one(EventLog).add_line(LogLine(f"error: {text}", "error"))
        self.notify(text, title="Tether", severity="error")

    def _show_link_closed(self, detail: str) -> None:
        self.query_one(LinkHeader).show_link(LinkChanged(LinkState.CLOSED, detail=detail))

    # -- core events (messages up) ------------------------------------------------------------

    @while_open
    def on_link_updated(self, message: LinkUpdated) -> None:
        header = self.query_one(LinkHeader)
        header.show_link(message.link)
        header.show_chain(tuple(self.session.chain))
        if message.link.state is not self._link_state:
            self._link_state = message.link.state
            self.refresh_bindings()  # the reconnect key follows the link's state
            self._alert(self.link_alerts.link(message.link, time.monotonic()))

    @while_open
    def on_allocation_updated(self, message: AllocationUpdated) -> None:
        self._allocation = message.allocation
        self._check_job_end()
        header = self.query_one(LinkHeader)
        header.show_allocation(message.allocation)
        header.show_chain(tuple(self.session.chain))
        self.refresh_bindings()  # the new-job key follows the job's state

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

    @while_open
    def on_notice_posted(self, message: NoticePosted) -> None:
        self.query_one(EventLog).add_notice(message.notice)

    @while_open
    def on_progress_reported(self, message: ProgressReported) -> None:
        self.query_one(EventLog).add_progress(message.progress)

    @while_open
    def on_password_requested(self, message: PasswordRequested) -> None:
        self.push_screen(PasswordScreen(message.prompt), callback=self._answer_prompt)

    def _answer_prompt(self, answer: str | None) -> None:
        self.session.answer_prompt(answer)

    @while_open
    def on_output_received(self, message: OutputReceived) -> None:
        self.query_one(OutputPanel).show(message.output)
        self.query_one(MetricsPanel).show(message.output)
        if not message.output.history:  # a replayed log is old news
            self._alert(self.alerts.output(message.output.lines))

    def _alert(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.notify(alert.message, title=alert.title, severity=alert.severity, timeout=30)  # type: ignore[arg-type]
            self._tell_terminal(alert.title, alert.message)

    def _tell_terminal(self, title: str, message: str) -> None:
        """A bell or a desktop notification for what needs the user, who may be in another window."""
        sequence = terminal_sequence(self.terminal_alert, title, message)
        if not sequence:
            return
        self.terminal_writes.append(sequence)
        if not self.is_headless and self._driver is not None:  # as App.bell writes its BEL
            self._driver.write(sequence)

    @while_open
    def on_node_updated(self, message: NodeUpdated) -> None:
        snapshot = message.snapshot
        if isinstance(snapshot, NodeStats):
            self.query_one(NodePanel).show_stats(snapshot)
            self.query_one(MetricsPanel).show_node(snapshot)
        elif isinstance(snapshot, RunProcesses):
            self.query_one(ProcessTable).show(snapshot)
        elif isinstance(snapshot, GpuStats):
            self.query_one(GpuPanel).show(snapshot)
            self.query_one(MetricsPanel).show_gpus(snapshot)
        elif isinstance(snapshot, LayoutChanged):
            self.query_one(NodePanel).show_layout(snapshot)

    @while_open
    def on_run_updated(self, message: RunUpdated) -> None:
        event = message.event
        if isinstance(event, RunState):
            self.run_state = event
            self.query_one(RunPanel).show(event)
            self._alert(self.alerts.run_state(event))
        elif isinstance(event, DebuggerWaiting):
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

    @while_open
    def on_unhandled_event(self, message: UnhandledEvent) -> None:
        # Newer core events (sync, run state) get their widgets later; keep a trace for debugging.
        self.log.debug("event not shown yet", message.event)

    # -- actions ------------------------------------------------------------------------------

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self._key_help()))

    def action_detach(self) -> None:
        # A second q while detaching must not start a second detach.
        if self._detach_worker is not None and self._detach_worker.is_running:
            return
        self.query_one(EventLog).add_line(LogLine("Detaching…"))
        self._detach_worker = self._detach_session()

    def action_attach(self) -> None:
        """Hand the terminal to `ssh -t NODE tmux attach`; the console comes back when it ends."""
        argv = self.session.attach_argv()
        if not argv:
            self.notify("The node is not connected yet.", title="Attach", severity="warning")
            return
        try:
            with self.suspend():
                # Blocking on purpose: the terminal belongs to tmux until it detaches.
                code = subprocess.run(argv).returncode
        except SuspendNotSupported:
            self.notify("Attaching needs a real terminal.", title="Attach", severity="warning")
            return
        except OSError as exc:
            self._report_error(f"could not attach: {exc}")
            return
        if code != 0:
            self.query_one(EventLog).add_line(LogLine(f"warning: tmux attach ended with code {code}", "warning"))

    def action_logs(self) -> None:
        self.push_screen(LogsScreen(self.session.page_output))

    def action_rebuild(self) -> None:
        def answered(rebuild: bool | None) -> None:
            if rebuild:
                self.query_one(EventLog).add_line(LogLine("Rebuilding the tmux layout on the node…"))
                self._rebuild()

        # It ends the run (days of training, maybe): never on one stray key.
        self.push_screen(
            ConfirmScreen(
                "Rebuild the layout",
                "This kills the tmux session on the node and the run in "
                "it, then lays the session out again and starts the run anew.",
                "Kill and rebuild",
            ),
            answered,
        )

    def action_down(self) -> None:
        def answered(down: bool | None) -> None:
            if down:
                self.query_one(EventLog).add_line(LogLine("Stopping everything on the node…"))
                self._down()

        allocation = self._allocation
        job = f" and job {allocation.job_id}" if allocation and allocation.job_id else ""
        self.push_screen(
            ConfirmScreen(
                "Down",
                f"This ends the run, the tmux session on the node{job}, and closes "
                "the connections. Your files on the node stay.",
                "Stop everything",
            ),
            answered,
        )

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

    def action_pause_sync(self) -> None:
        self.session.pause_sync()

    def action_resume_sync(self) -> None:
        self.session.resume_sync()

    @work(name=REBUILD_WORKER, group=REBUILD_WORKER, exclusive=True, exit_on_error=False)
    async def _rebuild(self) -> None:
        await self.session.rebuild_layout()

    def action_restart_run(self) -> None:
        self.query_one(EventLog).add_line(LogLine("Restarting the run…"))
        self._run_control("restart_run")

    def action_stop_run(self) -> None:
        self.query_one(EventLog).add_line(LogLine("Stopping the run…"))
        self._run_control("stop_run")

    def action_provide_debugpy(self) -> None:
        self.query_one(EventLog).add_line(LogLine("Copying Tether's debugpy to the node…"))
        self._run_control("provide_debugpy")

    @work(name=RUN_WORKER, group=RUN_WORKER, exclusive=False, exit_on_error=False)
    async def _run_control(self, method: str) -> None:
        await getattr(self.session, method)()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == NEW_JOB_ACTION:
            return self._new_job_state()
        if action == SYNC_HALT_ACTION:
            return self.sync_halt is not None
        if action == "debug":
            # Not offered on the debugger's own screens (the footer has no room to waste there).
            if isinstance(self.screen, DebuggerScreen | PdbScreen):
                return False
            return hasattr(self.session, "debugger") or hasattr(self.session, "open_pdb")
        if action == "debug_release":
            return hasattr(self.session, "debug_group")
        if action == RECONNECT_ACTION:
            return self._link_state is LinkState.RECONNECTING and hasattr(self.session, "reconnect_now")
        return True

    # -- sync halts ---------------------------------------------------------------------------

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

    def _new_job_state(self) -> bool | None:
        """Hidden (False) without a job; dimmed (None) while the job is known to run or wait; else
        enabled. The session has the last word: it refuses to drop a job that has not ended."""
        allocation = self._allocation
        if allocation is None or allocation.job_id is None:
            return False
        return True if allocation.state in (JobState.ENDED, JobState.UNWATCHED) else None

    def action_allocate_again(self) -> None:
        if self._new_job_worker is not None and self._new_job_worker.is_running:
            return  # one new job at a time
        self.query_one(EventLog).add_line(LogLine("Asking for a new job…"))
        self._new_job_worker = self._allocate_again()

    @work(name=NEW_JOB_WORKER, group=NEW_JOB_WORKER, exit_on_error=False)
    async def _allocate_again(self) -> None:
        await self.session.allocate_again()

    def action_reconnect_now(self) -> None:
        self.query_one(EventLog).add_line(LogLine("Reconnecting now…"))
        self._reconnect_now()

    @work(name=RECONNECT_WORKER, group=RECONNECT_WORKER, exclusive=True, exit_on_error=False)
    async def _reconnect_now(self) -> None:
        await self.session.reconnect_now()

    def action_cycle_theme(self) -> None:
        names = list(self.tether_themes)
        index = names.index(self.theme) if self.theme in names else -1
        self.switch_theme(names[(index + 1) % len(names)])

    def switch_theme(self, name: str) -> None:
        """Use a registered theme (Tether's own or one of Textual's), also in the next console."""
        self.theme = name
        if self.prefs is not None:
            try:
                self.prefs.remember_theme(name)
            except OSError as exc:  # the switch itself worked; only the memory of it did not
                self.notify(
                    f"Could not remember the theme in {self.prefs.path}: {exc.strerror or exc}",
                    title="Tether",
                    severity="warning",
                )

    def _apply_requested_theme(self) -> None:
        name = self._requested_theme
        if name in self.available_themes:
            self.theme = name
            return
        fallback = DEFAULT_THEME if DEFAULT_THEME in self.tether_themes else next(iter(self.tether_themes))
        self.theme = fallback
        if not self._theme_asked:
            return  # a remembered theme that is gone (a theme file removed): not worth a warning
        known = ", ".join(self.tether_themes)
        text = f"Theme {name!r} not found; using {fallback!r}. Tether themes: {known}."
        self.query_one(EventLog).add_line(LogLine(f"warning: {text}", "warning"))
        self.notify(text, title="Tether", severity="warning")

    def _key_help(self) -> list[KeyHelp]:
        """The app's live bindings (after any keymap), Tether's own first."""
        rows: list[tuple[bool, KeyHelp]] = []
        for active in self.screen.active_bindings.values():
            binding = active.binding
            own = (binding.id or "").startswith("tether.")
            # the app's keys, and a screen's own (the debugger's), not Textual's focus and copy keys
            if not (active.node is self or (active.node is self.screen and own)):
                continue
            if not binding.description or binding.system:
                continue
            rows.append((own, KeyHelp(self.get_key_display(binding), binding.description, binding.tooltip)))
        return [row for own, row in rows if own] + [row for own, row in rows if not own]
