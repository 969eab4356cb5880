"""The ``direct`` kind: a fixed node (or the login host itself), nothing to allocate or release."""

from __future__ import annotations

from tui.events import EventSink, Progress
from tui.remote.scheduler.base import Allocation, Scheduler


class DirectScheduler(Scheduler):
    kind = "direct"

    def __init__(self, node: str) -> None:
        self._node = node

    async def allocate(self, progress: EventSink) -> Allocation:
        progress(Progress("node", f"using {self._node or 'the login host'}", 1.0))
        return Allocation(node=self._node)

    async def find(self, recorded: Allocation | None) -> Allocation | None:
        # The configured node always wins over a recorded one: the user may have edited tether.toml.
        return Allocation(node=self._node)

    async def release(self, allocation: Allocation) -> None:
        """A direct host is never released: it is not ours to give back."""
