"""Safety rules with names: each one halts or refuses instead of acting.

- ``refuse_root``: a remote root that is ``/``, the home directory on the node or one of its
  parents (after resolving symlinks on the node, against the node's real $HOME).
- ``RootEmptied``: a push would delete more than ``delete_threshold`` of the node's files (an
  unmounted drive, a checkout gone wrong); sync halts until the user allows it.
- Deletes never leave the remote root and protected paths are never touched: the node agent
  enforces both on every op (tui/node/files.py), and plans never contain excluded paths.
"""

from __future__ import annotations

from tui.errors import TetherError
from tui.node.files import root_refusal


class SyncRefused(TetherError):
    """Sync will not start: the target is dangerous."""


class SyncHalted(TetherError):
    """Sync stopped on a safety rule and waits for the user."""


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
