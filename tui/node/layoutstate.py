"""What the layout keeps about a workspace on the node, in ``~/.cache/tether/runs/<workspace>/``:
``layout.json`` (the last build, for later requests and for a new agent), the lock that serialises
building and tearing down, the run's log, the loops' folders, and the agents serving it.

Also ``RunPane``: the run pane this agent watches, shared by the layout (which finds it) and the
stats (which sample its processes). Stdlib only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

from tui.node import loopstate as ls
from tui.node.protocol_layout import PaneSpec, RunSpec
from tui.node.protocol_loop import DebugPlan

RUNS_HOME = "~/.cache/tether/runs"
STATE_NAME = "layout.json"


class BuiltSpec(TypedDict, total=False):
    """The request a build followed (each None when the request left it out)."""

    root: str | None
    panes: list[PaneSpec] | None
    run: RunSpec | None
    size: list[int] | None


class Built(TypedDict):
    """What a build adds to the state."""

    generation: int
    notes: list[str]
    debug: DebugPlan | None


class WorkspaceState(TypedDict, total=False):
    """``layout.json``; empty before the first build and after ``layout.down``."""

    generation: int
    notes: list[str]
    debug: DebugPlan | None
    spec: BuiltSpec
    interval: float  # the stats interval the console asked for


def state_dir(workspace: str) -> Path:
    return Path(os.path.expanduser(RUNS_HOME)) / re.sub(r"[^A-Za-z0-9_-]", "_", workspace)


def log_path(workspace: str) -> Path:
    return state_dir(workspace) / "run.log"


def loop_dir(workspace: str, rank: int) -> Path:
    """Where rank ``rank``'s debug loop keeps its state, log and control socket."""
    return state_dir(workspace) / f"loop{rank}"


def read_state(workspace: str) -> WorkspaceState:
    try:
        # Written only by write_state: its JSON is a WorkspaceState.
        return cast(WorkspaceState, json.loads((state_dir(workspace) / STATE_NAME).read_text()))
    except (OSError, ValueError):
        return {}


def write_state(workspace: str, state: WorkspaceState) -> None:
    path = state_dir(workspace) / STATE_NAME
    tmp = path.with_name(f".layout.{os.getpid()}.json")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def forget_state(workspace: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir(workspace) / STATE_NAME).unlink()


@contextlib.contextmanager
def workspace_lock(workspace: str) -> Iterator[None]:
    """Serialises building and tearing down between the agents of one workspace."""
    folder = state_dir(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "layout.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_agent(pid: int) -> bool:
    return ls.command_has(pid, b"tui.node.agent")


def register_agent(workspace: str) -> None:
    folder = state_dir(workspace) / "agents"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()


def registered_agents(workspace: str) -> list[int]:
    folder = state_dir(workspace) / "agents"
    pids = []
    for entry in folder.glob("*") if folder.exists() else []:
        if entry.name.isdigit():
            if is_agent(int(entry.name)):
                pids.append(int(entry.name))
            else:
                entry.unlink(missing_ok=True)
    return pids


@dataclass
class RunPane:
    """The run pane of the workspace this agent watches (none until the layout watches one)."""

    workspace: str | None = None
    pid: int | None = None  # the pane's process, as the layout last saw it

    def standby_pids(self) -> set[int]:
        """The loops' next runs, started ahead (tui.node.standby): not the run's processes yet."""
        if not self.workspace:
            return set()
        pids = set()
        for state in state_dir(self.workspace).glob("loop*/state.json"):
            with contextlib.suppress(ls.LoopError, OSError):
                pid = (ls.read_state(state) or {}).get("standby_pid")
                if isinstance(pid, int):
                    pids.add(pid)
        return pids
