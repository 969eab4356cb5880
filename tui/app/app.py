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
from collections.abc import Sequence
from typing import ClassVar

from textual import events, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.worker import Worker, WorkerState

from tui.alerts import JobAlerts, LinkAlerts, RunAlerts
from tui.app.bindings import APP_BINDINGS, NEW_JOB_ACTION, RECONNECT_ACTION, SYNC_HALT_ACTION
from tui.app.debugger_glue import DebuggerGlue
from tui.app.handlers import while_open
from tui.app.messages import (
    AllocationUpdated,
    EventForwarder,
    LinkUpdated,
    NodeUpdated,
    NoticePosted,
    OutputReceived,
    PasswordRequested,
    ProgressReported,
    RunUpdated,
    UnhandledEvent,
)
from tui.app.palette import TetherCommands
from tui.app.screens import ConfirmScreen, HelpScreen, KeyHelp, LogsScreen, PasswordScreen
from tui.app.screens.debugger import DebuggerScreen
from tui.app.screens.pdb import PdbScreen
from tui.app.sync_halts import SYNC_WORKER, SyncHalts
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
from tui.console_api import ConsoleSession
from tui.events import (
    AllocationChanged,
    DebuggerWaiting,
    GpuStats,
    JobState,
    LayoutChanged,
    LinkChanged,
    LinkState,
    NodeStats,
    RunProcesses,
    RunState,
    SyncHaltReport,
    SyncState,
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
RECONNECT_WORKER = "reconnect"


class TetherApp(DebuggerGlue, SyncHalts):
    """The full-screen console for one workspace session."""

    CSS_PATH = "app.tcss"
    TITLE = "Tether"
    COMMANDS = App.COMMANDS | {TetherCommands}
    # Small terminals (a laptop corner, 80x24): the screen gets -narrow / -short and app.tcss
    # gives the run's output the room (a shorter events box, a tighter footer).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_BELOW, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (SHORT_BELOW, "-tall")]

    # Every binding has an id so users can remap keys from config (``App.set_keymap``).
    BINDINGS: ClassVar[list[BindingType]] = list(APP_BINDINGS)

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
            self._say_debugger_waiting(event)

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
