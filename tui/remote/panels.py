"""The laptop side of the node panels: asks the agent for the layout, turns its messages into events.

The agent sends only what changed (``tui.node.stats``); ``NodePanels`` keeps the merged view and
emits whole snapshots (``NodeStats``, ``RunProcesses``, ``GpuStats``, ``LayoutChanged``,
``OutputLines``), so the console never merges anything. After a reconnect the new agent starts
with a ``full`` stats message and a ``history`` output message, which reset the view.
"""

from __future__ import annotations

from typing import cast

from tui.config import Workspace
from tui.events import (
    EventSink,
    GpuInfo,
    GpuStats,
    LayoutChanged,
    NodeStats,
    Notice,
    OutputLines,
    OutputPage,
    PaneInfo,
    ProcessInfo,
    RunProcesses,
)
from tui.node import protocol_layout as pl
from tui.node import protocol_stats as ps
from tui.node.protocol import Message
from tui.node.protocol_layout import TMUX_SOCKET_ENV, WORKSPACE_ENV, job_tmux_socket, session_name
from tui.remote.agent_channel import AgentChannel

DEFAULT_SIZE = (200, 50)


def layout_request(
    workspace: Workspace, *, rebuild: bool = False, pass_env: dict[str, str] | None = None
) -> pl.LayoutEnsure:
    """The fields of ``layout.ensure`` for a workspace (pure). ``pass_env``: the [run] pass_env
    values, sent in the request only (the agent gives them to tmux in memory, never to a file)."""
    run, debug = workspace.run, workspace.debug
    loop: pl.LoopSpec = {
        "mode": debug.mode,
        "wait_timeout": debug.wait_timeout,
        "ranks": debug.ranks,
        "interpreter": run.interpreter,
        "provide_debugpy": debug.provide_debugpy,
        "standby": debug.standby,
    }
    return {
        "workspace": workspace.name,
        "root": workspace.remote_root,
        "panes": [{"name": pane.name, "command": pane.command} for pane in workspace.layout.panes],
        "run": {"command": run.command, "env": list(run.env), "prefix": run.prefix, "loop": loop},
        "pass_env": dict(pass_env or {}),
        "size": list(DEFAULT_SIZE),
        "interval": workspace.ui.stats_interval,
        "rebuild": rebuild,
    }


HOLDER_JOB_KINDS = ("slurm", "pbs")  # their holder job starts the workspace's tmux server


def agent_environment(workspace: Workspace) -> tuple[tuple[str, str], ...]:
    """Names the workspace to the agent, so a new agent rediscovers its tmux session at once; and,
    where a holder job runs the tmux server, its socket."""
    if workspace.scheduler.kind in HOLDER_JOB_KINDS:
        return ((WORKSPACE_ENV, workspace.name), (TMUX_SOCKET_ENV, job_tmux_socket(workspace.name)))
    return ((WORKSPACE_ENV, workspace.name),)


def attach_command(workspace: Workspace) -> str:
    """The remote command that attaches the workspace's tmux session (UTF-8 forced: borders)."""
    socket = f"-L {job_tmux_socket(workspace.name)} " if workspace.scheduler.kind in HOLDER_JOB_KINDS else ""
    return f"tmux {socket}-u attach-session -t ={session_name(workspace.name)}"


def _int(value: int | None) -> int | None:
    return None if value is None else int(value)


class NodePanels:
    """Merged state of the node panels, fed with the agent's events."""

    def __init__(self, workspace: Workspace, sink: EventSink) -> None:
        self.workspace = workspace
        self.sink = sink
        self.host = ""
        self.node: ps.NodeFields = {}
        self.procs: dict[str, ps.ProcessFields] = {}
        self.gpus: dict[str, ps.GpuFields] = {}
        self.nogpu: str | None = None
        self.layout: LayoutChanged | None = None
        self._told: set[str] = set()
        self.last_reply: pl.LayoutReply | None = None  # set by the first bring_up
        self.pass_env: dict[str, str] = {}

    async def bring_up(self, agent: AgentChannel) -> LayoutChanged:
        """Ask for the layout (created once, reused after) and start the stats."""
        self.host = str(agent.hello.get("host", "")) or self.host
        request = layout_request(self.workspace, pass_env=self.pass_env)
        reply = await agent.call(pl.ENSURE, request, timeout=60)
        self.last_reply = reply
        stats = ps.StatsWatch(interval=self.workspace.ui.stats_interval, workspace=self.workspace.name)
        await agent.call(ps.WATCH, stats)
        return self._layout(reply)

    async def rebuild(self, agent: AgentChannel) -> LayoutChanged:
        request = layout_request(self.workspace, rebuild=True, pass_env=self.pass_env)
        reply = await agent.call(pl.ENSURE, request, timeout=60)
        self.last_reply = reply
        return self._layout(reply)

    async def page(self, agent: AgentChannel, before: int | None, count: int) -> OutputPage:
        reply = await agent.call(pl.PAGE, pl.PageRequest(workspace=self.workspace.name, before=before, count=count))
        return OutputPage(tuple(reply["lines"]), int(reply["start"]), int(reply["total"]))

    def handle(self, message: Message) -> None:
        """One agent event (no request id)."""
        op = message.get("op")
        if op == "output":
            output = cast(pl.OutputEvent, message)
            self.sink(OutputLines(tuple(output.get("lines", ())), bool(output.get("history"))))
        elif op == "layout":
            self._layout(cast(pl.LayoutEvent, message))
        elif op == "stats":
            self._stats(cast(ps.StatsEvent, message))

    def _tell_once(self, text: str, level: str = "info") -> None:
        if text not in self._told:
            self._told.add(text)
            self.sink(Notice(text, level))

    def _layout(self, message: pl.LayoutEvent) -> LayoutChanged:
        self.host = message.get("host") or self.host
        layout = LayoutChanged(
            session=message.get("session", ""),
            host=self.host,
            panes=tuple(PaneInfo(p.get("name", ""), p.get("id", ""), p.get("pid")) for p in message.get("panes", ())),
            generation=int(message.get("generation", 0)),
            exists=bool(message.get("exists", True)),
            notes=tuple(message.get("notes", ())),
        )
        if self.layout is not None and layout.generation > self.layout.generation and layout.exists:
            self.sink(Notice(f"the tmux layout on {self.host} was rebuilt"))
        if self.layout is not None and self.layout.exists and not layout.exists:
            self.sink(Notice(f"the tmux session {layout.session} on {self.host} is gone", "warning"))
        self.layout = layout
        for note in layout.notes:
            if not note.startswith("no GPU"):  # the GPU panel says that one
                self._tell_once(note, "warning")
        self.sink(layout)
        return layout

    def _stats(self, message: ps.StatsEvent) -> None:
        if message.get("full"):
            self.node, self.procs, self.gpus, self.nogpu = {}, {}, {}, None
        if "node" in message:
            self.node.update(message["node"])
            self.sink(
                NodeStats(
                    self.host, int(self.node.get("cpu", 0)), int(self.node.get("mem", 0)), int(self.node.get("memt", 0))
                )
            )
        if "procs" in message or "gone" in message or message.get("full"):
            for pid in message.get("gone", ()):
                self.procs.pop(pid, None)
            for pid, process in message.get("procs", {}).items():
                self.procs.setdefault(pid, {}).update(process)
            self.sink(
                RunProcesses(
                    tuple(
                        ProcessInfo(int(pid), int(p.get("cpu", 0)), int(p.get("mem", 0)), str(p.get("cmd", "")))
                        for pid, p in sorted(self.procs.items(), key=lambda item: int(item[0]))
                    )
                )
            )
        if "gpus" in message or "gpus_gone" in message or "nogpu" in message or message.get("full"):
            for index in message.get("gpus_gone", ()):
                self.gpus.pop(index, None)
            for index, gpu in message.get("gpus", {}).items():
                self.gpus.setdefault(index, {}).update(gpu)
            if "nogpu" in message:
                self.nogpu = message["nogpu"] or None
            self.sink(self.gpu_stats())

    def gpu_stats(self) -> GpuStats:
        gpus = tuple(
            GpuInfo(
                index,
                str(g.get("name", "")),
                _int(g.get("util")),
                _int(g.get("mem")),
                _int(g.get("memt")),
                _int(g.get("temp")),
                _int(g.get("power")),
            )
            for index, g in sorted(self.gpus.items(), key=lambda item: item[0])
        )
        reason = ""
        if not gpus:
            # The GPU panel shows it; the events box only says what no panel shows.
            reason = f"no GPU on {self.host or 'the node'}" + (f" ({self.nogpu})" if self.nogpu else "")
        return GpuStats(self.host, gpus, reason)
