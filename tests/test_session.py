"""The session against the real testbed: one login, the node only through the login host, the agent."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path

import pytest
from testbed import Testbed
from testbed.procs import ProcessRef
from testbed.wait import wait_until
from workspaces import load_test_workspace

from tui.events import LinkChanged, LinkState
from tui.remote.agent_channel import agent_version
from tui.remote.ssh import rsync_shell
from tui.session import Session

pytestmark = pytest.mark.needs_netns


async def until(condition, timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(session: Session, events: list):
    """Run the session in the background until the link is up; always take it down after."""
    task = asyncio.create_task(session.run(events.append))
    try:
        await until(lambda: any(isinstance(e, LinkChanged) and e.state is LinkState.UP for e in events) or task.done())
        if task.done():
            task.result()  # raise the connect error
        yield session
    finally:
        await session.down()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def agent_pids_on_node(testbed: Testbed) -> list[str]:
    result = testbed.node_run_as_user("pgrep -u $(id -u) -f '[t]ui[.]node[.]agent' || true")
    return result.stdout.split()


async def test_one_login_carries_every_command_and_copy(needs_netns: Testbed, tether_home: Path, tmp_path: Path):
    testbed = needs_netns
    workspace = load_test_workspace(tmp_path / "ws", testbed)
    login_before, node_before = testbed.count_auths(), testbed.node.count_auths()
    session = Session(workspace)
    await session.prepare()
    events: list = []
    async with running(session, events):
        supervisor = session.supervisor
        assert supervisor.agent.hello["host"] == "compute01"  # the agent really runs on the node
        for _ in range(10):
            assert (await supervisor.node_master.run("true")).ok
        for _ in range(5):
            assert (await supervisor.login.run("true")).ok
        source = tmp_path / "copy.txt"
        source.write_text("copied through the master\n")
        hop = supervisor.node_master.hop
        copy = subprocess.run(
            ["rsync", "-a", "-e", rsync_shell(session.settings, hop), str(source), f"{hop.destination.host}:copy.txt"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert copy.returncode == 0, copy.stderr
        assert testbed.node_run_as_user("cat ~/copy.txt").stdout == "copied through the master\n"
        assert testbed.login_run_as_user("test -e ~/copy.txt").returncode != 0  # it reached the node only
    assert testbed.count_auths() - login_before == 1
    assert testbed.node.count_auths() - node_before == 1


COUNTING_ASKPASS = """#!/bin/sh
# Counts prompts (one line each, never the password) and answers from the environment.
echo "$1" >> "$ASKPASS_COUNT_FILE"
printf '%s\\n' "$TETHER_TESTBED_PASSWORD"
"""


async def test_password_is_asked_once_per_up(
    needs_netns: Testbed, password_login, tether_home: Path, tmp_path: Path, monkeypatch
):
    testbed = needs_netns
    askpass = tmp_path / "askpass"
    askpass.write_text(COUNTING_ASKPASS)
    askpass.chmod(0o755)
    count_file = tmp_path / "prompts"
    for key, value in testbed.askpass_env(base={}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SSH_ASKPASS", str(askpass))
    monkeypatch.setenv("ASKPASS_COUNT_FILE", str(count_file))
    workspace = load_test_workspace(tmp_path / "ws", testbed, login=password_login.alias)
    auths_before = password_login.count_auths()

    session = Session(workspace)
    await session.prepare()
    events: list = []
    async with running(session, events):
        for _ in range(5):
            assert (await session.supervisor.node_master.run("hostname")).stdout.strip() == "compute01"
            assert (await session.supervisor.login.run("true")).ok
    prompts = count_file.read_text().splitlines()
    assert len(prompts) == 1, prompts
    assert "password" in prompts[0].lower()
    assert password_login.count_auths() - auths_before == 1


async def test_agent_is_shipped_once_and_survives_a_malformed_line(
    needs_netns: Testbed, tether_home: Path, tmp_path: Path
):
    testbed = needs_netns
    testbed.node_run_as_user("rm -rf ~/.cache/tether/agent")
    workspace = load_test_workspace(tmp_path / "ws", testbed)
    first = Session(workspace)
    events: list = []
    async with running(first, events):
        assert first.supervisor.agent_shipped
        shipped_at = testbed.node_run_as_user(f"stat -c %Y.%i ~/.cache/tether/agent/{agent_version()}").stdout
    second = Session(workspace)
    async with running(second, []):
        assert not second.supervisor.agent_shipped  # unchanged: not copied again
        assert testbed.node_run_as_user(f"stat -c %Y.%i ~/.cache/tether/agent/{agent_version()}").stdout == shipped_at
        agent = second.supervisor.agent
        await agent.send_raw(b"{this is not json\n")
        await agent.send_raw(b'{"id": 999, "op": "no-such-op"}\n')
        assert await agent.ping() > 0  # still answering
        log = testbed.node_run_as_user("cat ~/.cache/tether/agent/agent.log").stdout
        assert "malformed" in log and "no-such-op" in log


async def test_detach_leaves_only_the_masters_and_down_closes_them(
    needs_netns: Testbed, tether_home: Path, tmp_path: Path
):
    testbed = needs_netns
    workspace = load_test_workspace(tmp_path / "ws", testbed)
    session = Session(workspace)
    events: list = []
    task = asyncio.create_task(session.run(events.append))
    try:
        await until(lambda: session.supervisor is not None and session.supervisor.state.state is LinkState.UP)
        login_master = ProcessRef.of(await session.login_master().pid())
        assert agent_pids_on_node(testbed)
        await session.detach()
        await until(lambda: task.done())
        await asyncio.to_thread(wait_until, lambda: not agent_pids_on_node(testbed), 10)
        assert await session.login_master().pid() == login_master.pid  # still up for a quick reattach
        assert await session.node_master(workspace.connection.node).pid()
    finally:
        stopped = await Session(workspace).down()
    assert any("compute01" in s for s in stopped) and any("login" in s for s in stopped)
    assert await session.login_master().pid() is None
    await asyncio.to_thread(wait_until, lambda: not login_master.is_alive(), 10)
