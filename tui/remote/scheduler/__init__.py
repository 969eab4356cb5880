"""Schedulers: where the node comes from. ``scheduler_for`` picks one from the workspace."""

from __future__ import annotations

from tui.config import Workspace
from tui.errors import TetherError
from tui.node.protocol_layout import job_tmux_socket
from tui.remote.scheduler.base import Allocation, LoginShell, Scheduler, holder_script
from tui.remote.scheduler.direct import DirectScheduler
from tui.remote.scheduler.kube import KubeScheduler
from tui.remote.scheduler.pbs import PbsScheduler
from tui.remote.scheduler.slurm import SlurmScheduler

__all__ = ["Allocation", "Scheduler", "scheduler_for"]


def scheduler_for(workspace: Workspace, login: LoginShell) -> Scheduler:
    """The scheduler of the workspace's kind; ``login`` runs its commands on the login host."""
    options = workspace.scheduler
    holder = holder_script(job_tmux_socket(workspace.name), tuple(workspace.run.env))
    if options.kind == "direct":
        return DirectScheduler(workspace.connection.node)
    if options.kind == "slurm" and options.slurm is not None:
        return SlurmScheduler(login, options.slurm, workspace.name, holder=holder)
    if options.kind == "pbs" and options.pbs is not None:
        return PbsScheduler(login, options.pbs, workspace.name, holder=holder)
    if options.kind == "kube" and options.kube is not None:
        return KubeScheduler(options.kube)
    raise TetherError(
        f"{workspace.config_path}: [scheduler] kind = {options.kind!r} is not supported by this version yet",
        fix='use kind = "direct", "slurm" or "pbs"',
    )
