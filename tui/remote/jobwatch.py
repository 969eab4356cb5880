"""Watch the allocation while the console runs: a job that ends, is preempted, requeued or cancelled
from outside is said at once, and the console warns before the time runs out.

Polls the scheduler's ``state(job_id)`` (one squeue on the login master every few seconds) and
reports changes as ``Notice`` events; the scheduler's own ``describe`` words them. Each
change of state or end time also goes out as ``AllocationChanged``, from which the console's
header counts the time left down by itself, and the console's alerts warn of the last minutes
(``tui.alerts.JobAlerts``: once, with the key for a new job; this watch does not say it again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tui.errors import TetherError
from tui.events import AllocationChanged, EventSink, JobState, Notice
from tui.remote.scheduler.base import PolledJob

# squeue's time left is whole seconds read at some point within a poll: an end time that moved less
# than this is the same end time, and the header already counts it down.
ENDS_AT_SLACK_S = 30.0
NEW_JOB_HINT = "press A for a new job"


Probe = Callable[[str], Awaitable[PolledJob | None]]


class JobWatch:
    """Polls one job until it ends or the watch is cancelled."""

    def __init__(
        self,
        probe: Probe,
        job_id: str,
        sink: EventSink,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.time,
        node: str = "",
    ) -> None:
        self._probe = probe
        self.job_id = job_id
        self.node = node
        self._sink = sink
        self._interval = interval
        self._clock = clock
        self.last_state: str | None = None
        self._shown: AllocationChanged | None = None

    async def run(self) -> None:
        while True:
            try:
                status = await self._probe(self.job_id)
                if status is None:  # this scheduler cannot say: nothing to watch
                    return
            except (TetherError, OSError, asyncio.TimeoutError):
                await asyncio.sleep(self._interval)  # the link supervisor reports a dead link
                continue
            if self.observe(status):
                return
            await asyncio.sleep(self._interval)

    def observe(self, status: PolledJob) -> bool:
        """Report what changed in ``status``; True once the job has ended (nothing left to watch)."""
        if status.state != self.last_state:
            level = "error" if status.ended else ("info" if self.last_state is None else "warning")
            message = status.describe(self.last_state)
            if status.ended:
                message += f"; {NEW_JOB_HINT}"
            self._sink(Notice(message, level))
            self.last_state = status.state
        ends_at = status.ends_at(self._clock())
        if status.ended:
            self._show(AllocationChanged(self.job_id, self.node, None, JobState.ENDED))
        elif status.running:
            self._show(AllocationChanged(self.job_id, self.node, ends_at, JobState.RUNNING))
        else:
            self._show(AllocationChanged(self.job_id, self.node, ends_at, JobState.WAITING, status.state.lower()))
        return status.ended

    def _show(self, allocation: AllocationChanged) -> None:
        """Send ``allocation`` when the state changed or the end moved noticeably."""
        shown = self._shown
        if (
            shown is not None
            and shown.state is allocation.state
            and shown.detail == allocation.detail
            and not _moved(shown.ends_at, allocation.ends_at)
        ):
            return
        self._sink(allocation)
        self._shown = allocation


def _moved(before: float | None, after: float | None) -> bool:
    if before is None or after is None:
        return before is not after
    return abs(after - before) > ENDS_AT_SLACK_S
