"""The layout's messages: ``layout.ensure``, ``layout.down`` and ``output.page``, the ``layout``
and ``output`` events, and the names both ends derive from a workspace's name.

Types, constants and pure functions only, stdlib only: shipped to the node and imported by the
laptop too. The keys are the JSON's; total=False where a key may be absent.
"""

from __future__ import annotations

import re
from typing import TypedDict

from tui.node.protocol import Op
from tui.node.protocol_loop import DebugPlan

SESSION_PREFIX = "tether-"
WORKSPACE_ENV = "TETHER_WORKSPACE"  # set by the laptop for the agent: rediscover at once
TMUX_SOCKET_ENV = "TETHER_TMUX_SOCKET"  # set by the laptop where a holder job runs the tmux server
DEBUGPY_HOME = "~/.cache/tether/debugpy"  # Tether's own copy of debugpy, shipped on request (debug.provide)


def session_name(workspace: str) -> str:
    """The tmux session of a workspace (tmux refuses '.' and ':' in names)."""
    return SESSION_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", workspace)


def job_tmux_socket(workspace: str) -> str:
    """The tmux socket (``tmux -L``) of a workspace whose node comes from a holder job.

    The holder job starts the tmux server on it, so the run belongs to the job; the agent and
    `tmux attach` use the same name (given to the agent in ``TMUX_SOCKET_ENV``).
    """
    return session_name(workspace)


# -- layout.ensure -------------------------------------------------------------------------------
class _PaneName(TypedDict):
    name: str  # "run", "htop", "gpu", "shell" or the user's


class PaneSpec(_PaneName, total=False):
    """One pane of ``[layout] panes``."""

    command: str | None  # None: the built-in pane's own command (a shell for one of the user's)


class LoopSpec(TypedDict, total=False):
    """``[debug]`` for the debug loop in the run pane."""

    mode: str  # attach, wait or off
    wait_timeout: float
    ranks: int
    interpreter: str  # [run] interpreter
    provide_debugpy: str  # auto, ask or never
    standby: bool


class RunSpec(TypedDict, total=False):
    """``[run]``: what the run pane runs."""

    command: str
    env: list[str]  # shell lines run before the command
    prefix: str  # a container prefix
    loop: LoopSpec  # the debug loop runs the command


class _LayoutNames(TypedDict):
    workspace: str
    panes: list[PaneSpec]


class LayoutEnsure(_LayoutNames, total=False):
    root: str  # the remote root (may start with ~); panes start there
    run: RunSpec
    pass_env: dict[str, str]  # [run] pass_env values: for the run scripts, never written to a file
    size: list[int]  # [columns, lines] of a new session
    interval: float  # the stats interval, kept for a new agent's stats
    rebuild: bool  # tear the session down and build it anew


class PaneState(TypedDict):
    name: str
    id: str  # tmux's pane id, "%3"
    pid: int | None


class LayoutView(TypedDict):
    """The workspace's tmux session as it is now."""

    session: str
    host: str
    exists: bool  # false once the session is gone
    panes: list[PaneState]
    generation: int  # counts the builds: a new one means the layout was rebuilt
    notes: list[str]  # for the user (a pane whose program is missing)


class LayoutEvent(LayoutView):
    """``op`` "layout": sent when the panes changed."""

    op: str


class LayoutReply(LayoutEvent):
    """``layout.ensure``'s answer (``op`` "layout")."""

    created: bool  # built by this request
    debug: DebugPlan | None  # the debug loops of the run pane (None: the run has none)
    root: str  # the remote root, ~ expanded


# -- layout.down, output.page, the output event ---------------------------------------------------
class LayoutDown(TypedDict):
    workspace: str


class DownReply(TypedDict):
    op: str  # "down"
    stopped: list[str]  # what was running, for the user


class _PageWorkspace(TypedDict):
    workspace: str


class PageRequest(_PageWorkspace, total=False):
    before: int | None  # a previous page's start; None: the log's end
    count: int  # lines (100 when left out)


class PageReply(TypedDict):
    op: str  # "page"
    lines: list[str]
    start: int  # offset of the first line: ``before`` of the page before this one
    total: int  # bytes in all of the run's log files


class _OutputLines(TypedDict):
    op: str  # "output"
    lines: list[str]


class OutputEvent(_OutputLines, total=False):
    history: bool  # true: the lines replace what was shown (a new agent's first look)


ENSURE: Op[LayoutEnsure, LayoutReply] = Op("layout.ensure")
DOWN: Op[LayoutDown, DownReply] = Op("layout.down")
PAGE: Op[PageRequest, PageReply] = Op("output.page")
