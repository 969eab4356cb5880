"""Slurm's job states and the pure parsing of what squeue prints: durations, times, node lists.

squeue runs with ``SLURM_TIME_FORMAT=standard``, so times come as ISO ``2024-03-04T09:13:00``.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

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

_DURATION = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_NO_DURATION = frozenset({"UNLIMITED", "INFINITE", "NOT_SET", "INVALID", "N/A", "NONE", ""})


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
