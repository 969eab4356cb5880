"""What in a run needs the user's attention, found in what the console already receives (the run's
output and the ranks' states): no extra byte on the link. Each alert is raised once, with the key
that acts on it; the console shows them as notifications.

Textual-free: the app feeds events in and shows the alerts that come out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tui.events import RankState, RunState

# As PyTorch 2.x prints them (older releases say "RuntimeError: CUDA out of memory.").
OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory")
NCCL = re.compile(r"NCCL error|NCCL communicator was aborted|Watchdog caught collective operation timeout"
                  r"|nccl(?:Internal|System|UnhandledCuda|InvalidUsage|Remote)Error")
# The line a Python traceback ends with: "ValueError: ...", "torch.OutOfMemoryError: ...".
ERROR_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Interrupt|Exit)\b(?::.*)?$")
SHOWN = 160  # characters of an output line in an alert


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
                alerts.append(Alert("oom", "CUDA out of memory", f"{_short(text)}  (l: the log, r: restart)"))
            if "nccl" not in self._seen and NCCL.search(text):
                self._seen.add("nccl")
                alerts.append(Alert("nccl", "NCCL error", f"{_short(text)}  (l: the log, r: restart)"))
        return alerts

    def run_state(self, state: RunState) -> list[Alert]:
        alerts: list[Alert] = []
        for rank in state.ranks:
            if self._starts.get(rank.rank, rank.started_at) != rank.started_at:
                self._seen.clear()  # a new start: its own OOM is news again
                self.last_error = ""
            self._starts[rank.rank] = rank.started_at
            if rank.status == "crashed" and (rank.rank, rank.started_at) not in self._crashes:
                self._crashes.add((rank.rank, rank.started_at))
                alerts.append(self._crashed(rank))
        return alerts

    def _crashed(self, rank: RankState) -> Alert:
        why = _short(self.last_error) if self.last_error else rank.reason or "it ended with an error"
        return Alert("crashed", f"Rank {rank.rank} crashed", f"{why}  (l: the log, r: restart)")
