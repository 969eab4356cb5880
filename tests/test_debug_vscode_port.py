"""[debug] vscode_port (issue 12, item 2, the laptop end): the forward VS Code attaches to is a TCP
port on the laptop's 127.0.0.1, which every user of a shared workstation can reach. Default true;
false: no laptop port for the ranks and no launch.json. Where other people use the machine, Tether
says so once and how to turn it off. Without a testbed: the tunnels and the agent are stand-ins."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.config import ConfigError, load_workspace
from tui.debug import runs as runs_module
from tui.debug.runs import DebugRuns, other_local_users
from tui.events import Notice, RunState
from tui.remote.tunnel import Forward

REPLY = {"root": "/remote/ws", "debug": {"mode": "attach", "ranks": [{"rank": 0, "port": 5678, "state": "/s/0.json"}]}}


class StandInTunnels:
    def __init__(self) -> None:
        self.added: list[tuple[str, int]] = []

    async def add(self, name: str, remote_port: int, local_port: int = 0) -> Forward:
        self.added.append((name, remote_port))
        return Forward(name, remote_port, 40000 + len(self.added))


class StandInAgent:
    def __init__(self) -> None:
        self.requests: list[str] = []

    async def request(self, op: str, **fields: object) -> dict:
        self.requests.append(op)
        return {}

    async def call(self, op, request, **options: object) -> dict:  # as AgentChannel.call: the op's name, its fields
        return await self.request(op.name, **request)


def workspace(folder: Path, debug: str = ""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tether.toml").write_text(
        f'[workspace]\nname = "ws"\nremote_root = "~/work/ws"\n[connection]\nlogin = "me@hpc"\n[debug]\n{debug}\n'
    )
    return load_workspace(folder / "tether.toml")


async def bring_up(folder: Path, debug: str, others: list[str], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(runs_module, "other_local_users", lambda: others)
    tunnels, events = StandInTunnels(), []
    debug_runs = DebugRuns(workspace(folder, debug), tunnels, events.append)
    await debug_runs.bring_up(StandInAgent(), REPLY)
    await debug_runs.bring_up(StandInAgent(), REPLY)  # a reconnect: said once only
    return tunnels, events


async def test_vscode_port_false_gives_no_laptop_port_and_no_launch_json(tmp_path: Path, monkeypatch):
    tunnels, events = await bring_up(tmp_path / "ws", "vscode_port = false", ["alice"], monkeypatch)
    assert tunnels.added == []
    assert not (tmp_path / "ws" / ".vscode" / "launch.json").exists()
    state = [e for e in events if isinstance(e, RunState)][-1]
    assert state.ranks[0].port == 5678 and state.ranks[0].local_port == 0
    assert not [e for e in events if isinstance(e, Notice)]  # nothing open, nothing to warn about


async def test_other_users_on_the_laptop_are_said_once_with_how_to_turn_the_port_off(tmp_path: Path, monkeypatch):
    tunnels, events = await bring_up(tmp_path / "ws", "", ["alice", "bob"], monkeypatch)
    assert tunnels.added == [("debug rank 0", 5678), ("debug rank 0", 5678)]
    assert '"port": 40002' in (tmp_path / "ws" / ".vscode" / "launch.json").read_text()
    said = [e for e in events if isinstance(e, Notice)]
    assert len(said) == 1 and said[0].level == "warning"
    assert "alice, bob" in said[0].message and "vscode_port = false" in said[0].message


async def test_alone_on_the_laptop_nothing_is_said(tmp_path: Path, monkeypatch):
    _tunnels, events = await bring_up(tmp_path / "ws", "vscode_port = true", [], monkeypatch)
    assert not [e for e in events if isinstance(e, Notice)]


def test_vscode_port_is_validated(tmp_path: Path):
    with pytest.raises(ConfigError) as raised:
        workspace(tmp_path / "ws", 'vscode_port = "no"')
    assert "debug.vscode_port" in str(raised.value) and "true or false" in str(raised.value)
    assert workspace(tmp_path / "ok").debug.vscode_port is True


def test_other_local_users_never_names_this_user():
    import getpass

    assert getpass.getuser() not in other_local_users()
