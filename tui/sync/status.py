"""What sync reports: an explicit state per workspace, as frozen events and a small status file.

The engine emits ``SyncStatus`` on every change of state or pending count, ``SyncProgress``
during a first sync (files, bytes, rate, ETA) and ``SyncConflict`` when the node's version of a
file was kept beside the new one, and ``SyncHaltReport`` when a safety rule halts it (what would go). The status file lets `tether status --json` (another process)
show the state of a running `tether sync --watch` or console.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import TypedDict, cast

from tui.events import HALT_DELETES, HALT_FOREIGN, SyncConflict, SyncHaltReport, SyncProgress, SyncState, SyncStatus
from tui.state import state_dir

__all__ = [
    "HALT_DELETES",
    "HALT_FOREIGN",
    "SyncConflict",
    "SyncHaltReport",
    "SyncProgress",
    "SyncState",
    "StatusFile",
    "SyncStatus",
    "clear_status",
    "read_status",
    "status_path",
    "write_status",
]


class StatusFile(TypedDict, total=False):
    """The status file as ``read_status`` gives it: ``SyncStatus.to_json()``, who wrote it when, and
    whether that process still runs."""

    workspace: str
    state: str  # a SyncState value
    pending: int
    detail: str
    last_push_ms: float | None
    last_push_bytes: int | None
    last_push_files: int | None
    conflicts: int
    pid: int  # the writer's
    updated: float  # Unix seconds
    running: bool  # added by the reader: the writer still runs


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


def read_status(ws_id: str) -> StatusFile | None:
    """The last state a sync process wrote, with ``running`` telling whether it still runs."""
    try:
        data = cast(StatusFile, json.loads(status_path(ws_id).read_text()))
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
