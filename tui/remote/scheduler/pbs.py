"""The ``pbs`` kind: a holder job submitted with ``qsub`` keeps a node for the workspace.

Works with PBS Professional / OpenPBS and Torque: every command runs on the login host through the
login master (``LoginShell``), so the user's PBS client setup there is what is used. The holder job
only sleeps; the workspace's tmux server is started inside it later, so the run lives within the
job (and its cgroup) and ends when the job ends, never as a stray process on the node.

The parsing functions are pure and handle what both families print: ``qstat -f`` wraps long values
onto continuation lines that start with a tab (PBS Pro even splits words), and ``exec_host`` comes
as ``node01/0*4+node02/0*4`` (PBS Pro), ``node01/0+node01/1`` or ``node01/0-3`` (Torque).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import repeat

from tui.config.scheduler import PbsOptions
from tui.errors import TetherError
from tui.events import EventSink, Progress
from tui.remote.scheduler.base import (
    Allocation,
    LoginShell,
    Scheduler,
    format_elapsed,
    holder_script,
    last_line,
    poll,
    submit_holder,
    wait_or_release,
)
from tui.remote.ssh import CommandResult

STATE_NAMES = {
    "Q": "queued",
    "H": "held",
    "W": "waiting for its start time",
    "T": "being moved",
    "M": "moved to another server",
    "R": "running",
    "B": "running (array)",
    "S": "suspended",
    "U": "suspended (user busy)",
    "E": "exiting",
    "C": "completed",
    "F": "finished",
    "X": "expired",
}
# States after which the job will never run again: waiting on them would wait forever.
ENDED_STATES = frozenset("ECFX")
# States of a job that exists but has not started: nothing of ours can be running inside it.
NOT_STARTED_STATES = frozenset("QHWT")


@dataclass(frozen=True)
class PbsJobStatus:
    """One job as ``qstat -f`` shows it, for the console's job watch. ``state`` is PBS's letter,
    "F" when PBS no longer knows the job."""

    job_id: str
    state: str
    comment: str = ""
    end: float | None = None  # epoch, from the walltime left

    @property
    def running(self) -> bool:
        return self.state == "R"

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    def ends_at(self, now: float) -> float | None:
        return self.end

    def describe(self, previous: str | None = None) -> str:
        words = STATE_NAMES.get(self.state, f"in state {self.state}")
        if self.state in NOT_STARTED_STATES and previous == "R":
            words = f"was requeued ({words})"
        else:
            words = f"is {words}"
        return f"PBS job {self.job_id} {words}" + (f": {self.comment}" if self.comment else "")


# "Unknown Job Id" (both families, exit 153) and PBS Pro's "Job has finished, use -x" (exit 35).
_GONE = re.compile(r"Unknown Job Id|Job has finished|job has finished", re.IGNORECASE)
_JOB_ID = re.compile(r"^\d+(?:\[\d*\])?(?:\.[\w.-]+)?$")
_ATTRIBUTE = re.compile(r"^\s+([\w.]+) = ?(.*)$")
_JOB_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")

Sleep = Callable[[float], Awaitable[None]]


def parse_qstat_full(text: str) -> dict[str, str]:
    """The attributes of the first job in ``qstat -f`` output, plus "Job Id".

    A line starting with a tab continues the previous value; PBS Pro wraps at a fixed width, even
    inside a word, so the pieces are joined with nothing in between.
    """
    attributes: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if line.startswith("Job Id:"):
            if "Job Id" in attributes:
                break  # a second job: only the first one was asked for
            attributes["Job Id"] = line.split(":", 1)[1].strip()
            last = None
            continue
        if line.startswith("\t") and last is not None:
            attributes[last] += line.strip()
            continue
        match = _ATTRIBUTE.match(line)
        if match:
            last = match.group(1)
            attributes[last] = match.group(2).rstrip()
        elif line.strip() and last is not None and line[:1].isspace():
            attributes[last] += line.strip()  # a continuation indented with spaces (copied output)
    return attributes


def parse_exec_host(text: str) -> list[str]:
    """The distinct hosts of an ``exec_host`` value, in order.

    ``node01/0*4+node02/0*4`` -> [node01, node02]; ``node01/0+node01/1`` and ``node01/0-3`` ->
    [node01]. Whitespace left by wrapped lines is ignored.
    """
    hosts: list[str] = []
    for chunk in "".join(text.split()).split("+"):
        host = chunk.split("/", 1)[0]
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def parse_walltime(text: str) -> int:
    """Seconds in a PBS duration: ``SS``, ``MM:SS``, ``HH:MM:SS`` (hours may pass 24) or ``DD:HH:MM:SS``."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 4 or not all(re.fullmatch(r"\d+(\.\d+)?", p) for p in parts):
        raise ValueError(f"{text!r} is not a PBS walltime")
    scales = (86400, 3600, 60, 1)[-len(parts) :]
    return int(sum(float(part) * scale for part, scale in zip(parts, scales)))


def seconds_left(attributes: dict[str, str]) -> int | None:
    """Walltime requested minus walltime used; None when the job has no walltime limit."""
    limit = attributes.get("Resource_List.walltime")
    if not limit:
        return None
    used = attributes.get("resources_used.walltime")  # absent until the server first samples it
    try:
        return max(0, parse_walltime(limit) - (parse_walltime(used) if used else 0))
    except ValueError:
        return None


def job_name(workspace: str) -> str:
    """``tether-<workspace>`` with only the characters every PBS accepts in ``-N``."""
    return _JOB_NAME_BAD.sub("-", f"tether-{workspace}")[:236]


def qsub_argv(options: PbsOptions, workspace: str) -> list[str]:
    """qsub's argv for the holder job; the script itself goes on stdin."""
    # -j oe -o /dev/null: the holder prints nothing, so leave no tether-*.o1234 files in $HOME.
    # -S /bin/sh: PBS may run the script with the user's login shell (tcsh) and ignore its #! line.
    argv = ["qsub", "-N", job_name(workspace), "-j", "oe", "-o", "/dev/null", "-S", "/bin/sh"]
    if options.queue:
        argv += ["-q", options.queue]
    if options.account:
        argv += ["-A", options.account]
    if options.resources:
        argv += ["-l", options.resources]  # nodes=1:ppn=4:gpus=2 or select=1:ncpus=4:ngpus=2, as given
    if options.walltime:
        argv += ["-l", f"walltime={options.walltime}"]
    for option in options.extra:
        argv += shlex.split(option)  # "-W group_list=proj" is one option with a space in it
    return argv


def parse_job_id(stdout: str) -> str | None:
    """The job id qsub printed (``1234.pbs-server``); site submit filters may print lines before it."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    return next((line for line in reversed(lines) if _JOB_ID.match(line)), None)


def is_gone(result: CommandResult) -> bool:
    """qstat/qdel said the job no longer exists (or is only history)."""
    return not result.ok and bool(_GONE.search(result.stderr + result.stdout))


class PbsScheduler(Scheduler):
    """Allocate = submit a holder job and wait until it runs; release = ``qdel``."""

    kind = "pbs"
    watches_jobs = True

    def __init__(
        self,
        login: LoginShell,
        options: PbsOptions,
        workspace: str,
        *,
        holder: str = "",
        poll_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._login = login
        self._options = options
        self._workspace = workspace
        self.holder = holder or holder_script()  # the batch script (see base.holder_script)
        self._poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep

    async def allocate(self, progress: EventSink) -> Allocation:
        job_id = await self.submit()
        kept = self.queued(job_id)
        progress(Progress("node", f"PBS job {job_id} submitted, waiting for a node"))
        return await wait_or_release(
            self.wait_running(job_id, progress), lambda: self._release_quietly(job_id), kept=kept
        )

    async def submit(self) -> str:
        """Submit the holder job; its job id."""
        return await submit_holder(
            self._login,
            qsub_argv(self._options, self._workspace),
            self.holder,
            family="PBS",
            parse_job_id=parse_job_id,
            options_hint="queue, resources, walltime and account",
        )

    async def status(self, job_id: str) -> dict[str, str] | None:
        """``qstat -f`` attributes of the job, None when PBS no longer knows it."""
        result = await self._login.run(f"qstat -f {shlex.quote(job_id)}")
        if is_gone(result):
            return None
        if not result.ok:
            raise TetherError(
                f"qstat failed for job {job_id}: {last_line(result.stderr or result.stdout)}",
                fix=f"run `qstat -f {job_id}` on the login host to see what PBS says",
            )
        return parse_qstat_full(result.stdout)

    async def wait_running(self, job_id: str, progress: EventSink) -> Allocation:
        """Poll ``qstat -f`` until the job runs, reporting its state, comment and time waited."""
        started = time.monotonic()
        async for attributes in poll(lambda: self.status(job_id), progress, self._sleep, repeat(self._poll_interval)):
            if attributes is None:
                raise TetherError(
                    f"PBS job {job_id} vanished before it started",
                    fix="an administrator or a queue rule removed it; check the queue's limits and try again",
                )
            state = attributes.get("job_state", "?")
            if state == "R":
                return self._allocation(job_id, attributes)
            if state in ENDED_STATES:
                raise TetherError(
                    f"PBS job {job_id} ended before it could be used ({STATE_NAMES.get(state, state)})"
                    + (f": {attributes['comment']}" if attributes.get("comment") else ""),
                    fix=f"look at `qstat -xf {job_id}` (or tracejob) on the login host, then try again",
                )
            progress(Progress("node", self._waiting_message(job_id, state, attributes, started)))
        raise AssertionError("unreachable: poll() never ends by itself")

    def _waiting_message(self, job_id: str, state: str, attributes: dict[str, str], started: float) -> str:
        message = f"PBS job {job_id} {STATE_NAMES.get(state, 'in state')} ({state}) for {format_elapsed(time.monotonic() - started)}"
        comment = attributes.get("comment")
        return f"{message}: {comment}" if comment else message

    def _allocation(self, job_id: str, attributes: dict[str, str]) -> Allocation:
        hosts = parse_exec_host(attributes.get("exec_host", ""))
        if not hosts:
            raise TetherError(
                f"PBS job {job_id} runs but qstat shows no exec_host",
                fix=f"run `qstat -f {job_id}` on the login host; the job may still be starting",
            )
        left = seconds_left(attributes)
        return Allocation(node=hosts[0], job_id=job_id, ends_at=None if left is None else self._clock() + left)

    async def state(self, job_id: str) -> PbsJobStatus:
        """The job's state now (what the console polls to see it end, be requeued or suspended);
        no side effects, unlike ``find``."""
        attributes = await self.status(job_id)
        if attributes is None:
            return PbsJobStatus(job_id, "F")
        left = seconds_left(attributes)
        return PbsJobStatus(
            job_id,
            attributes.get("job_state", "?"),
            attributes.get("comment", ""),
            None if left is None else self._clock() + left,
        )

    async def find(self, recorded: Allocation | None) -> Allocation | None:
        """The recorded job when it still runs; None when PBS no longer has it running."""
        if recorded is None or not recorded.job_id:
            return None
        attributes = await self.status(recorded.job_id)
        if attributes is None:
            return None
        state = attributes.get("job_state", "?")
        if state == "R":
            return self._allocation(recorded.job_id, attributes)
        if state in NOT_STARTED_STATES:
            # Requeued (node failure) or held: nothing of ours runs in it, and left alone it would
            # start later next to the new holder job.
            await self._release_quietly(recorded.job_id)
        # Suspended jobs (S, U) are left alone: the user's run is paused inside them, not lost.
        return None

    async def release(self, allocation: Allocation) -> None:
        """``qdel`` the holder job; a job PBS no longer knows counts as released."""
        if not allocation.job_id:
            return
        result = await self._login.run(f"qdel {shlex.quote(allocation.job_id)}")
        if result.ok or is_gone(result):
            return
        raise TetherError(
            f"qdel {allocation.job_id} failed: {last_line(result.stderr or result.stdout)}",
            fix=f"run `qdel {allocation.job_id}` on the login host so the node is given back",
        )

    async def _release_quietly(self, job_id: str) -> None:
        # Best effort on a path that is already failing: the first error is the one to show.
        with contextlib.suppress(TetherError, OSError, asyncio.TimeoutError):
            await self.release(Allocation(node="", job_id=job_id))
