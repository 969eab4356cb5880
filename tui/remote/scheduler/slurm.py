"""The ``slurm`` kind: a holder job submitted with ``sbatch`` keeps a node for the workspace.

Every command runs on the login host through the login master (``LoginShell``), so the user's
Slurm client setup there (PATH, SLURM_CONF, the site's submit filters) is what is used.

- **Allocate.** ``sbatch --parsable`` submits the holder job with the options of [scheduler], named
  as Slurm names them; the batch script comes on stdin and only sleeps. While the job waits,
  ``squeue`` is polled and each poll becomes a ``Progress`` event: state, reason, the expected
  start (``%S`` of a pending job is the START_TIME that ``squeue --start`` shows, computed by the
  backfill scheduler), and the time waited. A wait that is cancelled or fails cancels the job, so
  no forgotten holder starts later and burns the user's allocation.
- **Find the node.** ``%N`` of the running job; a multi-node list (``gpu[01-03]``) gives its first
  host. Time left comes from ``%L`` (``%l`` UNLIMITED means the job does not end).
- **Reach the node.** By ssh through the login host where the site allows it (pam_slurm_adopt
  admits users who hold a job on the node, and adopts their sessions into the job), else through
  ``srun_prefix(job_id)`` / ``srun_command(job_id, cmd)`` on the login host: ``srun --jobid=ID
  --overlap`` runs a step inside the holder job on its node, with stdin, stdout and the exit
  status passed through (the agent channel), and rsync's server through ``--rsync-path``.
- **Reattach / watch.** ``find`` reuses a RUNNING recorded job; ``acquire`` also waits for a
  recorded job that is pending again (requeued, held) instead of submitting a second one.
  ``state(job_id)`` is what the console polls to see a job end, fail, be preempted, requeued or
  cancelled from outside.
- **Release.** ``scancel``; a job Slurm no longer knows counts as released.

The parsing functions (here and in ``slurm_status``) are pure. squeue runs with ``SLURM_TIME_FORMAT=standard`` (set with
``env``, which works whatever the login shell is), so times always come as ISO ``2024-03-04T09:13:00``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import time
from collections.abc import Awaitable, Callable

from tui.config.scheduler import SlurmOptions
from tui.errors import TetherError
from tui.events import EventSink, Progress
from tui.remote.scheduler.base import (
    Allocation,
    JobEnded,
    LoginShell,
    Scheduler,
    format_elapsed,
    growing_delays,
    holder_script,
    last_line,
    poll,
    submit_holder,
    wait_or_release,
)
from tui.remote.scheduler.slurm_status import GONE, RUNNING, SQUEUE_FORMAT, JobStatus, explain_reason, parse_squeue
from tui.remote.ssh import CommandResult

_JOB_ID = re.compile(r"^(\d+)(?:;[\w.-]+)?$")  # --parsable: "1234" or "1234;cluster"
_JOB_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_GONE = re.compile(r"Invalid job id specified|Job/step already completing or completed", re.IGNORECASE)

Sleep = Callable[[float], Awaitable[None]]


# --- pure parsing -----------------------------------------------------------------------------------


def parse_job_id(stdout: str) -> str | None:
    """The job id ``sbatch --parsable`` printed (``1234`` or ``1234;cluster``); submit filters may
    print lines before it."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    for line in reversed(lines):
        match = _JOB_ID.match(line)
        if match:
            return match.group(1)
    return None


def job_name(workspace: str, given: str | None = None) -> str:
    """``tether-<workspace>`` (or the configured name) with only characters safe everywhere."""
    return _JOB_NAME_BAD.sub("-", given or f"tether-{workspace}")[:200]


def sbatch_argv(options: SlurmOptions, workspace: str) -> list[str]:
    """sbatch's argv for the holder job; the script itself goes on stdin."""
    # --output=/dev/null: the holder prints nothing, so no slurm-1234.out files pile up.
    argv = ["sbatch", "--parsable", f"--job-name={job_name(workspace, options.job_name)}", "--output=/dev/null"]
    named = (
        ("partition", options.partition),
        ("account", options.account),
        ("qos", options.qos),
        ("time", options.time),
        ("gpus", options.gpus),
        ("gres", options.gres),
        ("cpus-per-task", options.cpus_per_task),
        ("mem", options.mem),
        ("constraint", options.constraint),
    )
    argv += [f"--{name}={value}" for name, value in named if value is not None and value != ""]
    argv.append(f"--nodes={options.nodes}")
    for option in options.extra:
        argv += shlex.split(option)  # "--exclusive", "--mail-type END", "--comment='a b'"
    return argv


def squeue_command(job_id: str) -> str:
    """squeue for one job in every state (``-t all``: a job cancelled a moment ago shows CANCELLED)."""
    argv = ["env", "SLURM_TIME_FORMAT=standard", "squeue", "-h", "-t", "all", "-j", job_id, "-o", SQUEUE_FORMAT]
    return shlex.join(argv)


def srun_prefix(job_id: str, node: str | None = None) -> str:
    """The prefix that runs a command inside the job, on its node, for sites whose nodes take no ssh.

    ``--overlap`` shares the job's resources with the holder and other steps; ``--quit-on-interrupt``
    makes one C-c end the step (without it srun wants a second C-c within a second);
    ``--unbuffered`` passes output on as it comes: with srun's default line buffering a binary
    stream (rsync's protocol) deadlocks, measured on the testbed. One task on one node, so a
    multi-node holder does not run the command on every node.

    rsync rides on it as ``--rsync-path='<prefix> rsync'`` with the login host as rsync's remote.
    """
    argv = ["srun", f"--jobid={job_id}", "--overlap", "--quit-on-interrupt", "--unbuffered", "--nodes=1", "--ntasks=1"]
    if node:
        argv.append(f"--nodelist={node}")
    return shlex.join(argv)


def srun_command(job_id: str, command: str, node: str | None = None) -> str:
    """``command`` (a shell string) wrapped to run on the job's node through srun, from the login host."""
    return f"{srun_prefix(job_id, node)} /bin/sh -c {shlex.quote(command)}"


def is_gone(result: CommandResult) -> bool:
    """squeue/scancel said the job no longer exists (or has already ended)."""
    return bool(_GONE.search(result.stderr + result.stdout))


def _clock_time(epoch: float, now: float) -> str:
    stamp = time.localtime(epoch)
    return time.strftime("%H:%M" if abs(epoch - now) < 20 * 3600 else "%b %d %H:%M", stamp)


def waiting_message(status: JobStatus, waited: float, now: float) -> str:
    """``Slurm job 12 pending for 0:05: Resources (...); expected start 14:56 (in 9:58)``."""
    message = f"Slurm job {status.job_id} {status.state.lower()} for {format_elapsed(waited)}"
    reason = explain_reason(status.reason)
    if reason:
        message += f": {reason}"
    if status.state == "PENDING" and status.start is not None:
        ahead = status.start - now
        when = f"in {format_elapsed(ahead)}" if ahead >= 1 else "any moment"
        message += f"; expected start {_clock_time(status.start, now)} ({when})"
    return message


# --- the scheduler ----------------------------------------------------------------------------------


class SlurmScheduler(Scheduler):
    """Allocate = submit a holder job and wait until it runs; release = ``scancel``."""

    kind = "slurm"
    watches_jobs = True

    def __init__(
        self,
        login: LoginShell,
        options: SlurmOptions,
        workspace: str,
        *,
        holder: str = "",
        poll_interval: float = 5.0,
        first_poll: float = 0.25,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._login = login
        self._options = options
        self._workspace = workspace
        self.holder = holder or holder_script()  # the batch script (see base.holder_script)
        self._poll_interval = poll_interval
        self._first_poll = min(first_poll, poll_interval)
        self._clock = clock
        self._sleep = sleep

    # -- allocate ----------------------------------------------------------------------------
    async def allocate(self, progress: EventSink) -> Allocation:
        job_id = await self.submit()
        kept = self.queued(job_id)
        progress(Progress("node", f"Slurm job {job_id} submitted, waiting for a node"))
        return await wait_or_release(
            self.wait_running(job_id, progress), lambda: self._release_quietly(job_id), kept=kept
        )

    async def acquire(self, recorded: Allocation | None, progress: EventSink, *, submit: bool = True) -> Allocation:
        """Reuse the recorded job when it runs; wait for it when it is pending again (requeued or
        held: it keeps its place in the queue); otherwise allocate a new one (unless ``submit`` is
        False: then ``JobEnded``)."""
        if recorded is not None and recorded.job_id:
            status = await self.state(recorded.job_id)
            if status.running:
                return self._allocation(status)
            if status.waiting:
                self.queued(recorded.job_id)
                # A recorded job is the user's: a cancelled wait (`q`) leaves it in the queue.
                if recorded.node:  # it ran before: requeued or held since
                    said = f"{status.describe(previous=RUNNING)}; waiting for it to run again"
                else:  # `q` while it was queued: it still is
                    said = f"{status.describe()}: still queued; waiting for it to run"
                progress(Progress("node", said))
                job_id = recorded.job_id
                return await wait_or_release(
                    self.wait_running(job_id, progress), lambda: self._release_quietly(job_id), kept=True
                )
            if not submit:
                raise JobEnded(status.describe())
        return await self.allocate(progress)

    async def submit(self) -> str:
        """Submit the holder job; its job id."""
        return await submit_holder(
            self._login,
            sbatch_argv(self._options, self._workspace),
            self.holder,
            family="Slurm",
            parse_job_id=parse_job_id,
            options_hint="partition, account, qos, time, gpus, gres, cpus_per_task, mem and constraint",
        )

    async def state(self, job_id: str) -> JobStatus:
        """The job as squeue shows it now; state GONE when Slurm no longer knows it.

        The console polls this to see a job end, fail, be preempted, requeued or cancelled.
        """
        result = await self._login.run(squeue_command(job_id))
        if not result.ok and is_gone(result):
            return JobStatus(job_id, GONE)
        if not result.ok:
            raise TetherError(
                f"squeue failed for job {job_id}: {last_line(result.stderr or result.stdout)}",
                fix=f"run `squeue -j {job_id}` on the login host to see what Slurm says",
            )
        return parse_squeue(result.stdout, job_id) or JobStatus(job_id, GONE)

    async def wait_running(self, job_id: str, progress: EventSink) -> Allocation:
        """Poll squeue until the job runs, reporting state, reason, expected start and time waited.

        Polls start quick (a free node starts the job within a second or so) and slow down to
        ``poll_interval``, to spare the controller during long waits.
        """
        started = time.monotonic()
        delays = growing_delays(self._first_poll, self._poll_interval)
        async for status in poll(lambda: self.state(job_id), progress, self._sleep, delays):
            if status.running:
                allocation = self._allocation(status)
                progress(Progress("node", f"Slurm job {job_id} running on {allocation.node}", 1.0))
                return allocation
            if status.ended:
                raise TetherError(
                    f"{status.describe()} before it could be used",
                    fix=f"look at `scontrol show job {job_id}` (or sacct -j {job_id}) on the login host, "
                    "then try again",
                )
            progress(Progress("node", waiting_message(status, time.monotonic() - started, self._clock())))
        raise AssertionError("unreachable: poll() never ends by itself")

    def _allocation(self, status: JobStatus) -> Allocation:
        node = status.node
        if not node:
            raise TetherError(
                f"Slurm job {status.job_id} runs but squeue shows no node",
                fix=f"run `squeue -j {status.job_id} -o %N` on the login host",
            )
        return Allocation(node=node, job_id=status.job_id, ends_at=status.ends_at(self._clock()))

    # -- reattach ----------------------------------------------------------------------------
    async def find(self, recorded: Allocation | None) -> Allocation | None:
        """The recorded job when it runs (with a fresh end time), else None.

        A recorded job that is pending again (requeued, held) or suspended also gives None here,
        and is left alone: ``acquire`` waits for it rather than submitting a second job.
        """
        if recorded is None or not recorded.job_id:
            return None
        status = await self.state(recorded.job_id)
        return self._allocation(status) if status.running else None

    # -- release -----------------------------------------------------------------------------
    async def release(self, allocation: Allocation, *, settle: float = 10.0) -> None:
        """``scancel`` the holder job; a job Slurm no longer knows counts as released.

        Then wait (up to ``settle`` seconds) until the job has finished ending, so that when
        `tether down` returns, ``squeue`` no longer lists it (it shows COMPLETING jobs).
        """
        if not allocation.job_id:
            return
        result = await self._login.run(shlex.join(["scancel", allocation.job_id]))
        if not result.ok and not is_gone(result):
            raise TetherError(
                f"scancel {allocation.job_id} failed: {last_line(result.stderr or result.stdout)}",
                fix=f"run `scancel {allocation.job_id}` on the login host so the node is given back",
            )
        deadline = time.monotonic() + settle
        delay = self._first_poll
        while time.monotonic() < deadline:
            try:
                status = await self.state(allocation.job_id)
            except TetherError:
                return  # cancelled all the same; only the confirmation is missing
            if status.ended and status.state != "COMPLETING":
                return
            await self._sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _release_quietly(self, job_id: str) -> None:
        # Best effort on a path that is already failing: the first error is the one to show.
        with contextlib.suppress(TetherError, OSError, asyncio.TimeoutError):
            await asyncio.shield(self.release(Allocation(node="", job_id=job_id), settle=0))
