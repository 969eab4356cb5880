"""Where the node comes from: one interface for direct hosts, Slurm, PBS and Kubernetes.

A scheduler runs its commands on the login host through the login master (``LoginShell``), reports
long waits as ``Progress`` events, and returns an ``Allocation`` naming the node. Allocations are
recorded in the workspace's state so a reattach finds the same node (``find``).
"""

from __future__ import annotations

import abc
import asyncio
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tui.errors import TetherError
from tui.events import EventSink, Progress
from tui.remote.ssh import CommandResult


class LoginShell(Protocol):
    """Runs a shell command on the login host (the login ControlMaster satisfies this)."""

    def run(
        self, command: str, *, input_bytes: bytes | None = None, timeout: float | None = 60
    ) -> Awaitable[CommandResult]: ...


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


class PolledJob(Protocol):
    """A scheduler's job as one poll saw it (Slurm's squeue, PBS's qstat)."""

    @property
    def state(self) -> str: ...  # the scheduler's own word: RUNNING, PENDING, R, Q...

    @property
    def running(self) -> bool: ...

    @property
    def ended(self) -> bool: ...

    def ends_at(self, now: float) -> float | None: ...

    def describe(self, previous: str | None = None) -> str: ...


class Scheduler(abc.ABC):
    """Allocate, wait, find, release. Implementations keep no state beyond the Allocation."""

    kind: str
    watches_jobs = False
    """True where ``state`` can tell a job's state (Slurm, PBS): the console then watches the job."""
    on_queued: Callable[[str], None] | None = None
    """Set by the session: told a job's id as soon as it waits in the queue (just submitted, or a
    recorded job pending again), so the job is recorded before the wait and a cancelled wait (`q`)
    leaves it queued for `tether attach` instead of cancelling it."""

    def queued(self, job_id: str) -> bool:
        """Tell ``on_queued``; True when someone keeps the job (a cancelled wait then leaves it)."""
        if self.on_queued is None:
            return False
        self.on_queued(job_id)
        return True

    async def state(self, job_id: str) -> PolledJob | None:
        """The job's state now, changing nothing; None where this kind has no jobs to ask about."""
        return None

    @abc.abstractmethod
    async def allocate(self, progress: EventSink) -> Allocation:
        """Ask for a node and wait (reporting progress) until it can be used."""

    @abc.abstractmethod
    async def find(self, recorded: Allocation | None) -> Allocation | None:
        """The allocation still usable from a recorded one (reattach), or None if it is gone."""

    @abc.abstractmethod
    async def release(self, allocation: Allocation) -> None:
        """Give the node back. Safe to call for an allocation that already ended."""

    async def acquire(self, recorded: Allocation | None, progress: EventSink, *, submit: bool = True) -> Allocation:
        """Reuse the recorded allocation when it is still alive, else allocate a new one.

        ``submit=False`` (a reconnect in a console whose job has ended) raises ``JobEnded`` instead
        of asking for a new job behind the user's back.
        """
        found = await self.find(recorded)
        if found is not None:
            return found
        if not submit and recorded is not None and recorded.job_id:
            raise JobEnded(f"{self.kind} job {recorded.job_id} is no longer running")
        return await self.allocate(progress)


class JobEnded(TetherError):
    """The console's job ended: a new one is asked for only when the user says so."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fix="press A in the console for a new job (or `tether down`, then `tether up`)")


HOLDER_TMUX_SESSION = "_tether_holder"  # keeps the job's tmux server alive between runs


def holder_script(tmux_socket: str | None = None, env_lines: tuple[str, ...] = ()) -> str:
    """The batch script of a holder job: start the workspace's tmux server, then keep the node.

    The batch script is the one part of a job that lasts as long as the job. The tmux server
    started here (and so every pane and the run) belongs to the job: on sites that track jobs with
    cgroups the run is part of the job and ends with it, instead of being killed when the short
    step or ssh session that created it ends. Later agents (over ssh or srun) find the server on
    ``tmux_socket``. Where tmux is not on the batch PATH, the agent starts the server itself.
    ``sleep infinity`` is GNU-only: a loop of long sleeps works on every node OS; the job ends
    with its time limit or when it is cancelled.
    """
    lines = ["#!/bin/sh", "# Tether holder job: keeps this allocation for the workspace."]
    if tmux_socket:
        tmux = f"tmux -L {shlex.quote(tmux_socket)}"
        if env_lines:  # the run's environment (module load tmux) may be what puts tmux on PATH
            lines += ["{", *env_lines, "} </dev/null >/dev/null 2>&1"]  # one per line: a "# comment" ends there
        # tmux runs a one-string command with the user's shell (tcsh, fish...): no shell syntax here.
        hold = shlex.quote("tail -f /dev/null")
        lines += [
            f"command -v tmux >/dev/null 2>&1 && {tmux} new-session -d -s {HOLDER_TMUX_SESSION} {hold} </dev/null >/dev/null 2>&1",
            # The server forks away from this script: where Slurm or PBS track a job's processes by
            # parentage rather than cgroups, only this trap ends it (and the run) with the job.
            f"trap '{tmux} kill-server 2>/dev/null; exit 0' TERM INT HUP",
        ]
    # `wait` (unlike a foreground sleep) returns at once when a signal arrives, so the trap runs.
    lines.append("while :; do sleep 86400 & wait $!; done")
    return "\n".join(lines) + "\n"


# A probe failing this many times in a row (the controller restarting, an ssh or API hiccup) ends a wait.
MAX_POLL_FAILURES = 5

T = TypeVar("T")


async def poll(
    probe: Callable[[], Awaitable[T]],
    progress: EventSink,
    sleep: Callable[[float], Awaitable[None]],
    delays: Iterable[float],
    *,
    retry_on: type[TetherError] = TetherError,
) -> AsyncIterator[T]:
    """Each answer of ``probe``, with a pause from ``delays`` after each try, until the caller stops
    (it returns or raises once the answer says so). A failed try is reported and tried again;
    ``MAX_POLL_FAILURES`` in a row raise the last failure."""
    failures = 0
    for delay in delays:
        try:
            answer = await probe()
        except retry_on as error:
            failures += 1
            if failures >= MAX_POLL_FAILURES:
                raise
            progress(Progress("node", f"{error.message}; retrying"))
        else:
            failures = 0
            yield answer
        await sleep(delay)


def growing_delays(first: float, most: float) -> Iterator[float]:
    """``first``, doubling up to ``most``, then ``most`` for ever: quick at first, gentle on long waits."""
    delay = min(first, most)
    while True:
        yield delay
        delay = min(delay * 2, most)


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


async def wait_or_release(
    wait: Awaitable[Allocation], release: Callable[[], Awaitable[None]], *, kept: bool = False
) -> Allocation:
    """Wait for a submitted job to run; if the wait fails, give the job back, and if it is
    cancelled, too, unless the job is ``kept`` (recorded for `tether attach` and `tether down`).

    A holder nobody knows of, left queued, would start later and burn the user's allocation with
    nobody on it; a recorded one is the user's, and only `tether down` (or the user) cancels it.
    """
    try:
        return await wait
    except asyncio.CancelledError:
        if not kept:
            await release()
        raise
    except BaseException:
        await release()
        raise
