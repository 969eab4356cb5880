"""The run's PYTHONPATH holds only what the run needs (issue 12, item 9: "Tether's `tui` package and
a vendored libtmux are on the run's PYTHONPATH and can shadow the user's own packages"). The user's
environment on the node has packages of its own called ``tui`` and ``libtmux``; the run imports
them and gets the user's, not the agent's copies, and its PYTHONPATH names no folder of the agent
(only the loop's hook/guard folder, next to the loop's state)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from debug_helpers import debug_console, script_workspace, status
from node_helpers import Events, clean_node
from testbed import Testbed

from tui.config import load_workspace
from tui.session import Session

pytestmark = pytest.mark.needs_netns

USER_ENV = "~/userenv-pp"  # the user's own environment on the node: a venv with their packages
REPORT = """import json, os, sys, time
import libtmux, tui
print('report ' + json.dumps({'tui': tui.__file__, 'libtmux': libtmux.__file__,
      'mark': [getattr(tui, 'MARK', None), getattr(libtmux, 'MARK', None)],
      'pythonpath': os.environ.get('PYTHONPATH', '')}), flush=True)
while True:
    time.sleep(0.1)
"""


@pytest.fixture
def node(needs_netns: Testbed, tether_home: Path):
    clean_node(needs_netns)
    yield needs_netns
    clean_node(needs_netns)
    needs_netns.node_run_as_user(f"rm -rf {USER_ENV}")


def user_env_with_own_packages(testbed: Testbed) -> str:
    """A venv of the user's whose site-packages hold their own ``tui`` and ``libtmux`` (debugpy comes
    from the testbed's node venv, through a .pth after them); its python."""
    assert testbed.node_python is not None
    node_site = next(testbed.node_python.parent.parent.glob("lib/python3*/site-packages"))
    testbed.node_run_as_user(
        f"rm -rf {USER_ENV} && {testbed.plain_python} -m venv --without-pip {USER_ENV} && "
        f"site=$(echo {USER_ENV}/lib/python3*/site-packages) && "
        "for p in tui libtmux; do mkdir -p $site/$p && echo \"MARK = 'users-$p'\" > $site/$p/__init__.py; done && "
        f"echo {node_site} > $site/zz-debugpy.pth",
        check=True,
    )
    return testbed.node_run_as_user(f"echo {USER_ENV}/bin/python", check=True).stdout.strip()


def report(events: Events) -> dict | None:
    found = [line for line in events.output() if line.startswith("report ")]
    return json.loads(found[-1].removeprefix("report ")) if found else None


async def test_the_run_imports_the_users_own_tui_and_libtmux(node: Testbed, tmp_path: Path):
    python = user_env_with_own_packages(node)
    config = script_workspace(tmp_path / "ws", node, REPORT, interpreter=python)
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    async with debug_console(session, events, lambda: report(events) is not None and status(events) == "running"):
        seen = report(events)
        assert seen["mark"] == ["users-tui", "users-libtmux"], seen  # the user's, not Tether's
        assert "/.cache/tether/agent" not in seen["pythonpath"], seen
        entries = [p for p in seen["pythonpath"].split(":") if p]
        assert entries and all("/.cache/tether/runs/" in p for p in entries), seen  # the hook/guard folder only
    await session.down()
