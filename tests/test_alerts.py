"""Notifications for what needs attention in a run: CUDA out of memory and NCCL errors in its
output, a crash with its last error line; each once (per start), with the keys that act on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_fakes import ScriptedSession
from console_helpers import wait_until
from debug_helpers import script_workspace
from testbed import Testbed

from tui.alerts import JobAlerts, RunAlerts, terminal_sequence
from tui.app import TetherApp
from tui.config import load_workspace
from tui.events import AllocationChanged, JobState, OutputLines, RankState, RankStatus, RunState
from tui.keys import shown_keys
from tui.session import Session

# A stand-in for a training step that runs out of GPU memory: no GPU and no torch here, so the
# script raises an exception that Python prints exactly as PyTorch 2.x's does (torch.OutOfMemoryError).
OOM_SCRIPT = """\
print("epoch 0  loss 2.3026", flush=True)
class OutOfMemoryError(RuntimeError):
    pass
OutOfMemoryError.__module__ = "torch"
raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 79.10 GiB "
                       "of which 3.56 MiB is free. Including non-PyTorch memory, this process has 79.09 GiB memory in use.")
"""
# Lines as torch.distributed prints them when a collective fails.
NCCL_LINES = (
    "[rank1]:[E1206 13:02:11.417382621 ProcessGroupNCCL.cpp:616] [Rank 1] Watchdog caught collective operation "
    "timeout: WorkNCCL(SeqNum=42, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600041 milliseconds",
    "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1970, "
    "unhandled cuda error (run with NCCL_DEBUG=INFO for details), NCCL version 2.19.3",
)


def messages(app: TetherApp) -> list[tuple[str, str]]:
    return [(str(n.title), str(n.message)) for n in app._notifications]


@pytest.mark.needs_netns
async def test_an_oom_in_the_run_is_told_once_and_the_crash_with_its_error_line(node: Testbed, tmp_path: Path):
    config = script_workspace(tmp_path / "ws", node, OOM_SCRIPT, name="step.py")
    session = Session(load_workspace(config), ping_interval=0.5)
    app = TetherApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: any(t == "Rank 0 crashed" for t, _ in messages(app)), 40)
        await wait_until(pilot, lambda: any(t == "CUDA out of memory" for t, _ in messages(app)), 10)
        oom = next(m for t, m in messages(app) if t == "CUDA out of memory")
        assert oom.startswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB")
        assert "(l: the log, r: restart)" in oom
        assert sum(t == "CUDA out of memory" for t, _ in messages(app)) == 1
        await pilot.press("x")  # stop the loop's restarts
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    await Session(load_workspace(config)).down()


async def test_nccl_errors_are_told_once_and_a_replayed_log_is_not_news() -> None:
    session = ScriptedSession()
    app = TetherApp(session)
    async with app.run_test(size=(100, 30)) as pilot:
        await session.wait_running()
        session.emit(OutputLines(NCCL_LINES, history=True))  # an old run's log, replayed on attach
        await pilot.pause()
        assert not [t for t, _ in messages(app) if t == "NCCL error"]
        session.emit(OutputLines(NCCL_LINES))
        await wait_until(pilot, lambda: any(t == "NCCL error" for t, _ in messages(app)))
        assert sum(t == "NCCL error" for t, _ in messages(app)) == 1
        assert "Watchdog caught collective operation timeout" in next(m for t, m in messages(app) if t == "NCCL error")


def test_a_new_start_rearms_the_alerts_and_a_crash_names_the_last_error_line() -> None:
    alerts = RunAlerts()
    assert [a.kind for a in alerts.run_state(RunState((RankState(0, RankStatus.RUNNING, 5678, started_at=1.0),)))] == []
    assert [
        a.kind
        for a in alerts.output(
            ["Traceback (most recent call last):", '  File "train.py", line 3', "ValueError: loss is nan"]
        )
    ] == []
    crashed = alerts.run_state(
        RunState((RankState(0, RankStatus.CRASHED, 5678, started_at=1.0, reason="train.py exited with 1"),))
    )
    assert [(a.title, a.message) for a in crashed] == [
        ("Rank 0 crashed", "ValueError: loss is nan  (l: the log, r: restart)")
    ]
    assert alerts.run_state(RunState((RankState(0, RankStatus.CRASHED, 5678, started_at=1.0),))) == []  # told once
    assert [a.kind for a in alerts.output(["RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"])] == ["oom"]
    assert alerts.output(["RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"]) == []
    alerts.run_state(RunState((RankState(0, RankStatus.RUNNING, 5678, started_at=2.0),)))  # restarted
    assert [a.kind for a in alerts.output(["RuntimeError: CUDA out of memory."])] == ["oom"]
    crashed = alerts.run_state(
        RunState((RankState(0, RankStatus.CRASHED, 5678, started_at=2.0, reason="train.py exited with 1"),))
    )
    assert [a.message for a in crashed] == ["RuntimeError: CUDA out of memory.  (l: the log, r: restart)"]


async def test_a_terminal_alert_is_off_by_default_and_once_per_alert_when_asked_for() -> None:
    for mode, expected in (("off", []), ("bell", ["\a"]), ("desktop", ["\x1b]9;NCCL error: "])):
        session = ScriptedSession()
        app = TetherApp(session, terminal_alert=mode)
        async with app.run_test(size=(100, 30)) as pilot:
            await session.wait_running()
            session.emit(OutputLines(NCCL_LINES))
            await wait_until(pilot, lambda: any(t == "NCCL error" for t, _ in messages(app)))
            session.emit(OutputLines(NCCL_LINES))  # the same error again is not news
            await pilot.pause()
            assert [w[: len(e)] for w, e in zip(app.terminal_writes, expected)] == expected
            assert len(app.terminal_writes) == len(expected), (mode, app.terminal_writes)


def test_a_desktop_alert_carries_no_escape_the_run_printed() -> None:
    # A line in the run's output that tries to end the OSC 9 early and retitle the terminal.
    printed = "RuntimeError: boom\x07\x1b]0;owned\x07\x9b31m"
    sequence = terminal_sequence("desktop", "Rank 0 crashed", printed)
    assert sequence.startswith("\x1b]9;Rank 0 crashed: RuntimeError: boom") and sequence.endswith("\x07")
    inner = sequence[len("\x1b]9;") : -1]
    assert not [c for c in inner if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F], repr(inner)


def test_a_job_ending_is_told_once_in_its_last_ten_minutes_and_only_while_it_runs() -> None:
    alerts, now = JobAlerts(), 1_000_000.0
    assert alerts.check(AllocationChanged("7", "n1", now + 1800, JobState.RUNNING), now) == []  # 30 min left
    assert alerts.check(AllocationChanged("7", "n1", None, JobState.RUNNING), now) == []  # no time limit
    assert alerts.check(AllocationChanged("7", "", now + 300, JobState.WAITING, "pending"), now) == []
    told = alerts.check(AllocationChanged("7", "n1", now + 1800, JobState.RUNNING), now + 1260)  # 9 min left
    assert [a.title for a in told] == ["Job ending soon"] and "job 7 ends in 9 min 0 s:" in told[0].message
    assert alerts.check(AllocationChanged("7", "n1", now + 1800, JobState.RUNNING), now + 1300) == []
    assert [a.kind for a in alerts.check(AllocationChanged("8", "n2", now + 60, JobState.RUNNING), now)] == [
        "job_ending"
    ]


async def test_the_keys_an_alert_names_follow_ui_keys() -> None:
    """With restart on F5 and logs on ctrl+l, the OOM alert and the Run panel name those keys."""
    session = ScriptedSession()
    app = TetherApp(session, keys=(("restart", "f5"), ("logs", "ctrl+l")))
    async with app.run_test(size=(100, 30)) as pilot:
        await session.wait_running()
        session.emit(RunState((RankState(0, RankStatus.RUNNING, 5678, started_at=1.0),)))
        session.emit(OutputLines(("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",)))
        await wait_until(pilot, lambda: any(t == "CUDA out of memory" for t, _ in messages(app)))
        told = next(m for t, m in messages(app) if t == "CUDA out of memory")
        assert told.endswith("(ctrl+l: the log, f5: restart)"), told
        assert "f5 restart · x stop" in str(app.query_one("#run").border_subtitle)
    assert shown_keys((("help", "question_mark"),))["help"] == "?"  # as written in tether.toml
