"""Events the core emits, as small frozen dataclasses.

The core never imports Textual: every subsystem reports through an ``EventSink`` (a plain callable),
and the console wraps what it receives into Textual messages. The CLI prints them instead.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from tui.dap_model import StackFrame, Variable


class LinkState(enum.Enum):
    """What the link supervisor knows about the connection to the login host and the node."""

    CONNECTING = "connecting"
    UP = "up"
    LOST = "lost"
    RECONNECTING = "reconnecting"
    NEEDS_PASSWORD = "needs password"
    CLOSED = "closed"


@dataclass(frozen=True)
class LinkChanged:
    """The link moved to ``state``; ``rtt_ms`` is the last measured round trip while up."""

    state: LinkState
    rtt_ms: float | None = None
    detail: str = ""
    attempt: int = 0


@dataclass(frozen=True)
class Progress:
    """A step of long work (connecting, allocating, shipping the agent) with an optional fraction."""

    task: str
    message: str
    fraction: float | None = None


@dataclass(frozen=True)
class Notice:
    """Something the user should read: ``level`` is "info", "warning" or "error"."""

    message: str
    level: str = "info"


class JobState(enum.Enum):
    """What the console knows of the scheduler's job behind the node."""

    UNWATCHED = "unwatched"  # acquired, but this kind of scheduler cannot tell its state later
    RUNNING = "running"
    WAITING = "waiting"  # pending, held, suspended, requeued: the scheduler's own word in ``detail``
    ENDED = "ended"  # it will not run again (completed, failed, cancelled...)


@dataclass(frozen=True)
class AllocationChanged:
    """The scheduler's job behind the node: which one, where, and when it ends.

    ``job_id`` None means no job (a direct host, or none yet). ``ends_at`` is epoch seconds on the
    laptop's clock (None: no time limit), so the console counts down without asking again.
    ``detail`` is the scheduler's own word for a waiting job, in lower case ("pending", "held").
    """

    job_id: str | None
    node: str
    ends_at: float | None
    state: JobState = JobState.UNWATCHED
    detail: str = ""


# A job's last ten minutes: the watch and the console warn, the header's clock turns.
JOB_ENDING_S = 600.0

EventSink = Callable[[object], None]


def ignore_events(event: object) -> None:
    """An EventSink for callers that do not care."""


@dataclass(frozen=True)
class PasswordPrompt:
    """ssh asks for a secret (password, one-time code); answer with ``ConsoleSession.answer_prompt``."""

    prompt: str
    host: str
    echo: bool = False


# -- the node: tmux layout, run output, stats (tui.node.layout and tui.node.stats on the node) --
@dataclass(frozen=True)
class PaneInfo:
    """One pane of the workspace's tmux session."""

    name: str
    pane_id: str
    pid: int | None = None


@dataclass(frozen=True)
class LayoutChanged:
    """The tmux session on the node as it is now; ``exists`` is False once it is gone."""

    session: str
    host: str
    panes: tuple[PaneInfo, ...]
    generation: int
    exists: bool = True
    notes: tuple[str, ...] = ()  # panes that show a message instead (a missing program)


@dataclass(frozen=True)
class OutputLines:
    """New lines of the run's output; ``history`` lines replace what was shown (a (re)attach)."""

    lines: tuple[str, ...]
    history: bool = False


@dataclass(frozen=True)
class OutputPage:
    """A page of the run's whole log on the node; pass ``start`` as ``before`` for the page before."""

    lines: tuple[str, ...]
    start: int
    total: int


@dataclass(frozen=True)
class NodeStats:
    """Node CPU (percent of all cores) and memory in MiB."""

    host: str
    cpu_percent: int
    mem_used_mb: int
    mem_total_mb: int


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    cpu_percent: int
    mem_mb: int
    command: str


@dataclass(frozen=True)
class RunProcesses:
    """The run's process tree (the run pane's shell and everything below it)."""

    processes: tuple[ProcessInfo, ...]


@dataclass(frozen=True)
class GpuInfo:
    index: str
    name: str
    utilization: int | None  # percent
    memory_used_mb: int | None
    memory_total_mb: int | None
    temperature_c: int | None
    power_w: int | None


@dataclass(frozen=True)
class GpuStats:
    """The node's GPUs, or none with ``reason`` (``"no GPU on compute01: ..."``)."""

    host: str
    gpus: tuple[GpuInfo, ...]
    reason: str = ""


# -- the debug loop (tui.node.loop on the node, tui.debug.runs on the laptop) --------------------
class RankStatus(enum.Enum):
    """What one rank's debug loop is doing (the loop's own words are the values)."""

    STARTING = "starting"
    WAITING_FOR_DEBUGGER = "waiting_for_debugger"  # breakpoint() or mode "wait": until one attaches
    RUNNING = "running"
    ATTACHED = "attached"
    EXITED = "exited"
    CRASHED = "crashed"
    STOPPED = "stopped"

    @classmethod
    def of(cls, word: object) -> RankStatus:
        """The status a loop reported; a word this console does not know reads as starting."""
        try:
            return cls(word)
        except ValueError:
            return cls.STARTING

    @property
    def ended(self) -> bool:
        return self in (RankStatus.EXITED, RankStatus.CRASHED, RankStatus.STOPPED)


@dataclass(frozen=True)
class RankState:
    """One rank's debug loop: what the run is doing and where a debugger attaches to it.

    ``local_port``: the laptop's 127.0.0.1 port forwarded to ``port`` on the node (0 until forwarded).
    """

    rank: int
    status: RankStatus
    port: int
    local_port: int = 0
    pid: int | None = None
    restarts: int = 0
    started_at: float | None = None  # Unix time of the current (or last) start
    exit_code: int | None = None
    reason: str = ""  # why it ended or stopped, in the loop's words
    waiting_at: str = ""  # "train.py:42" while breakpoint() waits for a debugger
    backoff_s: float = 0.0
    debugpy_missing: bool = False
    fix: str = ""  # the command that installs debugpy, when it is missing
    pdb: str = ""  # the run's python has no debugpy: breakpoint() waits in pdb on this socket on the node


@dataclass(frozen=True)
class RunState:
    """Every rank of the run, as the loops report them (a whole snapshot each time)."""

    ranks: tuple[RankState, ...]
    mode: str = "attach"


@dataclass(frozen=True)
class DebuggerWaiting:
    """breakpoint() in the run waits for a debugger at ``where`` ("train.py:42")."""

    rank: int
    where: str
    local_port: int
    pdb: bool = False  # in pdb on the node (no debugpy there): the console's pdb screen opens it


# -- sync (tui/sync emits these; the console shows them) -----------------------------------------


class SyncState(enum.Enum):
    SCANNING = "scanning"
    PUSHING = "pushing"
    UP_TO_DATE = "up to date"
    PENDING = "pending"  # changes wait (settling, or behind a push in flight)
    PAUSED = "paused"  # the user paused sync
    HALTED = "halted"  # a safety rule stopped it; see ``detail``
    LINK_LOST = "link lost"
    WAITING = "waiting for the node"  # never connected yet (a queued job, the first login): nothing was lost


class SyncStatusJson(TypedDict):
    """``SyncStatus`` as JSON (``tether status`` reads it from another process)."""

    workspace: str
    state: str  # a SyncState value
    pending: int
    detail: str
    last_push_ms: float | None
    last_push_bytes: int | None
    last_push_files: int | None
    conflicts: int


@dataclass(frozen=True)
class SyncStatus:
    workspace: str
    state: SyncState
    pending: int = 0  # changed paths not yet on the node
    detail: str = ""
    last_push_ms: float | None = None  # latency of the last push, change seen -> node answered
    last_push_bytes: int | None = None
    last_push_files: int | None = None
    conflicts: int = 0  # conflict copies made in this run

    @property
    def message(self) -> str:
        """One line for a log or the CLI."""
        text = f"sync: {self.state.value}"
        if self.state in (SyncState.LINK_LOST, SyncState.WAITING) and self.pending:
            text = f"sync: {self.state.value}, {self.pending} change{'s' if self.pending != 1 else ''} pending"
        elif self.pending:
            text += f", {self.pending} pending"
        if self.detail:
            text += f" ({self.detail})"
        return text

    def to_json(self) -> SyncStatusJson:
        return {
            "workspace": self.workspace,
            "state": self.state.value,
            "pending": self.pending,
            "detail": self.detail,
            "last_push_ms": self.last_push_ms,
            "last_push_bytes": self.last_push_bytes,
            "last_push_files": self.last_push_files,
            "conflicts": self.conflicts,
        }


@dataclass(frozen=True)
class SyncProgress:
    """First sync: ``fraction`` of the bytes, with rsync's own rate and ETA."""

    workspace: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    rate: str = ""
    eta: str = ""

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0


HALT_FOREIGN = "foreign"  # the node holds files Tether did not write that the sync would delete or replace
HALT_DELETES = "deletes"  # the push would delete more than delete_threshold of the node's files


@dataclass(frozen=True)
class SyncHaltReport:
    """Sync halted on a safety rule and waits for the user: ``reason`` is HALT_FOREIGN or
    HALT_DELETES, ``paths`` what would go (for HALT_FOREIGN every such file), ``total`` how many."""

    workspace: str
    reason: str
    message: str
    fix: str = ""
    paths: tuple[str, ...] = ()
    total: int = 0


@dataclass(frozen=True)
class SyncConflict:
    """``path`` changed on the node since Tether wrote it: the node's version is now ``copy``."""

    workspace: str
    path: str
    copy: str

    @property
    def message(self) -> str:
        return f"sync: {self.path} was edited on the node; its version is kept as {self.copy}"


# -- the console's debugger (tui/debug/debugger.py emits these; the debugger screen shows them) --


class DebugStatus(enum.Enum):
    OFF = "off"  # not attached: the user has not opened the debugger (VS Code may hold the run)
    CONNECTING = "connecting"
    RUNNING = "running"  # attached, the debuggee runs
    STOPPED = "stopped"  # at a breakpoint, a step, an exception or a pause
    WAITING = "waiting"  # no debuggee to attach to (restarting, ended, stopped): attaches when it is back


@dataclass(frozen=True)
class Frame:
    """A stack frame with the laptop's copy of its file (None: the file exists only on the node)."""

    frame: StackFrame
    local: Path | None = None

    @property
    def where(self) -> str:
        name = self.local.name if self.local else self.frame.path.rsplit("/", 1)[-1]
        return f"{name}:{self.frame.line}"


@dataclass(frozen=True)
class Stop:
    """Why and where a thread stopped, the stack, and the top frame's locals (first page)."""

    thread_id: int
    reason: str  # "breakpoint", "step", "exception", "pause", "entry", ...
    frames: tuple[Frame, ...]
    locals_reference: int = 0
    local_variables: tuple[Variable, ...] = ()
    description: str = ""  # the adapter's words, e.g. the exception's text

    @property
    def top(self) -> Frame | None:
        return self.frames[0] if self.frames else None


@dataclass(frozen=True)
class DebugView:
    """One process's debugger (a rank, or a worker a launcher started): status, where it stopped,
    and the breakpoints the adapter placed (relative file -> lines it verified)."""

    rank: int
    status: DebugStatus
    detail: str = ""
    stop: Stop | None = None
    verified: tuple[tuple[str, int], ...] = field(default_factory=tuple)
    attaches: int = 0  # how many times it attached (1 + one per restart it followed)
    process: int = 0  # 0: the rank's own process; else the pid of a subprocess it started (a launcher's worker)
    label: str = ""  # what the console calls it: "rank 0", "rank 2 (pid 4711)"

    @property
    def key(self) -> tuple[int, int]:
        return (self.rank, self.process)


@dataclass(frozen=True)
class DebugOutput:
    """Text the debuggee (or a logpoint) printed, as the adapter relayed it."""

    rank: int
    category: str  # "stdout", "stderr", "console", "important"
    text: str
    label: str = ""  # the process it came from, when the rank has several (a launcher's workers)
