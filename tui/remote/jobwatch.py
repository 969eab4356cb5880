"""Watch the allocation while the console runs: a job that ends, is preempted, requeued or cancelled
from outside is said at once, and the console warns before the time runs out.

Polls the scheduler's ``state(job_id)`` (one squeue on the login master every few seconds) and
reports changes as ``Notice`` events; the scheduler's own ``JobStatus.describe`` words them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Protocol

from tui.errors import TetherError
from tui.events import EventSink, Notice

WARN_BEFORE_END_S = 600.0


class JobStatusLike(Protocol):
    state: str

    @property
    def ended(self) -> bool: ...

    def ends_at(self, now: float) -> float | None: ...

    def describe(self, previous: str | None = None) -> str: ...


Probe = Callable[[str], Awaitable[JobStatusLike]]


class JobWatch:
    """Polls one job until it ends or the watch is cancelled."""

    def __init__(self, probe: Probe, job_id: str, sink: EventSink, *, interval: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._probe = probe
        self.job_id = job_id
        self._sink = sink
        self._interval = interval
        self._clock = clock
        self.last_state: str | None = None
        self._warned = False

    async def run(self) -> None:
        while True:
            try:
                status = await self._probe(self.job_id)
            except (TetherError, OSError, asyncio.TimeoutError):
                await asyncio.sleep(self._interval)  # the link supervisor reports a dead link
                continue
            if self.observe(status):
                return
            await asyncio.sleep(self._interval)

    def observe(self, status: JobStatusLike) -> bool:
        """Report what changed in ``status``; True once the job has ended (nothing left to watch)."""
        if status.state != self.last_state:
            level = "error" if status.ended else ("info" if self.last_state is None else "warning")
            message = status.describe(self.last_state)
            if status.ended:
                message += "; `tether down`, then `tether up` gets a new node"
            self._sink(Notice(message, level))
            self.last_state = status.state
        ends_at = status.ends_at(self._clock())
        if not self._warned and ends_at is not None and ends_at - self._clock() <= WARN_BEFORE_END_S:
            minutes = max(0, round((ends_at - self._clock()) / 60))
            self._sink(Notice(f"job {self.job_id} ends in {minutes} min: save checkpoints now", "warning"))
            self._warned = True
        return status.ended
