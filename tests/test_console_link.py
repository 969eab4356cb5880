"""The console on the real testbed: the link goes up with a round trip, survives a cut, and `q`
leaves only the ControlMasters, which `tether down` closes."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from console_helpers import header_state, screen_text, wait_until
from testbed import Testbed
from testbed.procs import ProcessRef
from testbed.wait import wait_until as wait_until_sync
from workspaces import write_workspace

from tui.app import DETACHED, TetherApp
from tui.app.messages import LinkUpdated
from tui.app.screens import PasswordScreen
from tui.cli import main
from tui.config import load_workspace
from tui.events import LinkState
from tui.session import Session

pytestmark = pytest.mark.needs_netns


def agent_running_on_node(testbed: Testbed) -> bool:
    return bool(testbed.node_run_as_user("pgrep -u $(id -u) -f '[t]ui[.]node[.]agent' || true").stdout.strip())


def titles(app: TetherApp) -> list[str]:
    return [str(n.title) for n in app._notifications]


def states_in_order(seen: list[LinkState], wanted: list[LinkState]) -> bool:
    """``wanted`` appears in ``seen`` as a subsequence."""
    position = iter(seen)
    return all(any(state is want for state in position) for want in wanted)


async def test_console_link_up_lost_reconnecting_up_then_detach_and_down(
    needs_netns: Testbed, tether_home: Path, tmp_path: Path
):
    testbed = needs_netns
    config = write_workspace(tmp_path / "ws", testbed)
    session = Session(load_workspace(config), ping_interval=0.5)
    await session.prepare()  # `tether up` logs in before the console takes the terminal
    seen: list[LinkState] = []

    def record(message: object) -> None:
        if isinstance(message, LinkUpdated):
            seen.append(message.link.state)

    app = TetherApp(session)
    async with app.run_test(size=(100, 30), message_hook=record) as pilot:
        await wait_until(pilot, lambda: header_state(app).startswith("up "), 30)
        text = screen_text(app)
        assert "laptop → login → compute01" in text and " ms" in text

        # Cut the link: the node's sshd goes away and the connection to it is killed (it may
        # already have ended with the node's sshd).
        node_master = ProcessRef.of(await session.supervisor.node.pid())
        testbed.node.stop()
        try:
            node_master.signal(signal.SIGTERM)
            await wait_until(pilot, lambda: "reconnecting (attempt" in screen_text(app), 20)
        finally:
            testbed.node.start()
        await wait_until(pilot, lambda: header_state(app).startswith("up "), 40)
        assert states_in_order(seen, [LinkState.UP, LinkState.LOST, LinkState.RECONNECTING, LinkState.UP]), seen
        # Told once each, however many reconnect attempts the outage took.
        await wait_until(pilot, lambda: "Link back" in titles(app), 5)
        assert titles(app).count("Link lost") == 1 and titles(app).count("Link back") == 1, titles(app)
        assert "edits wait" in next(str(n.message) for n in app._notifications if n.title == "Link lost")

        login_master = ProcessRef.of(await session.login_master().pid())
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    assert app.return_value == DETACHED

    # Detached: the agent is gone from the node, the masters stay for a quick reattach.
    await asyncio.to_thread(wait_until_sync, lambda: not agent_running_on_node(testbed), 10)
    assert login_master.is_alive()
    assert await session.node_master("compute01").pid()

    assert await asyncio.to_thread(main, ["-c", str(config), "down"]) == 0
    await asyncio.to_thread(wait_until_sync, lambda: not login_master.is_alive(), 10)
    assert await session.node_master("compute01").pid() is None


async def test_console_asks_for_the_password_and_again_only_when_a_new_login_is_needed(
    needs_netns: Testbed, password_login, tether_home: Path, tmp_path: Path, monkeypatch
):
    """No askpass of the user's: ssh's prompt comes to the console through Tether's askpass bridge."""
    testbed = needs_netns
    for variable in ("SSH_ASKPASS", "SSH_ASKPASS_REQUIRE", "DISPLAY"):
        monkeypatch.delenv(variable, raising=False)
    config = write_workspace(tmp_path / "ws", testbed, login=password_login.alias)
    session = Session(load_workspace(config), ping_interval=0.5)
    auths_before = password_login.count_auths()
    app = TetherApp(session)
    async with app.run_test(size=(100, 30)) as pilot:

        async def answer_prompt() -> None:
            await wait_until(
                pilot, lambda: isinstance(app.screen, PasswordScreen) and "password" in screen_text(app).lower(), 30
            )
            await pilot.press(*testbed.password)
            assert testbed.password not in screen_text(app)  # masked
            await pilot.press("enter")

        await answer_prompt()
        await wait_until(pilot, lambda: header_state(app).startswith("up "), 30)

        # A drop that ends the login connection needs a new login: asked once more.
        ProcessRef.of(await session.login_master().pid()).signal(signal.SIGTERM)
        await answer_prompt()
        await wait_until(pilot, lambda: header_state(app).startswith("up "), 30)
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    assert password_login.count_auths() - auths_before == 2
    assert await asyncio.to_thread(main, ["-c", str(config), "down"]) == 0
