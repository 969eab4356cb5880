"""Reaching a Kubernetes/OpenShift pod: every command through ``kubectl exec`` (or ``oc exec``).

No login host and no ssh: the CLI runs on the laptop with the user's kube config, so whatever
authenticates their ``kubectl`` (OIDC, cloud plugins, ``oc login``) works unchanged. ``PodRoute``
offers the methods of a node ``ControlMaster`` (run, exec_argv, start, stop, pid), so the agent
channel, sync, attach and ``tether down`` use it unchanged:

- commands and the agent: ``kubectl exec -i POD -- sh -c CMD``;
- rsync: ``kubectl exec`` as its remote shell (``KubeScheduler.rsync_shell``);
- attach: ``kubectl exec -i -t``;
- ports: ``kubectl port-forward`` (``PortForward``), restarted by itself whenever it drops.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from tui.errors import TetherError
from tui.events import EventSink
from tui.remote.scheduler.kube import KubeScheduler, bare_name
from tui.remote.ssh import (
    CommandResult,
    ControlMaster,
    Destination,
    Hop,
    KeptForward,
    RsyncTransport,
    SshSettings,
    run_argv,
)


class PodRoute(ControlMaster):
    """The pod named ``pod``, reached with the scheduler's ``kubectl exec``."""

    forwards_ports = False

    def __init__(self, scheduler: KubeScheduler, pod: str) -> None:
        # The hop only names the pod for messages: no ssh is ever started for it.
        super().__init__(SshSettings(), Hop(Destination(bare_name(pod)), Path(os.devnull)))
        self.scheduler = scheduler
        self.pod = bare_name(pod)

    @property
    def name(self) -> str:
        return f"pod {self.pod}"

    async def pid(self) -> int | None:
        """0: there is no local connection process; each command is its own ``kubectl exec``."""
        return 0

    async def start(self) -> int:
        if shutil.which(self.scheduler.options.cli) is None:
            raise TetherError(
                f"{self.scheduler.options.cli} is not on PATH on this machine",
                fix=f"install {self.scheduler.options.cli}, or set [scheduler] cli",
            )
        return 0

    async def stop(self) -> bool:
        return False

    def _argv(self, command: str, *, tty: bool = False) -> list[str]:
        if tty:  # kubectl exec -t passes no TERM (ssh does): tmux needs it to draw
            command = f"TERM={shlex.quote(os.environ.get('TERM') or 'xterm-256color')} {command}"
        prefix = self.scheduler.exec_prefix() + (["-t"] if tty else [])
        return [*prefix, self.pod, "--", "sh", "-c", command]

    async def run(self, command: str, *, input_bytes: bytes | None = None, timeout: float | None = 60) -> CommandResult:
        return await run_argv(self._argv(command), input_bytes=input_bytes, timeout=timeout, env=self.scheduler.env)

    def exec_argv(self, command: str, *, tty: bool = False) -> list[str]:
        return self._argv(command, tty=tty)

    def kept_forward(self, local_port: int, remote_port: int, sink: EventSink) -> KeptForward:
        return self.scheduler.port_forward(self.pod, local_port, remote_port, events=sink)

    def rsync_transport(self) -> RsyncTransport:
        # --blocking-io: kubectl's pipes are not a socket; rsync must be installed in the container.
        return RsyncTransport(self.scheduler.rsync_shell(), self.pod, ("--blocking-io", "--rsync-path=rsync"))
