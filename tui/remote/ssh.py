"""OpenSSH connections: one ControlMaster per hop, every later command multiplexed through it.

Why OpenSSH and not a Python ssh library: the user's ``~/.ssh/config`` (aliases, ProxyJump,
certificates, Kerberos, FIDO keys) works as it does in their terminal, and a ControlMaster lets
rsync, commands, forwards and the agent channel share ONE authentication, so a password or
one-time code is asked once per session. The node is reached through the login host's master with
``ssh -W`` (a ProxyCommand), so the login host never sees a second login.

Argv builders are pure functions; ``ControlMaster`` and ``run`` are the only places that spawn ssh.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tui.errors import TetherError
from tui.events import EventSink


@dataclass(frozen=True)
class Destination:
    """One ssh destination: an ssh_config alias or a host, with optional user and port."""

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Destination:
        """``alias``, ``host``, ``user@host``, ``host:port`` or ``user@host:port``."""
        user, _, rest = text.rpartition("@")
        host, sep, port = rest.partition(":")
        if sep and port.isdigit():
            return cls(host, user or None, int(port))
        return cls(rest, user or None)

    def args(self) -> list[str]:
        """The argv tail naming this destination (options first, host last)."""
        out: list[str] = []
        if self.user:
            out += ["-l", self.user]
        if self.port:
            out += ["-p", str(self.port)]
        return out + [self.host]

    def jump_spec(self) -> str:
        """The form ProxyJump (-J) takes: [user@]host[:port]."""
        spec = f"{self.user}@{self.host}" if self.user else self.host
        return f"{spec}:{self.port}" if self.port else spec

    def __str__(self) -> str:
        return self.host


@dataclass(frozen=True)
class Hop:
    """A destination plus how to reach it: its control socket and what it is proxied through."""

    destination: Destination
    control_path: Path
    jumps: tuple[Destination, ...] = ()
    via: Hop | None = None  # the hop whose master carries this one (the login host for the node)


@dataclass(frozen=True)
class SshSettings:
    """Options shared by every ssh invocation of a workspace."""

    ssh_config: Path | None = None
    connect_timeout: int = 15
    control_persist: int = 600
    keepalive_interval: int = 10
    extra_env: dict[str, str] = field(default_factory=dict)


def base_args(settings: SshSettings, hop: Hop) -> list[str]:
    """ssh options every command to ``hop`` carries."""
    args = ["ssh"]
    if settings.ssh_config:
        args += ["-F", str(settings.ssh_config)]
    args += [
        "-o",
        f"ControlPath={hop.control_path}",
        "-o",
        f"ConnectTimeout={settings.connect_timeout}",
        "-o",
        f"ServerAliveInterval={settings.keepalive_interval}",
        "-o",
        "ServerAliveCountMax=3",
    ]
    if hop.via is not None:
        # Our ProxyCommand, given on the command line, wins over a ProxyJump in the user's config,
        # so the node is always reached through the login master (no second login-host login).
        proxy = shlex.join(client_args(settings, hop.via) + ["-W", "%h:%p"] + hop.via.destination.args())
        args += ["-o", f"ProxyCommand={proxy}"]
    return args


def client_args(settings: SshSettings, hop: Hop) -> list[str]:
    """Options of a client that must use the hop's existing master and never start its own."""
    return base_args(settings, hop) + ["-o", "ControlMaster=no"]


def master_argv(settings: SshSettings, hop: Hop) -> list[str]:
    """Start a backgrounded master: ssh authenticates, forks, and the parent exits 0."""
    args = base_args(settings, hop) + [
        "-o",
        "ControlMaster=yes",
        "-o",
        f"ControlPersist={settings.control_persist}",
    ]
    if hop.jumps:
        args += ["-J", ",".join(j.jump_spec() for j in hop.jumps)]
    return args + ["-N", "-f"] + hop.destination.args()


def command_argv(settings: SshSettings, hop: Hop, command: str, *, tty: bool = False) -> list[str]:
    """Run ``command`` (one shell string) on the hop through its master."""
    args = client_args(settings, hop)
    args += ["-t"] if tty else ["-T"]
    return args + hop.destination.args() + ["--", command]


def control_argv(settings: SshSettings, hop: Hop, operation: str, *extra: str) -> list[str]:
    """``ssh -O check|exit|forward|cancel`` against the hop's master."""
    return client_args(settings, hop) + ["-O", operation, *extra] + hop.destination.args()


def rsync_shell(settings: SshSettings, hop: Hop) -> str:
    """The ``rsync -e`` value that makes rsync ride on the hop's master."""
    return shlex.join(client_args(settings, hop))


@dataclass(frozen=True)
class RsyncTransport:
    """How rsync reaches a node: its ``-e`` shell, the host before the colon, and any options
    the far side needs (``--rsync-path`` where rsync's server must be started some other way)."""

    shell: str
    host: str
    options: tuple[str, ...] = ()


def rsync_transport(settings: SshSettings, hop: Hop) -> RsyncTransport:
    """rsync over the hop's master: user and port go where rsync expects them."""
    destination = hop.destination
    shell = rsync_shell(settings, hop)
    if destination.port:
        shell += f" -p {destination.port}"
    host = f"{destination.user}@{destination.host}" if destination.user else destination.host
    return RsyncTransport(shell, host)


_MASTER_PID = re.compile(r"Master running \(pid=(\d+)\)")


def parse_master_pid(check_stderr: str) -> int | None:
    """The master's pid from ``ssh -O check`` output, or None when no master runs."""
    match = _MASTER_PID.search(check_stderr)
    return int(match.group(1)) if match else None


class KeptForward(Protocol):
    """A forward a route keeps alive by itself (``kubectl port-forward``, restarted when it drops)."""

    local_port: int
    target: str  # what it forwards to (a pod): a new target needs a new forward

    async def start(self, timeout: float = 30.0) -> int: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class SshError(TetherError):
    """An ssh hop failed; ``fix`` says what the user can do."""


async def run_argv(
    argv: list[str],
    *,
    input_bytes: bytes | None = None,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> CommandResult:
    """Run a local process to completion (killing it on timeout) and decode its output."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if input_bytes is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(input_bytes), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        with contextlib.suppress(ProcessLookupError):  # it may have ended on its own meanwhile
            proc.kill()
        await proc.wait()
        raise
    return CommandResult(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


class ControlMaster:
    """The master connection of one hop, started once and reused by every command."""

    forwards_ports = True  # `ssh -O forward` reaches the hop (not so for a node reached through srun)

    def __init__(self, settings: SshSettings, hop: Hop) -> None:
        self.settings = settings
        self.hop = hop

    @property
    def name(self) -> str:
        return self.hop.destination.host

    def rsync_transport(self) -> RsyncTransport:
        """How rsync reaches the hop: through this master."""
        return rsync_transport(self.settings, self.hop)

    def kept_forward(self, local_port: int, remote_port: int, sink: EventSink) -> KeptForward | None:
        """A forward of the route's own making, or None: ``ssh -O forward`` where ``forwards_ports``,
        else the relay over the agent's channel."""
        return None

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.settings.extra_env}

    async def pid(self) -> int | None:
        """The running master's pid, or None when there is none (or it stopped answering)."""
        if not self.hop.control_path.exists():
            return None
        result = await run_argv(control_argv(self.settings, self.hop, "check"), timeout=10, env=self._env())
        return parse_master_pid(result.stderr) if result.ok else None

    async def start(self) -> int:
        """Authenticate and leave a master running; returns its pid. Reuses a live one."""
        existing = await self.pid()
        if existing:
            return existing
        self.hop.control_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.hop.control_path.unlink(missing_ok=True)  # a stale socket left by a killed master
        # Authentication may wait on a person typing a one-time code: no timeout here beyond ssh's
        # own ConnectTimeout for the TCP part.
        result = await run_argv(master_argv(self.settings, self.hop), env=self._env())
        if not result.ok:
            raise SshError(describe_failure(self.name, result.stderr), fix=fix_for(result.stderr))
        pid = await self.pid()
        if pid is None:
            raise SshError(f"{self.name}: ssh authenticated but left no master running")
        return pid

    async def run(self, command: str, *, input_bytes: bytes | None = None, timeout: float | None = 60) -> CommandResult:
        """Run a shell command on the hop through the master."""
        return await run_argv(
            command_argv(self.settings, self.hop, command), input_bytes=input_bytes, timeout=timeout, env=self._env()
        )

    async def stop(self) -> bool:
        """Close the master (and so every session riding on it). True if one was running."""
        if await self.pid() is None:
            self.hop.control_path.unlink(missing_ok=True)
            return False
        await run_argv(control_argv(self.settings, self.hop, "exit"), timeout=10, env=self._env())
        return True

    def exec_argv(self, command: str, *, tty: bool = False) -> list[str]:
        """argv for a long-lived command on the hop (the agent channel, an interactive attach)."""
        return command_argv(self.settings, self.hop, command, tty=tty)


PAM_SLURM_ADOPT = "pam_slurm_adopt"
# What ssh says when the hop before (our `ssh -W` through the login master) could not connect: the
# master does not pass on why, so the node being down and its sshd being stopped look the same.
PROXIED_CONNECT_FAILED = "Connection closed by UNKNOWN port 65535"


def describe_failure(host: str, stderr: str) -> str:
    """One line saying why ssh to ``host`` failed, from its stderr."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("Warning:")]
    reason = lines[-1] if lines else "ssh exited with an error and said nothing"
    if PROXIED_CONNECT_FAILED in stderr:
        reason = "the login host could not open a connection to it"
    if PAM_SLURM_ADOPT in stderr or "you have no active jobs on this node" in stderr:
        reason = "the node refuses ssh because you hold no Slurm job on it (pam_slurm_adopt)"
    return f"cannot reach {host}: {reason}"


_FIXES = (
    (
        "you have no active jobs on this node",
        'allocate a job on that node first (set [scheduler] kind = "slurm"), or use a node you hold a job on',
    ),
    (
        PAM_SLURM_ADOPT,
        'allocate a job on that node first (set [scheduler] kind = "slurm"), or use a node you hold a job on',
    ),
    (
        PROXIED_CONNECT_FAILED,
        "check the node's name in [connection] node, that the node is up, and that its sshd runs (try `ssh LOGIN ssh NODE` by hand)",
    ),
    ("Could not resolve hostname", "check the host name, or add a Host entry for it in your ssh config"),
    ("Connection refused", "is sshd running on that host and port? check the port in [connection]"),
    ("No route to host", "the host is unreachable from here: does it need a jump host ([connection] jump)?"),
    ("Connection timed out", "the host did not answer: check the address, a VPN, or a jump host"),
    (
        "Permission denied",
        "ssh refused your credentials: check the user and that your key is in authorized_keys (ssh-copy-id)",
    ),
    (
        "Host key verification failed",
        "the host key is unknown or changed: connect once with plain ssh to check and accept it",
    ),
    ("UNPROTECTED PRIVATE KEY", "chmod 600 your private key"),
)


def fix_for(stderr: str) -> str:
    """The action that most likely fixes the ssh failure described by ``stderr``."""
    for needle, fix in _FIXES:
        if needle in stderr:
            return fix
    return "try `ssh -v` with the same host to see more"
