"""The bring-up's stages and when each was reached, for `tether up -v` and the bring-up benchmark.

The clock watches the session's own events (it adds none to the path it measures): the first
time each stage's event goes by, it notes the time since the command started.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from tui.events import (
    EventSink,
    LayoutChanged,
    LinkChanged,
    LinkState,
    Notice,
    OutputLines,
    RankStatus,
    RunState,
    SyncState,
    SyncStatus,
)

_RUNNING = (RankStatus.RUNNING, RankStatus.ATTACHED, RankStatus.WAITING_FOR_DEBUGGER)


class Stage(enum.Enum):
    """In the order a bring-up normally reaches them (the first sync and the node may swap)."""

    LOGIN = "logged in to the login host"
    CONSOLE = "console open, connecting"
    NODE = "node reached, agent up"
    FIRST_SYNC = "first sync done"
    LAYOUT = "tmux layout up"
    RUNNING = "run running"
    FORWARDED = "debug port forwarded"
    FIRST_LINE = "run's first line shown"


def stage_of(event: object) -> Stage | None:
    """The stage ``event`` shows was reached, if any."""
    if isinstance(event, LinkChanged) and event.state is LinkState.UP:
        return Stage.NODE
    if isinstance(event, SyncStatus) and event.state is SyncState.UP_TO_DATE:
        return Stage.FIRST_SYNC
    if isinstance(event, LayoutChanged) and event.exists:
        return Stage.LAYOUT
    if isinstance(event, RunState) and event.ranks:
        if all(rank.local_port for rank in event.ranks):
            return Stage.FORWARDED
        if any(rank.status in _RUNNING for rank in event.ranks):
            return Stage.RUNNING
    if isinstance(event, OutputLines) and any(line.strip() for line in event.lines):
        return Stage.FIRST_LINE
    return None


@dataclass
class BringUpClock:
    """When each stage was first reached, in seconds since ``started`` (a ``time.monotonic()``)."""

    started: float = field(default_factory=time.monotonic)
    reached: dict[Stage, float] = field(default_factory=dict)

    def mark(self, stage: Stage) -> None:
        self.reached.setdefault(stage, time.monotonic() - self.started)

    def observe(self, event: object) -> None:
        stage = stage_of(event)
        if stage is Stage.FORWARDED:
            self.mark(Stage.RUNNING)  # a snapshot may bring both at once
        if stage is not None:
            self.mark(stage)

    def watching(self, sink: EventSink) -> EventSink:
        """``sink``, with every event seen by this clock first; once the run's first line is
        shown, the stages go to ``sink`` too, as one line for the log."""

        def both(event: object) -> None:
            done = self.done
            self.observe(event)
            sink(event)
            if self.done and not done:
                sink(Notice(self.summary(), "info"))

        return both

    @property
    def done(self) -> bool:
        return Stage.FIRST_LINE in self.reached

    def steps(self) -> list[tuple[Stage, float, float]]:
        """Each stage reached, in the order reached: its time and the time since the one before."""
        ordered = sorted(self.reached.items(), key=lambda item: item[1])
        return [(stage, at, at - before) for (stage, at), before in zip(ordered, [0.0] + [at for _, at in ordered])]

    def lines(self) -> list[str]:
        """One line per stage reached, in the order reached, with the time since the one before."""
        out = [f"{at:7.2f} s  (+{step:.2f})  {stage.value}" for stage, at, step in self.steps()]
        missing = [stage.value for stage in Stage if stage not in self.reached]
        if missing:
            out.append("    not reached: " + ", ".join(missing))
        return out

    def summary(self) -> str:
        """One line for the console's log: the total, then each stage's share."""
        steps = self.steps()
        if not steps:
            return "bring-up: no stage reached yet"
        parts = [f"{stage.name.lower().replace('_', ' ')} +{step:.2f}" for stage, _, step in steps]
        return f"bring-up {steps[-1][1]:.2f} s: " + " · ".join(parts)
