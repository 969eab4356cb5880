"""Safety rules with names: each one halts or refuses instead of acting.

- ``refuse_root``: a remote root that is ``/``, the home directory on the node or one of its
  parents (after resolving symlinks on the node, against the node's real $HOME).
- ``ForeignFiles``: a full comparison would delete or replace files on the node that Tether did not
  write (the agent's journal has no record of them); sync halts and asks: delete them, or keep
  theirs (moved to ``.tether-backup/<date>/`` inside the root, which sync ignores).
- ``RootEmptied``: a push would delete more than ``delete_threshold`` of the node's files (an
  unmounted drive, a checkout gone wrong); sync halts until the user allows it.
- Deletes never leave the remote root and protected paths are never touched: the node agent
  enforces both on every op (tui/node/files.py), and plans never contain excluded paths.
- ``workspace_path``: `tether pull` takes paths inside the workspace only.
"""

from __future__ import annotations

import os
from pathlib import Path

from tui.errors import TetherError
from tui.node.protocol_files import BACKUP_DIR, root_refusal


class SyncRefused(TetherError):
    """Sync will not start: the target is dangerous."""


class SyncHalted(TetherError):
    """Sync stopped on a safety rule and waits for the user."""


class ForeignFiles(SyncHalted):
    """The node holds files Tether did not write (its journal has no record) that this sync would
    delete or replace: a first sync into a folder that already held work, or what the run wrote."""

    SHOWN = 8

    def __init__(self, root: str, paths: list[str]) -> None:
        self.paths = sorted(paths)
        self.root = root
        count = len(self.paths)
        listed = ", ".join(self.paths[: self.SHOWN]) + (f" and {count - self.SHOWN} more" if count > self.SHOWN else "")
        super().__init__(
            f"sync halted: {root} on the node holds {count} file{'s' if count != 1 else ''} Tether did not write, "
            f"which this sync would delete or replace: {listed}",
            fix=f"keep them (moved to {root}/{BACKUP_DIR}/<date>/ on the node) with `tether sync --keep-theirs` or "
            '"keep theirs" in the console, or let sync delete them with `tether sync --allow-deletes`',
        )


class RootEmptied(SyncHalted):
    def __init__(self, deleted: int, total: int, threshold: float) -> None:
        super().__init__(
            f"sync halted: this push would delete {deleted} of the {total} files on the node "
            f"(more than {threshold:.0%}); the local folder looks emptied",
            fix="check the local folder (an unmounted drive? a checkout gone wrong?); if the deletes "
            "are meant, run `tether sync --allow-deletes` or allow them in the console",
        )
        self.deleted = deleted
        self.total = total


def refuse_root(configured: str, real: str, home: str) -> None:
    """Raise SyncRefused when the resolved remote root is dangerous."""
    reason = root_refusal(real, home)
    if reason is not None:
        shown = configured if configured == real else f"{configured} (resolves to {real})"
        raise SyncRefused(
            f"refusing to sync into {shown}: it {reason}; sync deletes remote files that are not on the laptop",
            fix="set [workspace] remote_root to a folder of its own, such as ~/work/<project>",
        )


def local_root_missing(root_exists: bool) -> None:
    if not root_exists:
        raise SyncHalted(
            "sync halted: the local folder is gone (an unmounted drive?)",
            fix="bring the folder back; nothing was deleted on the node",
        )


class OutsideWorkspace(TetherError):
    exit_code = 2


PULL_FIX = "name a file or folder inside the workspace, relative to its root, e.g. outputs/ or outputs/model.pt"


def workspace_path(local_root: Path, path: str) -> str:
    """``path`` (relative to the workspace, or absolute inside it) as a clean relative path;
    OutsideWorkspace for anything else, before anything runs: rsync would only say "protocol error"."""
    text = path.strip()
    if not text:
        raise OutsideWorkspace("pull needs a path inside the workspace", fix=PULL_FIX)
    if os.path.isabs(text):
        absolute = os.path.normpath(text)
        for root in {os.path.normpath(str(local_root)), os.path.realpath(local_root)}:
            if absolute.startswith(root.rstrip("/") + "/"):
                text = absolute[len(root.rstrip("/")) + 1 :]
                break
        else:
            raise OutsideWorkspace(
                f"refusing to pull {path!r}: it is outside the workspace ({local_root})", fix=PULL_FIX
            )
    rel = os.path.normpath(text)
    if rel == ".":
        raise OutsideWorkspace(
            f"refusing to pull {path!r}: that is the whole workspace, not a path inside the workspace", fix=PULL_FIX
        )
    if rel == ".." or rel.startswith("../"):
        raise OutsideWorkspace(f"refusing to pull {path!r}: it is outside the workspace ({local_root})", fix=PULL_FIX)
    return rel
