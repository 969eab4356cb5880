"""The run's state per rank (from the debug loops on the node) and the laptop port to attach to."""

from __future__ import annotations

import time
from collections.abc import Mapping

from textual.widgets import Static

from tui.events import RankState, RankStatus, RunState
from tui.keys import shown_keys

STATUS_WORDS = {
    RankStatus.STARTING: "starting",
    RankStatus.WAITING_FOR_DEBUGGER: "waiting for debugger",
    RankStatus.RUNNING: "running",
    RankStatus.ATTACHED: "debugger attached",
    RankStatus.EXITED: "exited",
    RankStatus.CRASHED: "crashed",
    RankStatus.STOPPED: "stopped",
}


def describe_rank(state: RankState, now: float | None = None) -> str:
    """Two lines for the console:
    "rank 0  running  pid 123  up 1m05s" / "  restarts 2 · port 41000 → 127.0.0.1:5001" (attach there)."""
    word = STATUS_WORDS[state.status]
    if state.status in (RankStatus.EXITED, RankStatus.CRASHED) and state.exit_code is not None:
        word += f"({state.exit_code})"
    if state.waiting_at:
        word = f"waiting for debugger at {state.waiting_at}"
    first = [f"rank {state.rank}", word]
    if state.pid and not state.status.ended:
        first.append(f"pid {state.pid}")
        if state.started_at:
            first.append("up " + uptime(max(0.0, (now or time.time()) - state.started_at)))
    if state.backoff_s and state.status is RankStatus.STARTING:
        first.append(f"backoff {state.backoff_s:g}s")
    second = f"  restarts {state.restarts} · port {state.port}"
    if state.local_port:
        second += f" → 127.0.0.1:{state.local_port}"
    lines = ["  ".join(first), second]
    if state.debugpy_missing and not (state.status is RankStatus.STOPPED and state.reason):
        lines.append("  no debugpy in the run's python: copying Tether's (or ctrl+p → Make debugpy available)")
    elif state.reason and state.status.ended:
        lines.append(f"  {state.reason}")
    return "\n".join(lines)


def uptime(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


class RunPanel(Static):
    """One line per rank: status, pid, restarts, node port, uptime, and 127.0.0.1:PORT to attach."""

    DEFAULT_CSS = """
    RunPanel {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, keys: Mapping[str, str] | None = None, *, id: str | None = None) -> None:
        """``keys``: action -> the key in force (``tui.keys.shown_keys``), for the hint."""
        super().__init__("waiting for the run…", id=id)
        keys = keys or shown_keys()
        self.hint = f"{keys['restart']} restart · {keys['stop']} stop"
        self.border_title = "Run"
        self.add_class("panel")  # the frame all panels share (app.tcss)
        self.state: RunState | None = None

    def on_mount(self) -> None:
        self.set_interval(1.0, self._refresh_uptime)

    def show(self, state: RunState) -> None:
        self.state = state
        self.border_subtitle = f"debug: {state.mode}" + (f"  {self.hint}" if state.ranks else "")
        self._render_state()

    def _render_state(self) -> None:
        if self.state is None:
            return
        if not self.state.ranks:
            self.update("no debug loop (the run pane runs its own command)")
            return
        self.update("\n".join(describe_rank(rank) for rank in self.state.ranks))

    def _refresh_uptime(self) -> None:
        if self.state is not None and any(
            r.status in (RankStatus.RUNNING, RankStatus.ATTACHED) for r in self.state.ranks
        ):
            self._render_state()

    def text(self) -> str:
        return str(self.render())
