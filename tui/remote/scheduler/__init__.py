"""Schedulers: where the node comes from. ``scheduler_for`` picks one from the workspace."""

from __future__ import annotations

from tui.config import Workspace
from tui.errors import TetherError
from tui.remote.scheduler.base import Allocation, Scheduler
from tui.remote.scheduler.direct import DirectScheduler

__all__ = ["Allocation", "Scheduler", "scheduler_for"]


def scheduler_for(workspace: Workspace) -> Scheduler:
    kind = workspace.scheduler.kind
    if kind == "direct":
        return DirectScheduler(workspace.connection.node)
    raise TetherError(
        f"{workspace.config_path}: [scheduler] kind = {kind!r} is not supported by this version yet",
        fix='use kind = "direct" with [connection] node set to a node you can reach',
    )
