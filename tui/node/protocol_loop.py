"""The debug loop's messages: its state file, its control socket's answers, and the agent's
``loop.status``, ``loop.control`` and ``loop.watch`` ops, as both ends see them.

Types and constants only, stdlib only: shipped to the node and imported by the laptop too. The keys
are the JSON's; total=False where a key may be absent (an older loop's file, a refused start's).
"""

from __future__ import annotations

import enum
from typing import TypedDict

from tui.node.protocol import Ok, Op

SCHEMA = 1
COMMANDS = ("restart", "stop", "quit", "status")  # what the control socket takes, one a line


class LoopStatus(str, enum.Enum):
    """What a loop's run is doing; the values are the state file's ``status`` words (a str, so the
    JSON written is the word itself)."""

    STARTING = "starting"
    WAITING_FOR_DEBUGGER = "waiting_for_debugger"
    RUNNING = "running"
    ATTACHED = "attached"
    EXITED = "exited"
    CRASHED = "crashed"
    STOPPED = "stopped"


class LoopState(TypedDict, total=False):
    """The state file (``loopstate.read_state`` adds ``loop_alive``). Times are Unix seconds."""

    schema: int
    status: str  # a LoopStatus value; the laptop reads an unknown one leniently
    loop_pid: int
    loop_running: bool  # the loop has not left (false with loop_alive false: it was killed)
    loop_alive: bool  # added by the reader: the loop's process still runs
    restarts: int
    port: int
    host: str
    mode: str  # attach, wait or off
    wait_timeout_s: float
    command: list[str]  # as the user gave it
    argv: list[str]  # what a start runs
    name: str
    backoff_s: float
    next_start_at: float | None
    quick_exits: int
    log: str
    tail: str
    control: str
    python: str
    prefix: list[str]
    debugpy_missing: bool
    debugpy_from_tether: bool
    fix: str  # only while debugpy is missing: the command that installs it
    waiting_at: str | None  # "train.py:42": breakpoint() waits there
    pdb: str  # ... in pdb on this Unix socket (the run's python has no debugpy)
    standby_pid: int | None
    standby_token: str | None
    pid: int | None
    pgid: int | None
    token: str | None
    started_at: float | None
    ended_at: float | None
    exit_code: int | None  # negative: killed by that signal
    exit_signal: str | None
    exit_reason: str | None
    debugger_clients: int
    updated_at: float


class LoopReply(LoopState, total=False):
    """The control socket's answer: ``ok`` with the state, or ``ok`` false with ``error``."""

    ok: bool
    error: str


class LoopOptions(TypedDict, total=False):
    """``options.json``, written by the agent: the [debug] options a loop takes at its next start."""

    mode: str
    wait_timeout: float
    standby: bool


class LoopRank(TypedDict):
    """One rank's loop, as ``layout.ensure`` reports it in its ``debug`` part."""

    rank: int
    port: int  # its debug port on the node
    state: str  # its state file: what every loop op names


class DebugPlan(TypedDict, total=False):
    """``layout.ensure``'s ``debug`` part: the run's loops."""

    mode: str
    ranks: list[LoopRank]
    master_port: int


class LoopRequest(TypedDict):
    """What every loop op names: the loop's state file."""

    state: str


class LoopStatusRequest(LoopRequest, total=False):
    tail: int  # the last N output lines too


class LoopControlRequest(LoopRequest):
    command: str  # one of COMMANDS


class LoopWatchRequest(LoopRequest, total=False):
    interval: float  # seconds between looks at the file


class LoopStateEvent(TypedDict):
    """``op`` "loop.state": sent whenever a watched state file changes or its loop dies."""

    op: str
    state_path: str
    state: LoopState | None  # None: no loop wrote one there yet


class LoopStatusReply(LoopStateEvent):
    """``loop.status``'s answer: a ``loop.state`` with the output's last lines."""

    tail: list[str]


class LoopControlReply(TypedDict):
    op: str  # "loop.control"
    state_path: str
    reply: LoopReply


STATUS: Op[LoopStatusRequest, LoopStatusReply] = Op("loop.status")
CONTROL: Op[LoopControlRequest, LoopControlReply] = Op("loop.control")
WATCH: Op[LoopWatchRequest, Ok] = Op("loop.watch")  # then LoopStateEvents
STATE_EVENT = "loop.state"  # the op of a LoopStateEvent (and of loop.status's reply)
