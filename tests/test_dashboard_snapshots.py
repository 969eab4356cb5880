"""Snapshots of the dashboard (100x30, and each theme at 80x24 and 200x50) with fixed node panels (scripted session: UI only).

Regenerate after an intended change of look, and review the SVGs:
    python3 -m pytest tests/test_dashboard_snapshots.py --snapshot-update
"""

from __future__ import annotations

import time

import pytest
from app_fakes import ScriptedSession
from textual.pilot import Pilot

from tui.app import TetherApp
from tui.events import (
    AllocationChanged,
    GpuInfo,
    GpuStats,
    JobState,
    LayoutChanged,
    LinkChanged,
    LinkState,
    NodeStats,
    Notice,
    OutputLines,
    PaneInfo,
    ProcessInfo,
    RunProcesses,
)

SIZE = (100, 30)
LAYOUT = LayoutChanged(
    "tether-mnist",
    "compute01",
    tuple(PaneInfo(n, f"%{i}", 100 + i) for i, n in enumerate(["run", "htop", "gpu", "shell"])),
    1,
)
OUTPUT = OutputLines(tuple(f"epoch 3 step {i * 50:4d}  loss {2.0 / (i + 1):.4f}" for i in range(14)), history=True)
NODE = NodeStats("compute01", 63, 41210, 515000)
GPUS = GpuStats(
    "compute01",
    (
        GpuInfo("0", "NVIDIA H100 80GB HBM3 (stand-in)", 97, 40213, 81559, 64, 512),
        GpuInfo("1", "NVIDIA H100 80GB HBM3 (stand-in)", 12, 1024, 81559, 41, 118),
    ),
)
PROCESSES = RunProcesses(
    (
        ProcessInfo(4242, 0, 3, "/bin/bash ~/.cache/tether/runs/mnist/run.sh"),
        ProcessInfo(4250, 187, 9120, "python train.py --epochs 10"),
    )
)


def dashboard(gpus: GpuStats, theme: str | None = None) -> tuple[TetherApp, object]:
    session = ScriptedSession(
        title="mnist",
        chain=("login", "compute01"),
        initial_events=[
            LinkChanged(LinkState.UP, rtt_ms=24.0),
            LAYOUT,
            OUTPUT,
            NODE,
            PROCESSES,
            gpus,
            Notice("Node compute01 is ready"),
        ],
    )

    async def settle(pilot: Pilot) -> None:
        await session.wait_running()
        await pilot.pause()

    return TetherApp(session, theme_name=theme), settle


def test_dashboard_with_gpus(snap_compare) -> None:
    app, settle = dashboard(GPUS)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_dashboard_without_gpu(snap_compare) -> None:
    app, settle = dashboard(GpuStats("compute01", (), "no GPU on compute01 (nvidia-smi is not installed)"))
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_dashboard_on_a_slurm_job(snap_compare) -> None:
    """The header with the job and its time left (minutes only above 10 min: stable for a snapshot)."""
    session = ScriptedSession(
        title="mnist",
        chain=("login", "gpu042"),
        initial_events=[
            LinkChanged(LinkState.UP, rtt_ms=24.0),
            AllocationChanged("12345", "gpu042", time.time() + 4 * 3600 + 32 * 60 + 30, JobState.RUNNING),
            LAYOUT,
            OUTPUT,
            NODE,
            PROCESSES,
            GpuStats("gpu042", (), "no GPU on gpu042 (nvidia-smi is not installed)"),
            Notice("Slurm job 12345 running on gpu042"),
        ],
    )

    async def settle(pilot: Pilot) -> None:
        await session.wait_running()
        await pilot.pause()

    assert snap_compare(TetherApp(session), terminal_size=SIZE, run_before=settle)


THEMES = ("dark", "light", "high-contrast", "plain")
SIZES = ((80, 24), (200, 50))


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
@pytest.mark.parametrize("theme", THEMES)
def test_dashboard_in_each_theme(snap_compare, theme: str, size: tuple[int, int]) -> None:
    """Each shipped theme at the smallest and a large terminal (plain: ANSI colours, drawn here
    with the snapshot's default palette)."""
    app, settle = dashboard(GPUS, theme)
    assert snap_compare(app, terminal_size=size, run_before=settle)
