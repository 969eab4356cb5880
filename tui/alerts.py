"""What in a run needs the user's attention, found in what the console already receives (the run's
output and the ranks' states): no extra byte on the link. Each alert is raised once, with the key
that acts on it; the console shows them as notifications.

Textual-free: the app feeds events in and shows the alerts that come out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tui.durations import describe_duration
from tui.events import (
    JOB_ENDING_S,
    AllocationChanged,
    JobState,
    LinkChanged,
    LinkState,
    RankState,
    RankStatus,
    RunState,
)
from tui.keys import shown_keys

# As PyTorch 2.x prints them (older releases say "RuntimeError: CUDA out of memory.").
OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory")
NCCL = re.compile(
    r"NCCL error|NCCL communicator was aborted|Watchdog caught collective operation timeout"
    r"|nccl(?:Internal|System|UnhandledCuda|InvalidUsage|Remote)Error"
)
# The line a Python traceback ends with: "ValueError: ...", "torch.OutOfMemoryError: ...".
ERROR_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Interrupt|Exit)\b(?::.*)?$")
SHOWN = 160  # characters of an output line in an alert
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (0x9d is OSC, 0x9c ST in 8-bit terminals)


def terminal_sequence(mode: str, title: str, message: str) -> str:
    """What to write to the terminal for an alert (``[ui] terminal_alert``): BEL, an OSC 9 desktop
    notification (iTerm2, WezTerm, kitty, Windows Terminal; others ignore it), or nothing.

    The text comes from the run's output: control characters are dropped, so a line the run printed
    cannot end the sequence early and send the terminal escapes of its own."""
    if mode == "bell":
        return "\a"
    if mode == "desktop":
        text = CONTROL.sub(" ", f"{title}: {message}")
        return f"\x1b]9;{_short(text)}\x07"
    return ""


@dataclass(frozen=True)
class Alert:
    kind: str  # "oom", "nccl", "crashed"
    title: str
    message: str
    severity: str = "error"


def _short(line: str) -> str:
    line = line.strip()
    return line if len(line) <= SHOWN else line[: SHOWN - 1] + "…"


@dataclass
class RunAlerts:
    """Feed it the run's output lines and its states; it says what is worth a notification."""

    _seen: set[str] = field(default_factory=set)  # output alerts raised since the run last started
    _crashes: set[tuple[int, float | None]] = field(default_factory=set)
    _starts: dict[int, float | None] = field(default_factory=dict)
    last_error: str = ""
    keys: dict[str, str] = field(default_factory=shown_keys)  # the keys in force, for the hints

    @property
    def _hint(self) -> str:
        return f"({self.keys['logs']}: the log, {self.keys['restart']}: restart)"

    def output(self, lines: Iterable[str]) -> list[Alert]:
        alerts: list[Alert] = []
        for line in lines:
            text = line.strip()
            if ERROR_LINE.match(text):
                self.last_error = text
            if line[:1].isspace():
                continue  # a traceback's source line ("    raise ..."): the error line itself comes next
            if "oom" not in self._seen and OOM.search(text):
                self._seen.add("oom")
                alerts.append(Alert("oom", "CUDA out of memory", f"{_short(text)}  {self._hint}"))
            if "nccl" not in self._seen and NCCL.search(text):
                self._seen.add("nccl")
                alerts.append(Alert("nccl", "NCCL error", f"{_short(text)}  {self._hint}"))
        return alerts

    def run_state(self, state: RunState) -> list[Alert]:
        alerts: list[Alert] = []
        for rank in state.ranks:
            if self._starts.get(rank.rank, rank.started_at) != rank.started_at:
                self._seen.clear()  # a new start: its own OOM is news again
                self.last_error = ""
            self._starts[rank.rank] = rank.started_at
            if rank.status is RankStatus.CRASHED and (rank.rank, rank.started_at) not in self._crashes:
                self._crashes.add((rank.rank, rank.started_at))
                alerts.append(self._crashed(rank))
        return alerts

    def _crashed(self, rank: RankState) -> Alert:
        why = _short(self.last_error) if self.last_error else rank.reason or "it ended with an error"
        return Alert("crashed", f"Rank {rank.rank} crashed", f"{why}  {self._hint}")


@dataclass
class LinkAlerts:
    """The link lost, and back: once per outage (a reconnect's many tries are one outage), and only
    after it was up once (the first connection has its own progress lines)."""

    _lost_at: float | None = None
    _was_up: bool = False

    def link(self, event: LinkChanged, now: float) -> list[Alert]:
        if event.state is LinkState.UP:
            lost_at, self._lost_at, self._was_up = self._lost_at, None, True
            if lost_at is None:
                return []
            return [
                Alert(
                    "link_back",
                    "Link back",
                    f"after {describe_duration(now - lost_at)}; edits made meanwhile go now",
                    "information",
                )
            ]
        if event.state in (LinkState.LOST, LinkState.RECONNECTING) and self._was_up and self._lost_at is None:
            self._lost_at = now
            why = f" ({_short(event.detail)})" if event.detail else ""
            return [
                Alert(
                    "link_lost",
                    "Link lost",
                    f"the node is out of reach{why}. The run goes on there; edits wait and go when the link is back",
                    "warning",
                )
            ]
        return []


@dataclass
class JobAlerts:
    """The job's last minutes (``JOB_ENDING_S``): once per job, checked as the clock runs."""

    _warned: set[str] = field(default_factory=set)
    keys: dict[str, str] = field(default_factory=shown_keys)  # the keys in force, for the hint

    def check(self, allocation: AllocationChanged | None, now: float) -> list[Alert]:
        if allocation is None or allocation.job_id is None or allocation.ends_at is None:
            return []
        left = allocation.ends_at - now
        if allocation.state is not JobState.RUNNING or left > JOB_ENDING_S or allocation.job_id in self._warned:
            return []
        self._warned.add(allocation.job_id)
        return [
            Alert(
                "job_ending",
                "Job ending soon",
                f"job {allocation.job_id} ends in {describe_duration(left)}: save checkpoints now ({self.keys['new_job']}: a new job once it ends)",
                "warning",
            )
        ]
