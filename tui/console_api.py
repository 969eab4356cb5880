"""The contract between the console (Textual) and the core session it shows.

The app depends only on this protocol, so UI tests can drive it with a scripted session and the
real ``tui.session.Session`` can evolve without touching widgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from tui.dap_model import ArrayStats, ArraySummary, Completion, EvalResult, Scope, SourceBreakpoint, Variable
from tui.events import DebugView, EventSink, OutputPage


class ConsoleSession(Protocol):
    """What the console needs from a workspace session."""

    @property
    def title(self) -> str:
        """The workspace name shown in the header."""

    @property
    def chain(self) -> tuple[str, ...]:
        """The hops from the laptop to the node, e.g. ("login", "compute01")."""

    async def run(self, sink: EventSink) -> None:
        """Connect and supervise the link until cancelled, reporting events to ``sink``."""

    async def detach(self) -> None:
        """Leave the console: everything on the node keeps running."""

    async def down(self, sink: EventSink) -> list[str]:
        """Stop everything the session runs (the run, tmux, the job, the connections); returns
        what was stopped, for the user."""

    async def reconnect_now(self) -> None:
        """While the link waits between reconnect attempts: try again at once. Optional: the
        console shows its key only for sessions that have it."""

    def answer_prompt(self, answer: str | None) -> None:
        """Reply to a PasswordPrompt event (None cancels)."""

    def attach_argv(self) -> list[str] | None:
        """argv that attaches the node's tmux session in this terminal (`ssh -t ... tmux attach`);
        None while the node is not connected."""

    async def rebuild_layout(self) -> None:
        """Kill the workspace's tmux session (and the run) on the node and lay it out again."""

    async def restart_run(self) -> object:
        """Restart the run on the node (every rank's debug loop)."""

    async def stop_run(self) -> object:
        """Stop the run; its loops wait for a restart."""

    async def provide_debugpy(self) -> str:
        """Copy Tether's own debugpy to the node for a run whose python has none; restart the run."""

    async def allocate_again(self) -> None:
        """The job has ended: forget it and reconnect at once, so the scheduler gives a new one.
        Raises TetherError (shown to the user) where there is no job to replace or it still runs."""

    async def allow_sync_deletes(self) -> None:
        """Release a sync halt: do what it held back (the deletes, or the node's own files deleted
        or replaced)."""

    def pause_sync(self) -> None:
        """Hold edits on the laptop (still watched, none lost) until ``resume_sync``."""

    def resume_sync(self) -> None:
        """Send what was held back while paused, and go on syncing."""

    async def rescan_sync(self) -> None:
        """Compare both trees again; sync goes on if no safety rule holds any more."""

    async def keep_sync_theirs(self) -> str:
        """The node's own files a halt named move to the remote root's backup folder; sync goes
        on. Returns that folder ("" when the halt was of another kind)."""

    async def page_output(self, before: int | None, count: int) -> OutputPage:
        """A page of the run's whole log on the node, ``count`` lines ending at byte ``before``
        (None: the end)."""

    def debugger(self, rank: int = 0) -> ConsoleDebugger:
        """The console's debugger of a rank. Optional: the console shows its key only for
        sessions that have it."""

    def debug_group(self) -> ConsoleDebugGroup:
        """Every process the console debugs. Optional, with ``debugger``."""


class ConsoleDebugGroup(Protocol):
    """The ranks being debugged and the subprocesses they started (a launcher's workers)."""

    @property
    def together(self) -> bool:
        """Any stop pauses the others; continue and pause go to all."""

    def set_together(self, on: bool) -> None: ...

    def processes(self) -> Sequence[ConsoleDebugger]: ...

    async def resume_all(self) -> None: ...

    async def pause_all(self) -> None: ...

    async def close(self) -> None:
        """Let go of every process (the run goes on; VS Code may attach then)."""


class DebuggerMemory(Protocol):
    """The workspace's breakpoints (by file relative to the local root), watches and exception
    filters, kept across runs and consoles."""

    @property
    def watches(self) -> list[str]: ...

    @property
    def exception_filters(self) -> tuple[str, ...]: ...

    def files(self) -> list[str]: ...

    def breakpoints(self, relative: str) -> list[SourceBreakpoint]: ...

    def at(self, relative: str, line: int) -> SourceBreakpoint | None: ...

    def add_watch(self, expression: str) -> None: ...


class ConsoleDebugger(Protocol):
    """One rank's debugger, as the debugger screen drives it (``tui.debug.debugger.Debugger``)."""

    @property
    def rank(self) -> int: ...

    @property
    def process(self) -> int:
        """0 for the rank's own process, else the subprocess's pid."""

    @property
    def label(self) -> str: ...

    @property
    def local_root(self) -> Path: ...

    @property
    def view(self) -> DebugView:
        """The last snapshot (the console gets each one as an event too)."""

    @property
    def memory(self) -> DebuggerMemory: ...

    def relative(self, local: Path) -> str:
        """``local`` as the memory keys it; ValueError outside the workspace."""

    def start(self) -> None:
        """Attach now and again after every restart, until ``stop``."""

    async def stop(self) -> None:
        """Let go; the run goes on (VS Code may attach then)."""

    async def resume(self) -> None: ...

    async def step_over(self) -> None: ...

    async def step_in(self) -> None: ...

    async def step_out(self) -> None: ...

    async def pause(self) -> None: ...

    async def toggle_breakpoint(self, local: Path, line: int) -> SourceBreakpoint | None: ...

    async def put_breakpoint(self, local: Path, breakpoint: SourceBreakpoint) -> None: ...

    async def set_exception_filters(self, filters: list[str]) -> None: ...

    async def scopes(self, frame_id: int) -> list[Scope]: ...

    async def frame_locals(self, frame_id: int, count: int = 0) -> tuple[int, tuple[Variable, ...]]:
        """A frame's locals: (their reference, them); (0, ()) for none."""

    async def variables(self, reference: int, start: int = 0, count: int = 0) -> list[Variable]: ...

    async def evaluate(self, expression: str, frame_id: int | None = None, context: str = "repl") -> EvalResult: ...

    async def complete(self, text: str, column: int, frame_id: int | None = None) -> list[Completion]: ...

    async def summarize(self, expression: str, frame_id: int | None) -> ArraySummary | None: ...

    async def array_stats(self, expression: str, frame_id: int | None) -> ArrayStats | None: ...
