"""The debugger screen: the source where the run stopped, the stack, the variables, watches and a
debug console, for one rank, driven by the keys people know from VS Code (F5, F9, F10, F11).

A pure view: it draws the ``DebugView`` snapshots the core's ``Debugger`` emits and calls its
commands in workers. Every binding has an id (``tether.debug_*``), so ``[ui.keys]`` remaps it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import OptionList, RichLog, Static
from textual.widgets.option_list import Option

from tui.app.screens.form import Field, FormScreen
from tui.app.widgets.debug_console import ConsoleInput
from tui.app.widgets.footer import FittingFooter
from tui.app.widgets.source_view import GutterMark, SourceView
from tui.app.widgets.variables import VariablesTree
from tui.console_api import ConsoleDebugger, ConsoleDebugGroup
from tui.dap_model import ArrayStats, ArraySummary, Completion, EvalResult, SourceBreakpoint, Variable, cap
from tui.events import DebugOutput, DebugStatus, DebugView, Frame

# What ctrl+e cycles through: debugpy's exception filters, and how the user reads them.
EXCEPTION_CHOICES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("uncaught",), "stop on uncaught ones"),
    (("raised", "uncaught"), "stop on every raise (libraries' too)"),
    (("userUnhandled", "uncaught"), "stop on those that leave your code"),
    ((), "never stop"),
)


class DebuggerScreen(Screen[None]):
    CSS_PATH = "debugger.tcss"
    # The stepping keys first: at 80 columns the footer has room for those (the rest are in ? and
    # the palette). key_display keeps them short: "⇧F11", not "shift+f11".
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "resume", "Continue", key_display="F5", id="tether.debug_continue"),
        Binding("f10", "over", "Over", key_display="F10", id="tether.debug_over"),
        Binding("f11", "into", "Into", key_display="F11", id="tether.debug_into"),
        Binding("shift+f11", "out", "Out", key_display="⇧F11", id="tether.debug_out"),
        Binding(
            "f9", "breakpoint", "Break", key_display="F9", tooltip="Toggle a breakpoint", id="tether.debug_breakpoint"
        ),
        Binding("escape", "back", "Back", key_display="Esc", id="tether.debug_back"),
        Binding(
            "shift+f9",
            "breakpoint_edit",
            "Condition",
            key_display="⇧F9",
            tooltip="A condition, a hit count or a log message for the breakpoint on this line",
            id="tether.debug_breakpoint_edit",
        ),
        Binding("f6", "pause", "Pause", key_display="F6", id="tether.debug_pause"),
        Binding(
            "ctrl+e",
            "exceptions",
            "Exceptions",
            tooltip="Which exceptions stop the run: uncaught ones, every raise, or those leaving your code",
            id="tether.debug_exceptions",
        ),
        Binding(
            "e", "evaluate", "Eval", tooltip="Evaluate in the frame (the debug console)", id="tether.debug_evaluate"
        ),
        Binding("w", "watch", "Watch", tooltip="Add a watch expression", id="tether.debug_watch"),
        Binding(
            "ctrl+a",
            "together",
            "All",
            tooltip="All processes together: a stop pauses the others, F5 and F6 go to all (a launcher's workers)",
            id="tether.debug_together",
        ),
        Binding("right_square_bracket", "switch(1)", "Next", key_display="]", id="tether.debug_next"),
        Binding("left_square_bracket", "switch(-1)", "Previous", key_display="[", id="tether.debug_previous"),
    ]

    def __init__(self, debugger: ConsoleDebugger, group: ConsoleDebugGroup | None = None) -> None:
        super().__init__()
        self.debugger = debugger
        self.group = group  # every process being debugged (a launcher's workers), when the session has them
        # nothing drawn yet: on_mount draws the debugger's view, a stop included
        self.view = DebugView(debugger.rank, DebugStatus.OFF, process=debugger.process)
        self.frame_index = 0

    def compose(self) -> ComposeResult:
        yield Static(id="debug-status")
        with Horizontal(id="debug-main"):
            yield SourceView(id="debug-source")
            with Vertical(id="debug-side"):
                yield OptionList(id="debug-ranks")
                yield OptionList(id="debug-stack")
                yield VariablesTree(id="debug-vars")
                yield OptionList(id="debug-watches")
        yield RichLog(id="debug-log", wrap=True, markup=False, max_lines=2000)
        yield ConsoleInput(id="debug-input")
        yield FittingFooter(compact=True)

    def on_mount(self) -> None:
        self.query_one("#debug-source").border_title = "source"
        self.query_one("#debug-stack").border_title = "call stack"
        self.query_one("#debug-ranks").border_title = "processes ([ ] switch, ^a all)"
        self.query_one("#debug-vars").border_title = "variables"
        self.query_one("#debug-watches").border_title = "watch (w adds)"
        self.query_one("#debug-log").border_title = "debug console"
        tree = self.query_one(VariablesTree)
        tree.connect(self._fetch, self._summarize, self._stats)
        self.query_one(ConsoleInput).connect(self.query_one(RichLog), self._evaluate, self._complete)
        self.show(self.debugger.view)
        if self.view.stop is None:
            self._show_some_file()
        self.query_one(SourceView).focus()

    # -- what the core reports ------------------------------------------------------------------

    def show(self, view: DebugView) -> None:
        """A snapshot of any process being debugged: the list of processes follows every one; the
        rest of the screen shows the picked process, or the one that stopped while it ran."""
        if view.key != (self.debugger.rank, self.debugger.process):
            self._show_processes()
            mine = self.debugger.view
            if not (view.status is DebugStatus.STOPPED and mine.status is not DebugStatus.STOPPED):
                return
            self._pick(view.key)
            return
        stopped_anew = view.stop is not None and view.stop is not self.view.stop
        self.view = view
        self._show_status()
        if view.status is DebugStatus.STOPPED and view.stop is not None:
            if stopped_anew:
                self.frame_index = 0
                self._show_stack()
                self._show_frame()
        else:
            self.query_one(SourceView).set_current(None)
            self.query_one("#debug-stack", OptionList).clear_options()
            if view.status is not DebugStatus.STOPPED:
                self.query_one(VariablesTree).show_message(
                    "running: F6 pauses" if view.status is DebugStatus.RUNNING else view.detail
                )
        self._show_marks()
        self._show_processes()

    def show_output(self, output: DebugOutput) -> None:
        style = "red" if output.category == "stderr" else "dim" if output.category == "console" else ""
        several = self.group is not None and len(self.group.processes()) > 1
        prefix = f"[{output.label}] " if several and output.label else ""
        self.query_one(RichLog).write(Text(prefix + output.text.rstrip("\n"), style=style))

    def _processes(self) -> list[ConsoleDebugger]:
        return list(self.group.processes()) if self.group is not None else [self.debugger]

    def _show_processes(self) -> None:
        """Every process and where it is: the stacks' tops of all stopped ranks side by side."""
        listing = self.query_one("#debug-ranks", OptionList)
        processes = self._processes()
        several = len(processes) > 1
        if several != listing.display:
            listing.display = several
            self.refresh_bindings()  # the keys for several processes come and go with them
        if not several:
            return
        rows = []
        for debugger in processes:
            view = debugger.view
            top = view.stop.top if view.stop and view.status is DebugStatus.STOPPED else None
            where = f"{view.stop.reason if view.stop else ''} at {top.where}" if top else view.status.value
            mark = "▶" if view.key == self.view.key else " "
            rows.append(Option(f"{mark} {debugger.label}: {where}", id=f"{view.rank}:{view.process}"))
        highlighted = listing.highlighted
        listing.clear_options()
        listing.add_options(rows)
        if rows:
            listing.highlighted = min(highlighted or 0, len(rows) - 1)

    def _pick(self, key: tuple[int, int]) -> None:
        debugger = next((d for d in self._processes() if (d.rank, d.process) == key), None)
        if debugger is None:
            return
        self.debugger = debugger
        # the picked one's view as not yet drawn, so that show() draws all of it
        self.view = DebugView(debugger.rank, DebugStatus.OFF, process=debugger.process)
        self.show(debugger.view)
        if debugger.view.stop is None:
            self._show_some_file()

    def _show_status(self) -> None:
        view = self.view
        parts = [self.debugger.label or f"rank {view.rank}", view.status.value]
        stop = view.stop if view.status is DebugStatus.STOPPED else None
        if stop is not None and stop.top is not None:
            parts.append(f"{stop.reason} at {stop.top.where}")
            if stop.description:
                parts.append(cap(stop.description, 80))
        elif view.detail:
            parts.append(view.detail)
        filters = self.debugger.memory.exception_filters
        parts.append(f"exceptions: {', '.join(filters) or 'none'}")
        if self.group is not None and self.group.together:
            parts.append("all processes together")
        self.query_one("#debug-status", Static).update(" · ".join(parts))

    def _show_stack(self) -> None:
        stack = self.query_one("#debug-stack", OptionList)
        stack.clear_options()
        frames = self.view.stop.frames if self.view.stop else ()
        stack.add_options([Option(f"{frame.frame.name}  {frame.where}", id=str(i)) for i, frame in enumerate(frames)])
        if frames:
            stack.highlighted = self.frame_index

    @property
    def frame(self) -> Frame | None:
        stop = self.view.stop
        if stop is None or not stop.frames:
            return None
        return stop.frames[min(self.frame_index, len(stop.frames) - 1)]

    @property
    def _frame_id(self) -> int | None:
        frame = self.frame
        return frame.frame.id if frame else None

    def _show_frame(self) -> None:
        frame, stop = self.frame, self.view.stop
        source = self.query_one(SourceView)
        if frame is None or stop is None:
            return
        if frame.local is not None and frame.local.is_file():
            source.show_file(frame.local, frame.local.read_text(errors="replace"), dark=self.app.current_theme.dark)
            source.border_title = self._relative(frame.local)
            source.set_current(frame.frame.line)
        else:
            source.show_message(f"{frame.frame.path} is only on the node (outside the synced folder)")
            source.border_title = frame.frame.path
        tree = self.query_one(VariablesTree)
        if self.frame_index == 0:
            tree.show(stop.local_variables, stop.locals_reference)
        else:
            self._load_frame_locals(frame.frame.id)
        self._refresh_watches()

    def _show_some_file(self) -> None:
        """Before any stop: the file the run starts, so breakpoints can be set at once."""
        local = self._run_file()
        source = self.query_one(SourceView)
        if local is not None:
            source.show_file(local, local.read_text(errors="replace"), dark=self.app.current_theme.dark)
            source.border_title = self._relative(local)
        self.query_one(VariablesTree).show_message(self.view.detail or "not stopped")

    def _run_file(self) -> Path | None:
        files = self.debugger.memory.files()
        root = self.debugger.local_root
        if files and (root / files[0]).is_file():
            return root / files[0]
        command = getattr(getattr(self.app, "session", None), "workspace", None)
        run = getattr(command, "run", None)
        for word in str(getattr(run, "command", "")).split():
            if word.endswith(".py") and (root / word).is_file():
                return root / word
        return next(iter(sorted(root.glob("*.py"))), None)

    def _relative(self, local: Path) -> str:
        try:
            return self.debugger.relative(local)
        except ValueError:
            return str(local)

    def _show_marks(self) -> None:
        source = self.query_one(SourceView)
        if source.path is None:
            return
        try:
            relative = self.debugger.relative(source.path)
        except ValueError:
            return
        verified = {line for rel, line in self.view.verified if rel == relative}
        attached = self.view.status in (DebugStatus.RUNNING, DebugStatus.STOPPED)
        marks = {}
        for bp in self.debugger.memory.breakpoints(relative):
            kind = "log" if bp.log_message else "condition" if bp.condition else "hits" if bp.hit_condition else "plain"
            marks[bp.line] = GutterMark(kind, verified=not attached or bp.line in verified)
        source.set_marks(marks)

    # -- stack, watches, console ----------------------------------------------------------------

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "debug-stack" and event.option.id is not None:
            self.frame_index = int(event.option.id)
            self._show_frame()
        elif event.option_list.id == "debug-ranks" and event.option.id is not None:
            rank, process = event.option.id.split(":")
            self._pick((int(rank), int(process)))

    @work(group="frame", exclusive=True)
    async def _load_frame_locals(self, frame_id: int) -> None:
        reference, variables = await self.debugger.frame_locals(frame_id)
        tree = self.query_one(VariablesTree)
        if not reference:
            tree.show_message("no variables in this frame")
            return
        tree.show(variables, reference)

    @work(group="watches", exclusive=True)
    async def _refresh_watches(self) -> None:
        watches = self.query_one("#debug-watches", OptionList)
        rows = []
        for expression in self.debugger.memory.watches:
            try:
                result = await self.debugger.evaluate(expression, self._frame_id, "watch")
                rows.append(Option(f"{expression} = {cap(result.result, 100)}"))
            except Exception as exc:  # noqa: BLE001 - the watch shows why it has no value
                rows.append(Option(Text(f"{expression}: {cap(str(exc), 80)}", style="dim")))
        watches.clear_options()
        watches.add_options(rows)

    # -- actions -------------------------------------------------------------------------------

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        """The screen's actions for the command palette, named with the keys in force."""
        commands: list[tuple[str, str, Callable[[], object]]] = []
        for active in self.active_bindings.values():  # after [ui.keys]: the keys in force
            binding = active.binding
            if active.node is not self or not (binding.id or "").startswith("tether.") or not active.enabled:
                continue
            key = self.app.get_key_display(binding)
            action = binding.action
            commands.append(
                (
                    f"Debugger: {binding.description} ({key})",
                    binding.tooltip or binding.description,
                    partial(self.run_action, action),
                )
            )
        return commands

    def action_resume(self) -> None:
        if self.group is not None and self.group.together:
            self._group_command("resume_all")
            return
        self._command("resume")

    def action_over(self) -> None:
        self._command("step_over")

    def action_into(self) -> None:
        self._command("step_in")

    def action_out(self) -> None:
        self._command("step_out")

    def action_pause(self) -> None:
        if self.group is not None and self.group.together:
            self._group_command("pause_all")
            return
        self._command("pause")

    @work(group="command")
    async def _group_command(self, name: str) -> None:
        await getattr(self.group, name)()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("together", "switch"):
            return len(self._processes()) > 1
        return True

    def action_together(self) -> None:
        if self.group is None:
            return
        self.group.set_together(not self.group.together)
        on = self.group.together
        self.notify(
            "All processes together: a stop pauses the others; F5 and F6 go to all."
            if on
            else "One process at a time: F5 and F6 go to the one shown.",
            title="Debugger",
        )
        self._show_status()

    def action_switch(self, step: int) -> None:
        processes = self._processes()
        keys = [(d.rank, d.process) for d in processes]
        if len(keys) < 2:
            return
        index = keys.index(self.view.key) if self.view.key in keys else 0
        self._pick(keys[(index + step) % len(keys)])

    @work(group="command")
    async def _command(self, name: str) -> None:
        try:
            await getattr(self.debugger, name)()
        except Exception as exc:  # noqa: BLE001 - said where the user pressed the key
            self.notify(str(exc), title="Debugger", severity="warning")

    def action_breakpoint(self) -> None:
        source = self.query_one(SourceView)
        if source.path is not None:
            self._toggle(source.path, source.cursor_line)

    @work(group="breakpoints")
    async def _toggle(self, path: Path, line: int) -> None:
        try:
            await self.debugger.toggle_breakpoint(path, line)
        except ValueError:
            self.notify("Only files inside the workspace take breakpoints here.", title="Debugger")
        except Exception as exc:  # noqa: BLE001
            self.notify(str(exc), title="Debugger", severity="warning")
        self._show_marks()

    def action_breakpoint_edit(self) -> None:
        source = self.query_one(SourceView)
        path, line = source.path, source.cursor_line
        if path is None:
            return
        try:
            current = self.debugger.memory.at(self.debugger.relative(path), line) or SourceBreakpoint(line)
        except ValueError:
            return
        fields = [
            Field("Condition (stops only when true)", current.condition, "i == 7"),
            Field("Hit count (stops on this hit)", current.hit_condition, "3"),
            Field("Log message (prints, never stops)", current.log_message, "loss is {loss}"),
        ]

        def answered(values: list[str] | None) -> None:
            if values is not None:
                condition, hits, message = (value.strip() for value in values)
                self._put(path, SourceBreakpoint(line, condition, hits, message))

        self.app.push_screen(FormScreen(f"Breakpoint at line {line}", fields), answered)

    @work(group="breakpoints")
    async def _put(self, path: Path, breakpoint: SourceBreakpoint) -> None:
        try:
            await self.debugger.put_breakpoint(path, breakpoint)
        except Exception as exc:  # noqa: BLE001
            self.notify(str(exc), title="Debugger", severity="warning")
        self._show_marks()

    def action_exceptions(self) -> None:
        current = tuple(self.debugger.memory.exception_filters)
        names = [filters for filters, _ in EXCEPTION_CHOICES]
        index = names.index(current) if current in names else -1
        filters, words = EXCEPTION_CHOICES[(index + 1) % len(EXCEPTION_CHOICES)]
        self._exceptions(list(filters), words)

    @work(group="breakpoints")
    async def _exceptions(self, filters: list[str], words: str) -> None:
        try:
            await self.debugger.set_exception_filters(filters)
        except Exception as exc:  # noqa: BLE001
            self.notify(str(exc), title="Debugger", severity="warning")
            return
        self.notify(f"Exceptions: {words}", title="Debugger")
        self._show_status()

    def action_evaluate(self) -> None:
        self.query_one(ConsoleInput).focus()

    def action_watch(self) -> None:
        def answered(values: list[str] | None) -> None:
            if values and values[0].strip():
                self.debugger.memory.add_watch(values[0].strip())
                self._refresh_watches()

        self.app.push_screen(FormScreen("Watch", [Field("Expression", "", "model.weight.shape")]), answered)

    def action_back(self) -> None:
        if isinstance(self.focused, ConsoleInput):
            self.query_one(SourceView).focus()
            return
        self.dismiss(None)

    # -- lazy variables ---------------------------------------------------------------------------

    async def _evaluate(self, text: str) -> EvalResult:
        return await self.debugger.evaluate(text, self._frame_id, "repl")

    async def _complete(self, text: str, column: int) -> list[Completion]:
        return await self.debugger.complete(text, column, self._frame_id)

    async def _fetch(self, reference: int, start: int, count: int) -> list[Variable]:
        return await self.debugger.variables(reference, start, count)

    async def _summarize(self, expression: str) -> ArraySummary | None:
        return await self.debugger.summarize(expression, self._frame_id)

    async def _stats(self, expression: str) -> ArrayStats | None:
        return await self.debugger.array_stats(expression, self._frame_id)
