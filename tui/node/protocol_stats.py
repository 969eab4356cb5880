"""The stats' messages: ``stats.watch`` and the ``stats`` event, as both ends see them.

Types and constants only, stdlib only: shipped to the node and imported by the laptop too. An
event carries only what changed since the one before (the first, with ``full``, everything), so
every field set is total=False.
"""

from __future__ import annotations

from typing import TypedDict

from tui.node.protocol import Ok, Op


class StatsWatch(TypedDict, total=False):
    interval: float  # seconds between samples
    workspace: str


class NodeFields(TypedDict, total=False):
    cpu: int  # percent of the whole node
    mem: int  # MiB used
    memt: int  # MiB in all


class ProcessFields(TypedDict, total=False):
    """One process of the run (the run pane's process tree)."""

    cpu: int  # percent of one core
    mem: int  # MiB resident
    cmd: str  # its command line, shortened


class GpuFields(TypedDict, total=False):
    """One GPU, as nvidia-smi gives it; None where it says N/A."""

    name: str
    util: int | None  # percent
    mem: int | None  # MiB used
    memt: int | None  # MiB in all
    temp: int | None  # degrees C
    power: int | None  # W


class _StatsOp(TypedDict):
    op: str  # "stats"


class StatsEvent(_StatsOp, total=False):
    full: bool  # this one has everything: forget what came before
    node: NodeFields
    procs: dict[str, ProcessFields]  # by pid
    gone: list[str]  # pids that ended
    gpus: dict[str, GpuFields]  # by nvidia-smi's index
    gpus_gone: list[str]
    nogpu: str  # why there is no GPU ("" once there is one)


WATCH: Op[StatsWatch, Ok] = Op("stats.watch")
