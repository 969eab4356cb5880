"""Reaching a Slurm job's node without ssh: every command is a step of the job, run from the login host.

Some sites let no one ssh to compute nodes. There, ``srun --jobid=ID --overlap`` on the login host
runs a command inside the holder job, on its node, with stdin, stdout and the exit status passed
through. ``SrunRoute`` offers the same methods as a node ``ControlMaster`` (run, exec_argv, start,
stop, pid), so the agent channel, sync, attach and ``tether down`` use it unchanged:

- commands and the agent: ``ssh login srun … /bin/sh -c CMD`` on the login master (no new login);
- rsync: rides on the login master, with its server started through srun (``--rsync-path``);
- attach: ``srun --pty`` in the ssh terminal;
- ports: ``ssh -O forward`` would end on the login host, so the debug port travels over the agent's
  own channel instead (``tui.remote.relay``): ``forwards_ports`` is False.

The tmux server (and so the run) lives in the holder job's batch step, not in these short steps,
so it outlives each of them even where Slurm tracks a job's processes with cgroups.
"""

from __future__ import annotations

import dataclasses
import shlex

from tui.errors import TetherError
from tui.events import EventSink, Notice
from tui.remote.scheduler.slurm import srun_prefix
from tui.remote.ssh import CommandResult, ControlMaster, RsyncTransport, SshError

SSH = "ssh"
SRUN = "srun"
AUTO = "auto"


class SrunRoute(ControlMaster):
    """The node of Slurm job ``job_id``, reached through ``srun`` steps on the login master."""

    forwards_ports = False

    def __init__(self, login: ControlMaster, job_id: str, node: str) -> None:
        super().__init__(login.settings, login.hop)
        self.login = login
        self.job_id = job_id
        self.node = node

    @property
    def name(self) -> str:
        return self.node

    def rsync_transport(self) -> RsyncTransport:
        """rsync rides on the login master; its server starts as a step of the job on the node."""
        login = self.login.rsync_transport()
        return dataclasses.replace(login, options=(f"--rsync-path={srun_prefix(self.job_id, self.node)} rsync",))

    def wrap(self, command: str, *, tty: bool = False) -> str:
        """``command`` as a step of the job on its node. ``--pty`` for an interactive terminal."""
        prefix = srun_prefix(self.job_id, self.node)
        if tty:
            prefix = prefix.replace(" --unbuffered", "") + " --pty"  # a pty passes output on as it comes
        return f"{prefix} /bin/sh -c {shlex.quote(command)}"

    async def pid(self) -> int | None:
        return await self.login.pid()

    async def start(self) -> int:
        return await self.login.start()

    async def stop(self) -> bool:
        """The route owns no connection: the login master is the session's to close."""
        return False

    async def run(self, command: str, *, input_bytes: bytes | None = None, timeout: float | None = 60) -> CommandResult:
        return await self.login.run(self.wrap(command), input_bytes=input_bytes, timeout=timeout)

    def exec_argv(self, command: str, *, tty: bool = False) -> list[str]:
        return self.login.exec_argv(self.wrap(command, tty=tty), tty=tty)


async def reach_node(
    ssh_master: ControlMaster | None,
    login: ControlMaster,
    *,
    job_id: str | None,
    node: str,
    access: str,
    sink: EventSink,
) -> ControlMaster | None:
    """The way to the job's node that ``access`` ("ssh", "srun" or "auto") asks for.

    "auto" tries ssh through the login host first (pam_slurm_adopt sites let a job's owner in)
    and falls back to srun steps when the node refuses, saying so once.
    """
    if ssh_master is None or not job_id or access == SSH:
        return ssh_master
    route = SrunRoute(login, job_id, node)
    if access == SRUN:
        return route
    try:
        await ssh_master.start()
    except SshError as exc:
        sink(
            Notice(f"{node} takes no ssh ({exc.message}); running everything as steps of job {job_id} (srun --overlap)")
        )
        return route
    return ssh_master


def access_of(master: ControlMaster | None) -> str:
    """What a session record keeps, so `tether down` reaches the node the same way."""
    return SRUN if isinstance(master, SrunRoute) else SSH


def route_for_record(
    ssh_master: ControlMaster | None, login: ControlMaster, *, job_id: str | None, node: str, access: str
) -> ControlMaster | None:
    """The recorded way to the node (no probing: `tether down` must not wait on a refused ssh)."""
    if access == SRUN and ssh_master is not None:
        if not job_id:
            raise TetherError("a session record says srun but names no job")
        return SrunRoute(login, job_id, node)
    return ssh_master
