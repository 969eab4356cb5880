"""The run under the debug loop on the testbed (issue 5): environment lines, a container-style
prefix and a pass_env variable reach the run (its value in no file on the node); two ranks, both
forwarded and attachable; a python without debugpy is told and fixed with Tether's own copy;
breakpoint() waits and the console says where; a crash loop backs off; mode wait times out."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

import pytest
from console_helpers import wait_until
from debug_helpers import debug_console, node_home, rank, ranks, script_workspace, status
from node_helpers import Events
from testbed import Testbed

from tui.app import TetherApp
from tui.config import load_workspace
from tui.debug.dap import DapClient
from tui.events import Notice, RankStatus, RunState
from tui.session import Session

pytestmark = pytest.mark.needs_netns

FOREVER = "import time\nprint('up', flush=True)\nwhile True:\n    time.sleep(0.1)\n"


async def test_env_lines_prefix_and_pass_env_reach_the_run_and_the_secret_is_in_no_file(
    node: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("TETHER_T_SECRET", secret)
    home = node_home(node)
    node.node_run_as_user(  # the stand-in container: marks the environment, then runs the command
        'mkdir -p ~/standin-bin && printf \'#!/bin/sh\\nexport TETHER_T_WRAPPED="$1"\\nshift\\nexec "$@"\\n\' '
        "> ~/standin-bin/container && chmod +x ~/standin-bin/container",
        check=True,
    )
    # tmux as the agent runs it, with every command line it is given kept in ~/tmux-argv.log: a
    # secret on a command line (visible in `ps` to every user of the node) would land in that file.
    tmux = node.node_run_as_user("command -v tmux", check=True).stdout.strip()
    wrapper = f'#!/bin/sh\nprintf "%s\\n" "$*" >> "$HOME/tmux-argv.log"\nexec {tmux} "$@"\n'
    node.node_run_as_user(
        "mkdir -p ~/argv-bin && cat > ~/argv-bin/tmux && chmod +x ~/argv-bin/tmux && rm -f ~/tmux-argv.log",
        input=wrapper,
        check=True,
    )
    script = (
        "import hashlib, os, time\n"
        "print('envline', os.environ.get('TETHER_T_ENVLINE'), flush=True)\n"
        "print('wrapped', os.environ.get('TETHER_T_WRAPPED'), flush=True)\n"
        "print('secret', hashlib.sha256(os.environ.get('TETHER_T_SECRET', '').encode()).hexdigest(), flush=True)\n"
        "while True:\n    time.sleep(0.1)\n"
    )
    extra = "\n".join(
        [
            'env = ["export TETHER_T_ENVLINE=from-env-line", "export PATH=$HOME/argv-bin:$PATH"]',
            f'prefix = "{home}/standin-bin/container img.sif"',
            'pass_env = ["TETHER_T_SECRET"]',
        ]
    )
    config = script_workspace(tmp_path / "ws", node, script, extra=extra)
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    digest = hashlib.sha256(secret.encode()).hexdigest()
    async with debug_console(session, events, lambda: any(line.startswith("secret ") for line in events.output())):
        output = events.output()
        assert "envline from-env-line" in output and "wrapped img.sif" in output
        assert f"secret {digest}" in output
        await events.until(lambda: status(events) == "running")  # debugpy through the prefix
        found = node.node_run_as_user(
            f"grep -rlsF {secret} ~ /tmp /var/tmp /dev/shm 2>/dev/null; true", timeout=60
        ).stdout
        assert "new-session" in node.node_run_as_user("cat ~/tmux-argv.log").stdout  # the wrapper saw tmux's use
        assert found.strip() == "", f"the pass_env value was written to {found}"
    await session.down()


async def test_two_ranks_both_forwarded_and_attachable(node: Testbed, tmp_path: Path):
    script = "import os, time\nprint('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], flush=True)\nwhile True:\n    time.sleep(0.1)\n"
    config = script_workspace(tmp_path / "ws", node, script, extra="[debug]\nranks = 2")
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()

    def both_up() -> bool:
        found = ranks(events)
        return len(found) == 2 and all(r.status is RankStatus.RUNNING and r.local_port for r in found)

    async with debug_console(session, events, both_up):
        zero, one = ranks(events)
        assert one.port == zero.port + 1 and zero.local_port != one.local_port
        for state in (zero, one):
            client = await DapClient.connect_initialized("127.0.0.1", state.local_port, timeout=20)
            await client.attach()
            await events.until(lambda: status(events, state.rank) == "attached")
            await client.disconnect()
        launch = (tmp_path / "ws" / ".vscode" / "launch.json").read_text()
        assert f'"port": {zero.local_port}' in launch and f'"port": {one.local_port}' in launch
        await session.restart_run()  # r restarts every rank
        await events.until(lambda: all(r.restarts == 1 and r.status is RankStatus.RUNNING for r in ranks(events)), 30)
    await session.down()


async def test_without_debugpy_on_the_node_tethers_copy_is_provided_and_the_run_starts(node: Testbed, tmp_path: Path):
    """provide_debugpy = "auto" (the default): the demo's case, a python with no debugpy at all."""
    node.node_run_as_user("rm -rf ~/.cache/tether/debugpy")
    assert node.node_run_as_user(f"{node.plain_python} -c 'import debugpy'").returncode == 1
    config = script_workspace(tmp_path / "ws", node, FOREVER, interpreter=node.plain_python)
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(session, events, lambda: status(events) == "running" and "up" in events.output(), 60):
        state = rank(events)
        assert not state.debugpy_missing and state.restarts == 0  # started once, with Tether's copy
        assert not [r for e in events.of(RunState) for r in e.ranks if r.status is RankStatus.CRASHED]
        told = [n.message for n in events.of(Notice) if "debugpy" in n.message]
        assert len(told) == 1 and "Tether copied its own debugpy" in told[0], told
        assert not [n for n in events.of(Notice) if n.level == "error"], events.of(Notice)
        assert node.node_run_as_user("test -f ~/.cache/tether/debugpy/debugpy/__init__.py").returncode == 0
        client = await DapClient.connect_initialized("127.0.0.1", state.local_port, timeout=20)
        await client.attach()
        await client.disconnect()
    await session.down()


async def test_provide_debugpy_never_says_what_to_do_and_copies_nothing(node: Testbed, tmp_path: Path):
    node.node_run_as_user("rm -rf ~/.cache/tether/debugpy")
    config = script_workspace(
        tmp_path / "ws", node, FOREVER, interpreter=node.plain_python, extra='[debug]\nprovide_debugpy = "never"'
    )
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(
        session, events, lambda: rank(events) and rank(events).debugpy_missing and status(events) == "stopped"
    ):
        state = rank(events)
        # The fix fits the node's python: Debian 12's is externally managed (PEP 668), where the
        # plain `pip install --user debugpy` is refused; the command offered gets past that (tried
        # with --no-index, so nothing is installed).
        assert state.fix and 'provide_debugpy = "never"' in state.reason and state.fix in state.reason
        offered = re.findall(r"`([^`]*pip install[^`]*)`", state.fix)
        assert offered and all(node.plain_python in command for command in offered), state.fix
        tried = node.node_run_as_user(f"{offered[-1]} --no-index")
        assert "externally-managed-environment" not in tried.stdout + tried.stderr
        assert "debugpy" in tried.stdout + tried.stderr  # pip got as far as looking for it
        assert any(n.level == "error" and 'provide_debugpy = "never"' in n.message for n in events.of(Notice))
        assert "up" not in events.output() and state.pid is None  # the debuggee never started
        assert node.node_run_as_user("test -e ~/.cache/tether/debugpy").returncode == 1
    await session.down()


async def test_provide_debugpy_ask_waits_for_the_user_and_the_palette_command_fixes_it(node: Testbed, tmp_path: Path):
    node.node_run_as_user("rm -rf ~/.cache/tether/debugpy")
    config = script_workspace(
        tmp_path / "ws", node, FOREVER, interpreter=node.plain_python, extra='[debug]\nprovide_debugpy = "ask"'
    )
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(session, events, lambda: rank(events) and rank(events).debugpy_missing):
        assert any("Make debugpy available" in n.message for n in events.of(Notice))
        assert node.node_run_as_user("test -e ~/.cache/tether/debugpy").returncode == 1  # nothing without a yes
        await session.provide_debugpy()
        await events.until(lambda: status(events) == "running" and not rank(events).debugpy_missing, 40)
        client = await DapClient.connect_initialized("127.0.0.1", rank(events).local_port, timeout=20)
        await client.attach()
        await client.disconnect()
    await session.down()


@pytest.mark.parametrize("mode", ["off", "attach"])  # attach, the default: debugpy's own hook ignored PYTHONBREAKPOINT
async def test_breakpoint_hook_notifies_the_console(node: Testbed, tmp_path: Path, mode: str):
    script = "import time\nprint('before', flush=True)\nbreakpoint()\nprint('after', flush=True)\nwhile True:\n    time.sleep(0.1)\n"
    config = script_workspace(tmp_path / "ws", node, script, name="bp.py", extra=f'[debug]\nmode = "{mode}"')
    session = Session(load_workspace(config), ping_interval=0.5)
    app = TetherApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(
            pilot, lambda: any("waiting for debugger at bp.py:3" in str(n.message) for n in app._notifications), 40
        )
        state = session.debug_runs.rank_states()[0]
        assert state.status is RankStatus.WAITING_FOR_DEBUGGER and state.waiting_at == "bp.py:3"
        client = await DapClient.connect_initialized("127.0.0.1", state.local_port, timeout=20)
        await client.attach()
        stopped = await client.wait_stopped(timeout=15)
        assert stopped.path.endswith("bp.py") and stopped.line == 4  # right after breakpoint(), as pdb does
        await client.continue_(stopped.thread_id)
        await client.disconnect()
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_value is not None, 20)
    await Session(load_workspace(config)).down()


async def test_breakpoint_stops_in_mode_wait_once_attached(node: Testbed, tmp_path: Path):
    script = "import time\nprint('before', flush=True)\nbreakpoint()\nprint('after', flush=True)\nwhile True:\n    time.sleep(0.1)\n"
    config = script_workspace(tmp_path / "ws", node, script, name="bp.py", extra='[debug]\nmode = "wait"')
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(session, events, lambda: status(events) == "waiting_for_debugger"):
        client = await DapClient.connect_initialized("127.0.0.1", rank(events).local_port, timeout=20)
        await client.attach()  # the run starts now and reaches breakpoint() with a debugger there
        stopped = await client.wait_stopped(timeout=15)
        assert stopped.path.endswith("bp.py") and stopped.line == 4
        assert "after" not in events.output()
        await client.continue_(stopped.thread_id)
        await events.until(lambda: "after" in events.output(), 15)
        await client.disconnect()
    await session.down()


async def test_crash_loop_backs_off_and_wait_mode_times_out(node: Testbed, tmp_path: Path):
    crash = "import sys\nprint('boom', flush=True)\nsys.exit(3)\n"
    config = script_workspace(tmp_path / "ws", node, crash)
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(session, events, lambda: status(events) == "crashed"):
        assert rank(events).exit_code == 3 and "exited with code 3" in rank(events).reason
        await session.restart_run()
        await events.until(lambda: rank(events).restarts == 1 and status(events) == "crashed", 20)
        await session.restart_run()  # the second quick crash in a row: the restart waits
        await events.until(lambda: rank(events).backoff_s >= 2, 10)
    await session.down()

    config = script_workspace(tmp_path / "ws2", node, FOREVER, extra='[debug]\nmode = "wait"\nwait_timeout = 2')
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(
        session, events, lambda: "no debugger" in (rank(events).reason if rank(events) else ""), 40
    ):
        assert status(events) == "stopped" and rank(events).reason == "no debugger attached within 2 s"
        assert any(s.ranks and s.ranks[0].status is RankStatus.WAITING_FOR_DEBUGGER for s in events.of(RunState))
    await session.down()
