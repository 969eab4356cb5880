"""What sync reports: an explicit state per workspace, as frozen events and a small status file.

The engine emits ``SyncStatus`` on every change of state or pending count, ``SyncProgress``
during a first sync (files, bytes, rate, ETA) and ``SyncConflict`` when the node's version of a
file was kept beside the new one. The status file lets `tether status --json` (another process)
show the state of a running `tether sync --watch` or console.
"""

from __future__ import annotations

import enum
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tui.state import state_dir


class SyncState(enum.Enum):
    SCANNING = "scanning"
    PUSHING = "pushing"
    UP_TO_DATE = "up to date"
    PENDING = "pending"  # changes wait (settling, or behind a push in flight)
    PAUSED = "paused"  # the user paused sync
    HALTED = "halted"  # a safety rule stopped it; see ``detail``
    LINK_LOST = "link lost"


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
        if self.state is SyncState.LINK_LOST:
            text = f"sync: link lost, {self.pending} change{'s' if self.pending != 1 else ''} pending"
        elif self.pending:
            text += f", {self.pending} pending"
        if self.detail:
            text += f" ({self.detail})"
        return text

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data


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


@dataclass(frozen=True)
class SyncConflict:
    """``path`` changed on the node since Tether wrote it: the node's version is now ``copy``."""

    workspace: str
    path: str
    copy: str

    @property
    def message(self) -> str:
        return f"sync: {self.path} was edited on the node; its version is kept as {self.copy}"


def status_path(ws_id: str) -> Path:
    return state_dir() / f"sync-{ws_id}.json"


def write_status(ws_id: str, status: SyncStatus) -> None:
    """Atomically, with the writer's pid so a reader can tell a stale file."""
    path = status_path(ws_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {**status.to_json(), "pid": os.getpid(), "updated": time.time()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sync-")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


def read_status(ws_id: str) -> dict[str, Any] | None:
    """The last state a sync process wrote, with ``running`` telling whether it still runs."""
    try:
        data = json.loads(status_path(ws_id).read_text())
    except (OSError, ValueError):
        return None
    pid = data.get("pid")
    running = False
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
            running = True
        except ProcessLookupError:
            running = False
        except PermissionError:
            running = True
    data["running"] = running
    return data


def clear_status(ws_id: str) -> None:
    status_path(ws_id).unlink(missing_ok=True)
