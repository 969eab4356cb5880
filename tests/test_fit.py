"""Nothing cut off at any size: the footer shows whole keys only, a long command ends in "…", and a
long output line is folded or (``[ui] long_lines = "scroll"``) kept whole and scrolled to.

UI only: the scripted session of the other console tests stands in for the cluster.
"""

from __future__ import annotations

from app_fakes import ScriptedSession
from console_helpers import screen_text, wait_until

from tui.app import TetherApp
from tui.app.widgets import OutputPanel, ProcessTable
from tui.app.widgets.footer import FittingFooter
from tui.events import OutputLines, ProcessInfo, RunProcesses

LONG = "Epoch 2: 40%|████ | 20/50 [00:01<00:02, 14.06it/s, v_num=0, train_loss=0.275, val_loss=0.301, lr=3e-4] END"


def footer_line(app: TetherApp) -> str:
    return next(line for line in screen_text(app).splitlines() if "Commands" in line)


async def test_the_footer_drops_whole_keys_that_do_not_fit_and_brings_them_back() -> None:
    session = ScriptedSession()
    app = TetherApp(session)
    async with app.run_test(size=(200, 30)) as pilot:
        await session.wait_running()
        footer = app.query_one(FittingFooter)
        await wait_until(pilot, lambda: "Theme" in footer.shown)
        everything = footer.shown
        await pilot.resize_terminal(50, 30)
        await wait_until(pilot, lambda: len(footer.shown) < len(everything))
        narrow = footer.shown
        # The first keys stay, in order; each one shown is on the screen whole.
        assert narrow and narrow == everything[: len(narrow)]
        line = footer_line(app)
        assert all(description in line for description in narrow), line
        dropped = everything[len(narrow)]
        assert dropped.split()[0] not in line.split(), line  # not even its first word, cut
        await pilot.resize_terminal(200, 30)
        await wait_until(pilot, lambda: footer.shown == everything)


async def test_a_long_command_ends_in_an_ellipsis_and_shows_whole_when_there_is_room() -> None:
    command = "python -m torch.distributed.run --nproc_per_node=8 train.py --epochs 10"
    session = ScriptedSession(initial_events=[RunProcesses((ProcessInfo(4250, 187, 9120, command),))])
    app = TetherApp(session)
    async with app.run_test(size=(100, 30)) as pilot:
        await session.wait_running()
        table = app.query_one(ProcessTable)
        await wait_until(pilot, lambda: table.row_count == 1)
        shown = str(table.get_row_at(0)[3])
        assert shown.endswith("…") and command.startswith(shown[:-1]) and shown[:-1] in screen_text(app)
        assert table.rows_text[0][3] == command  # shortened on screen only
        await pilot.resize_terminal(250, 40)
        await wait_until(pilot, lambda: str(table.get_row_at(0)[3]) == command)
        assert command in screen_text(app)


async def test_long_lines_fold_by_default_or_scroll_sideways_when_asked() -> None:
    for fold in (True, False):
        session = ScriptedSession()
        app = TetherApp(session, long_lines="fold" if fold else "scroll")
        async with app.run_test(size=(80, 24)) as pilot:
            await session.wait_running()
            session.emit(OutputLines((LONG,)))
            panel = app.query_one(OutputPanel)
            await wait_until(pilot, lambda: "Epoch 2" in screen_text(app))
            await pilot.pause()
            if fold:
                assert "END" in screen_text(app) and len(panel.lines) > 1
                continue
            # One line, its end out of sight until the panel is scrolled to the right.
            assert len(panel.lines) == 1 and "END" not in screen_text(app)
            panel.focus()
            for _ in range(len(LONG)):
                await pilot.press("right")
            await wait_until(pilot, lambda: "END" in screen_text(app))
            assert panel.scroll_x > 0
