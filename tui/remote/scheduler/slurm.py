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

The parsing functions are pure. squeue runs with ``SLURM_TIME_FORMAT=standard`` (set with
``env``, which works whatever the login shell is), so times always come as ISO ``2024-03-04T09:13:00``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import shlex
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

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
from tui.remote.ssh import CommandResult

# squeue's fields, the free-text reason last: id, state, time limit, time left, start (actual, or
# expected while pending), end, node list, reason.
SQUEUE_FORMAT = "%i|%T|%l|%L|%S|%e|%N|%r"
SQUEUE_FIELDS = SQUEUE_FORMAT.count("|") + 1

RUNNING = "RUNNING"
GONE = "GONE"  # our own name: Slurm no longer knows the job (purged after MinJobAge, or never was)
# Not running now, but it will (or may) run later without a new submission.
WAITING_STATES = frozenset(
    {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "STOPPED"}
)
# Never running again: whatever ran inside has been, or is being, killed.
ENDED_STATES = frozenset(
    {
        "COMPLETING",
        "COMPLETED",
        "CANCELLED",
        "FAILED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "OUT_OF_MEMORY",
        "SPECIAL_EXIT",
        "REVOKED",
        GONE,
    }
)
ENDED_WORDS = {
    "COMPLETING": "is ending",
    "COMPLETED": "ended",
    "CANCELLED": "was cancelled",
    "FAILED": "failed",
    "TIMEOUT": "reached its time limit",
    "NODE_FAIL": "lost its node (node failure)",
    "PREEMPTED": "was preempted",
    "BOOT_FAIL": "could not boot its node",
    "DEADLINE": "passed its deadline",
    "OUT_OF_MEMORY": "ran out of memory",
    "SPECIAL_EXIT": "ended (special exit)",
    "REVOKED": "was revoked (federation)",
    GONE: "is no longer known to Slurm",
}
# The pending reasons users meet most, in words; any other reason is shown as Slurm names it.
REASON_WORDS = {
    "Resources": "waiting for resources to free up",
    "Priority": "jobs with higher priority are ahead",
    "Dependency": "waiting for a dependency",
    "BeginTime": "not allowed to start yet (begin time; a requeued job waits a little)",
    "JobHeldUser": "held by you (scontrol release ID)",
    "JobHeldAdmin": "held by an administrator",
    "PartitionConfig": "the request exceeds what the partition offers (cpus, memory, gpus, nodes)",
    "PartitionTimeLimit": "the time asked for exceeds the partition's limit",
    "PartitionNodeLimit": "more nodes than the partition allows",
    "PartitionDown": "the partition is down",
    "ReqNodeNotAvail": "a required node is not available",
    "Reservation": "waiting for a reservation",
    "QOSMaxJobsPerUserLimit": "you already run as many jobs as your QOS allows",
    "AssocMaxJobsLimit": "your account runs as many jobs as it may",
    "InvalidAccount": "the account is not valid",
    "InvalidQOS": "the QOS is not valid",
    "Nodes_required_for_job_are_DOWN,_DRAINED_or_reserved_for_jobs_in_higher_priority_partitions": (
        "the nodes it needs are down, drained or reserved"
    ),
}

_JOB_ID = re.compile(r"^(\d+)(?:;[\w.-]+)?$")  # --parsable: "1234" or "1234;cluster"
_JOB_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_DURATION = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_GONE = re.compile(r"Invalid job id specified|Job/step already completing or completed", re.IGNORECASE)
_NO_DURATION = frozenset({"UNLIMITED", "INFINITE", "NOT_SET", "INVALID", "N/A", "NONE", ""})

Sleep = Callable[[float], Awaitable[None]]


# --- pure parsing -----------------------------------------------------------------------------------


def parse_slurm_duration(text: str) -> int | None:
    """Seconds in a Slurm duration; None for UNLIMITED, INVALID, NOT_SET and the like.

    squeue's ``%L``/``%l`` print ``D-HH:MM:SS``, ``HH:MM:SS`` or ``MM:SS``; ``--time`` also takes
    ``MM`` (minutes), ``D-HH`` and ``D-HH:MM``, read here the way sbatch reads them.
    """
    value = text.strip()
    if value.upper() in _NO_DURATION:
        return None
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{text!r} is not a Slurm duration")
    days, first, second, third = match.groups()
    numbers = [int(n) for n in (first, second, third) if n is not None]
    if days is not None:
        hours, minutes, seconds = (numbers + [0, 0])[:3]  # D-H, D-H:M, D-H:M:S
    elif len(numbers) == 3:
        hours, minutes, seconds = numbers
    elif len(numbers) == 2:
        hours, (minutes, seconds) = 0, numbers
    else:
        hours, minutes, seconds = 0, numbers[0], 0  # a bare number is minutes
    return int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds


def parse_slurm_time(text: str) -> float | None:
    """Epoch seconds of a standard Slurm timestamp (``2024-03-04T09:13:00``, local time); None for
    N/A, NONE, Unknown and anything else that is not a time."""
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def _split_top_level(text: str) -> list[str]:
    """``a[1-2],b`` -> [``a[1-2]``, ``b``]: commas inside brackets do not split."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        depth += (char == "[") - (char == "]")
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _bracket_values(spec: str) -> Iterator[str]:
    """``01-03,07`` -> 01 02 03 07, keeping the zero padding of the range's start."""
    for item in spec.split(","):
        low, sep, high = item.strip().partition("-")
        if not sep:
            yield low
            continue
        if not (low.isdigit() and high.isdigit()):
            raise ValueError(f"{item!r} is not a node range")
        width = len(low) if low.startswith("0") else 0
        for number in range(int(low), int(high) + 1):
            yield str(number).zfill(width)


def _expand_one(pattern: str) -> Iterator[str]:
    pieces = re.split(r"(\[[^\]]*\])", pattern)
    choices = [list(_bracket_values(p[1:-1])) if p.startswith("[") else [p] for p in pieces]
    for combination in itertools.product(*choices):
        yield "".join(combination)


def expand_nodelist(text: str) -> list[str]:
    """Every host of a Slurm node list, in Slurm's order (what ``scontrol show hostnames`` prints).

    ``gpu[01-03,07]`` -> gpu01 gpu02 gpu03 gpu07; ``n[1-2]-ib[3-4]`` -> n1-ib3 n1-ib4 n2-ib3 n2-ib4.
    """
    if "(" in text:  # squeue's NODELIST(REASON) column: a reason, not nodes
        return []
    return [host for pattern in _split_top_level(text) for host in _expand_one(pattern)]


def first_host(text: str) -> str | None:
    """The first host of a node list (the node the workspace uses), without expanding the rest."""
    patterns = _split_top_level(text) if "(" not in text else []
    return next(_expand_one(patterns[0]), None) if patterns else None


@dataclass(frozen=True)
class JobStatus:
    """One job as squeue shows it. ``state`` is Slurm's name (%T), or GONE."""

    job_id: str
    state: str
    reason: str = ""  # "" where Slurm says "None"
    nodes: str = ""  # the node list (%N)
    time_limit: int | None = None  # seconds; None: no limit
    time_left: int | None = None  # seconds; None: no limit
    start: float | None = None  # epoch: actual start, or the expected start of a pending job
    end: float | None = None  # epoch: actual or expected end

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def waiting(self) -> bool:
        return self.state in WAITING_STATES

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    @property
    def node(self) -> str | None:
        return first_host(self.nodes) if self.nodes else None

    def ends_at(self, now: float) -> float | None:
        """When the job will end, from its time left at ``now``; None when it has no limit."""
        if self.time_limit is None:
            return None
        if self.time_left is not None:
            return now + self.time_left
        return self.end

    def describe(self, previous: str | None = None) -> str:
        """One line for the console: what the job is doing, in words.

        ``previous`` is the state seen the poll before: RUNNING then PENDING means "requeued".
        """
        job = f"Slurm job {self.job_id}"
        reason = explain_reason(self.reason)
        if self.ended:
            words = ENDED_WORDS.get(self.state, f"ended ({self.state})")
            return f"{job} {words}" + (f": {reason}" if reason else "")
        if self.waiting and previous == RUNNING:
            return f"{job} was requeued ({self.state.lower()})" + (f": {reason}" if reason else "")
        if self.running:
            return f"{job} running on {self.nodes}"
        return f"{job} {self.state.lower()}" + (f": {reason}" if reason else "")


def explain_reason(reason: str) -> str:
    """Slurm's reason code with what it means; "" for none."""
    if not reason or reason == "None":
        return ""
    words = REASON_WORDS.get(reason)
    return f"{reason} ({words})" if words else reason


def parse_squeue_line(line: str) -> JobStatus:
    """A line of ``squeue -h -o SQUEUE_FORMAT``.

    ``1|RUNNING|10:00|9:58|2024-03-04T09:13:00|2024-03-04T09:23:00|compute01|None``
    """
    fields = line.rstrip("\n").split("|", SQUEUE_FIELDS - 1)
    if len(fields) != SQUEUE_FIELDS:
        raise ValueError(f"{line!r} is not a line of squeue -o {SQUEUE_FORMAT!r}")
    job_id, state, limit, left, start, end, nodes, reason = (f.strip() for f in fields)

    def duration(text: str) -> int | None:
        try:
            return parse_slurm_duration(text)
        except ValueError:
            return None

    return JobStatus(
        job_id=job_id,
        state=state.split()[0].upper() if state else "UNKNOWN",  # scontrol style "CANCELLED by 1500"
        reason="" if reason == "None" else reason,
        nodes="" if nodes.startswith("(") else nodes,
        time_limit=duration(limit),
        time_left=duration(left),
        start=parse_slurm_time(start),
        end=parse_slurm_time(end),
    )


def parse_squeue(stdout: str, job_id: str) -> JobStatus | None:
    """The line of ``job_id`` in squeue's output (a site wrapper may add other lines), or None."""
    for line in stdout.splitlines():
        if line.count("|") >= SQUEUE_FIELDS - 1:
            with contextlib.suppress(ValueError):
                status = parse_squeue_line(line)
                if status.job_id == job_id:
                    return status
    return None


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
