"""Where the node comes from: one interface for direct hosts, Slurm, PBS and Kubernetes.

A scheduler runs its commands on the login host through the login master (``LoginShell``), reports
long waits as ``Progress`` events, and returns an ``Allocation`` naming the node. Allocations are
recorded in the workspace's state so a reattach finds the same node (``find``).
"""

from __future__ import annotations

import abc
import shlex
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

from tui.errors import TetherError
from tui.events import EventSink
from tui.remote.ssh import CommandResult


class LoginShell(Protocol):
    """Runs a shell command on the login host (the login ControlMaster satisfies this)."""

    def run(self, command: str, *, input_bytes: bytes | None = None, timeout: float | None = 60) -> Awaitable[CommandResult]:
        ...


@dataclass(frozen=True)
class Allocation:
    """A node held for the workspace. ``node`` is an ssh destination; "" means the login host."""

    node: str
    job_id: str | None = None
    ends_at: float | None = None  # epoch seconds; None when the allocation does not expire

    def time_left(self, now: float | None = None) -> float | None:
        """Seconds until the allocation ends, None when it does not end."""
        if self.ends_at is None:
            return None
        return max(0.0, self.ends_at - (time.time() if now is None else now))


class Scheduler(abc.ABC):
    """Allocate, wait, find, release. Implementations keep no state beyond the Allocation."""

    kind: str

    @abc.abstractmethod
    async def allocate(self, progress: EventSink) -> Allocation:
        """Ask for a node and wait (reporting progress) until it can be used."""

    @abc.abstractmethod
    async def find(self, recorded: Allocation | None) -> Allocation | None:
        """The allocation still usable from a recorded one (reattach), or None if it is gone."""

    @abc.abstractmethod
    async def release(self, allocation: Allocation) -> None:
        """Give the node back. Safe to call for an allocation that already ended."""

    async def acquire(self, recorded: Allocation | None, progress: EventSink) -> Allocation:
        """Reuse the recorded allocation when it is still alive, else allocate a new one."""
        found = await self.find(recorded)
        return found if found is not None else await self.allocate(progress)


def format_elapsed(seconds: float) -> str:
    """``1:05`` or ``2:01:05``: short enough for a progress line."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def last_line(text: str) -> str:
    """The last non-blank line of a command's output: usually the error that matters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


async def submit_holder(
    login: LoginShell,
    argv: list[str],
    script: str,
    *,
    family: str,
    parse_job_id: Callable[[str], str | None],
    options_hint: str,
) -> str:
    """Submit a holder job (``argv`` is sbatch or qsub, ``script`` on stdin); its job id."""
    command = shlex.join(argv)
    tool = argv[0]
    result = await login.run(command, input_bytes=script.encode())
    if result.returncode == 127 or f"{tool}: command not found" in result.stderr:
        raise TetherError(
            f"{tool} was not found on the login host",
            fix=f"make the {family} commands available in non-interactive shells there (PATH in ~/.bashrc)",
        )
    job_id = parse_job_id(result.stdout) if result.ok else None
    if job_id is None:
        raise TetherError(
            f"{tool} refused the holder job: {last_line(result.stderr or result.stdout)}",
            fix=f"check {options_hint} under [scheduler] in tether.toml (the command was: {command})",
        )
    return job_id


async def wait_or_release(wait: Awaitable[Allocation], release: Callable[[], Awaitable[None]]) -> Allocation:
    """Wait for a submitted job to run; if the wait is cancelled or fails, give the job back.

    A holder left queued would start later and burn the user's allocation with nobody on it.
    """
    try:
        return await wait
    except BaseException:
        await release()
        raise
