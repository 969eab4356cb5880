"""The console's part of a sync halt: the node's own files asked about in a dialog at once, `s`
and the palette to release a halt (allow the deletes, keep theirs, rescan and resume).

The session is the scripted UI stand-in (tests/app_fakes.py); what the engine does with each
choice is tested on the testbed (tests/test_sync_foreign.py, tests/test_sync_halt.py)."""

from __future__ import annotations

from app_fakes import ScriptedSession
from console_helpers import screen_text, wait_until

from tui.app import TetherApp
from tui.app.screens import SyncHaltScreen
from tui.events import HALT_DELETES, HALT_FOREIGN, SyncHaltReport, SyncState, SyncStatus

SIZE = (120, 36)
FOREIGN = SyncHaltReport(
    "w",
    HALT_FOREIGN,
    "sync halted: ~/thesis on the node holds 3 files Tether did not write",
    paths=("chapter1.tex", "chapter2.tex", "refs.bib"),
    total=3,
)
DELETES = SyncHaltReport(
    "w", HALT_DELETES, "sync halted: this push would delete 59 of the 61 files on the node", total=59
)
HALTED = SyncStatus("w", SyncState.HALTED, pending=59, detail="sync halted: this push would delete 59 of the 61 files")


class HaltSession(ScriptedSession):
    """Records the sync calls the console makes."""

    def __init__(self) -> None:
        super().__init__(title="thesis")
        self.sync_calls: list[str] = []

    async def allow_sync_deletes(self) -> None:
        self.sync_calls.append("allow")

    async def rescan_sync(self) -> None:
        self.sync_calls.append("rescan")

    async def keep_sync_theirs(self) -> str:
        self.sync_calls.append("keep")
        return "~/thesis/.tether-backup/20250101-120000"


async def test_a_first_sync_into_a_folder_with_its_own_files_asks_at_once_and_keep_theirs_goes_on():
    session = HaltSession()
    app = TetherApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        session.emit(SyncStatus("w", SyncState.HALTED, detail=FOREIGN.message))
        session.emit(FOREIGN)
        await wait_until(pilot, lambda: isinstance(app.screen, SyncHaltScreen))
        text = screen_text(app)
        for name in FOREIGN.paths:
            assert name in text
        assert "Keep theirs" in text and "Delete them" in text and "Cancel" in text and ".tether-backup/" in text
        await pilot.click("#keep")
        await wait_until(pilot, lambda: session.sync_calls == ["keep"])
        assert not isinstance(app.screen, SyncHaltScreen)


async def test_delete_them_and_cancel():
    session = HaltSession()
    app = TetherApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        session.emit(FOREIGN)
        await wait_until(pilot, lambda: isinstance(app.screen, SyncHaltScreen))
        await pilot.press("escape")  # cancel: still halted, nothing asked of the session
        await wait_until(pilot, lambda: not isinstance(app.screen, SyncHaltScreen))
        assert session.sync_calls == []
        await pilot.press("s")  # the key opens the question again
        await wait_until(pilot, lambda: isinstance(app.screen, SyncHaltScreen))
        await pilot.click("#delete")
        await wait_until(pilot, lambda: session.sync_calls == ["allow"])


async def test_the_emptied_root_halt_is_released_with_s_rescan_or_allow():
    session = HaltSession()
    app = TetherApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        await pilot.press("s")  # no halt: the key does nothing
        await pilot.pause()
        assert not isinstance(app.screen, SyncHaltScreen)
        session.emit(HALTED)
        session.emit(DELETES)
        await wait_until(pilot, lambda: "Sync halt" in screen_text(app))  # the key shows in the footer now
        assert not isinstance(app.screen, SyncHaltScreen)  # this halt does not jump at the user
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SyncHaltScreen))
        assert "59 of the 61" in screen_text(app) and "Rescan and resume" in screen_text(app)
        await pilot.click("#rescan")
        await wait_until(pilot, lambda: session.sync_calls == ["rescan"])
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, SyncHaltScreen))
        await pilot.click("#delete")
        await wait_until(pilot, lambda: session.sync_calls == ["rescan", "allow"])
        session.emit(SyncStatus("w", SyncState.UP_TO_DATE))  # released: the key goes away
        await wait_until(pilot, lambda: "Sync halt" not in screen_text(app))


async def test_the_palette_offers_the_halts_actions():
    session = HaltSession()
    app = TetherApp(session)
    async with app.run_test(size=SIZE) as pilot:
        await session.wait_running()
        session.emit(FOREIGN)
        await wait_until(pilot, lambda: isinstance(app.screen, SyncHaltScreen))
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, SyncHaltScreen))
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"rescan")
        await wait_until(pilot, lambda: "Sync: rescan and resume" in screen_text(app))
        await pilot.press("enter")
        await wait_until(pilot, lambda: session.sync_calls == ["rescan"])
