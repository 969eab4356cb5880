"""A console session on a Kubernetes pod, through `kubectl exec` only: no login host, no ssh master.

No Kubernetes API server can run here. A STAND-IN `kubectl` (tests/fixtures/standins/standin.py,
not the real CLI) answers `get pod` with captured pod JSON (tests/fixtures/kube/pod_running.json)
and runs `exec` on the testbed's compute node over ssh: that node stands in for the pod's
container; its `port-forward` relays to the node's 127.0.0.1 with `ssh -W`, and drops after the
first connection as kubectl does when the stream to the pod breaks. Everything Tether does to the
pod goes through kubectl: the agent, sync (rsync with kubectl as its remote shell), the tmux layout
and run, `a`, `tether down` (exec), and the debug port (port-forward, restarted when it drops).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from debug_helpers import debug_console, debuggable, rank, script_workspace, status
from node_helpers import Events
from standins import StandIns, install_standins
from testbed import Testbed

from tui.cli import main
from tui.config import load_workspace
from tui.debug.dap import DapClient
from tui.events import Notice
from tui.session import Session

pytestmark = pytest.mark.needs_netns

RUN = "import os, time\nprint('run pid', os.getpid(), flush=True)\nwhile True:\n    time.sleep(0.2)\n"
KUBE = '[scheduler]\nkind = "kube"\nnamespace = "ml"\ncontext = "lab"\npod = "train-0"'


@pytest.fixture
def standin_kubectl(needs_netns: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIns:
    """The STAND-IN kubectl first on PATH, for the session's own kubectl calls; its `exec` reaches
    the testbed's compute node."""
    standins = install_standins(tmp_path, ("kubectl",), "the real CLI")
    standins.replay = {
        "KUBECTL_GET": "kube/pod_running.json",
        "EXEC_SSH": json.dumps(needs_netns.ssh_argv(needs_netns.node_alias)),
        "FORWARD_DROP_RUNS": "1",
    }
    for name, value in standins.env().items():
        monkeypatch.setenv(name, value)
    return standins


async def test_a_pod_session_runs_entirely_through_kubectl_exec(
    needs_netns: Testbed, standin_kubectl: StandIns, tether_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    testbed = needs_netns
    folder = tmp_path / "ws"
    config = script_workspace(folder, testbed, RUN, name="run.py", node="", extra=KUBE)
    (folder / "data.txt").write_text("synced through kubectl exec\n")
    session, events = Session(load_workspace(config), ping_interval=0.5), Events()
    await session.prepare()  # nothing to log in to

    async with debug_console(session, events, lambda: debuggable(events), timeout=60):
        assert session.chain == ("pod train-0",)
        assert testbed.node_run_as_user("cat ~/work/tbws/data.txt").stdout == "synced through kubectl exec\n"
        assert "tether-tbws" in testbed.node_run_as_user("tmux ls").stdout
        # The debug port through kubectl port-forward, as VS Code would attach; the forward drops
        # after its first connection and comes back on the same laptop port.
        port = rank(events).local_port
        for _ in range(2):
            client = await DapClient.connect_initialized("127.0.0.1", port, timeout=20)
            await client.attach()
            await events.until(lambda: status(events) == "attached", 20)
            await client.disconnect()
            await events.until(lambda: status(events) == "running", 20)
        assert any("forward dropped, restarting" in n.message for n in events.of(Notice))
        attach = session.attach_argv()
        assert attach is not None and attach[:2] == ["kubectl", "exec"] and "-t" in attach and "train-0" in attach

    # Every remote step was a kubectl call with the workspace's context and namespace; no ssh
    # master to a login host was ever started.
    calls = [call["argv"] for call in standin_kubectl.calls("kubectl")]
    assert {call[0] for call in calls} <= {"get", "exec", "--context", "-n"}
    assert any(call[0] == "exec" for call in calls)
    assert sum("port-forward" in call for call in calls) >= 2  # started, dropped, started again
    assert all("ml" in call and "lab" in call for call in calls)
    assert await session.login_master().pid() is None

    # `tether sync` without the console goes through kubectl exec too.
    (folder / "later.txt").write_text("synced by tether sync\n")
    assert await asyncio.to_thread(main, ["-c", str(config), "sync"]) == 0
    assert testbed.node_run_as_user("cat ~/work/tbws/later.txt").stdout == "synced by tether sync\n"

    await session.down()
    assert "tether-tbws" not in testbed.node_run_as_user("tmux ls 2>/dev/null; true").stdout

    # The doctor checks the pod's tools the same way.
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["-c", str(config), "doctor"]) == 0
    report = capsys.readouterr().out
    assert "[ok  ] pod: train-0 is Running" in report and "[ok  ] debugpy" in report, report
