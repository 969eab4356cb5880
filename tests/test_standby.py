"""A restart in milliseconds (issue 14): the debug loop keeps the next run ready beside the current
one (tui.node.standby) and hands over to it on a restart.

Checked with the real loop in a tmux pane (tests/test_loop.py's Pane), under the real guarded
debugpy: the standby runs none of the user's code before its turn and cannot be reached on the
debug port (it is bound there, not listening); after the restart it is the run, and it runs the
script as it is on disk at the restart, not as it was when it started; a changed command drops it;
``--no-standby`` ([debug] standby = false) never makes one.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import pytest
from test_loop import Pane, alive, wait_for

from tui.config import load_workspace
from tui.node import loopstate as ls
from tui.node.layout import loop_options
from tui.remote.panels import layout_request

SCRIPT = (
    "import os, time\nprint(f'version {VERSION} pid={{os.getpid()}}', flush=True)\nwhile True:\n    time.sleep(0.2)\n"
)


def start(pane: Pane, script: Path, *extra: str) -> None:
    loop = [sys.executable, "-m", "tui.node.loop", "--state", str(pane.state), "--port", str(pane.port)]
    pane.type(shlex.join([*loop, "--grace", "0.5", *extra, "--", sys.executable, str(script)]))


def listeners(port: int) -> dict[int, int]:
    """pid -> inode of the processes listening on ``port``."""
    return ls.socket_owners({s.inode for s in ls.tcp_sockets() if s.port == port and s.state == "LISTEN"})


def test_a_restart_hands_over_to_the_standby_which_runs_the_script_as_it_is_then(pane: Pane, tmp_path: Path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(VERSION=1))
    start(pane, script)
    first = pane.wait_state("running", lambda s: s["status"] == "running")
    ready = pane.wait_state("a standby", lambda s: s.get("standby_pid") is not None)
    standby = ready["standby_pid"]
    wait_for(lambda: f"version 1 pid={first['pid']}" in pane.text(), "the run's first line")
    assert alive(standby) and f"pid={standby}" not in pane.text()  # none of the user's code ran in it
    # Only the run's adapter listens on the debug port: a client cannot reach the standby.
    owners = listeners(pane.port)
    assert len(owners) == 1 and all(ls.environ_has(pid, f"TETHER_LOOP_RUN={first['token']}") for pid in owners)

    script.write_text(SCRIPT.format(VERSION=2))  # an edit synced while the standby waits
    ls.send_control(pane.state, "restart")
    second = pane.wait_state("the standby's turn", lambda s: s.get("pid") == standby and s["status"] == "running")
    wait_for(lambda: f"version 2 pid={standby}" in pane.text(), f"the edited script's line in:\n{pane.text()}")
    assert "(started ahead)" in pane.text() and second["restarts"] == 1
    wait_for(lambda: not alive(first["pid"]), "the old run to end")
    # It listens now, and a new standby waits behind it.
    wait_for(
        lambda: (
            list(listeners(pane.port))
            and all(ls.environ_has(pid, f"TETHER_LOOP_RUN={second['token']}") for pid in listeners(pane.port))
        ),
        "the new run's adapter on the debug port",
    )
    after = pane.wait_state("the next standby", lambda s: s.get("standby_pid") not in (None, standby))
    assert alive(after["standby_pid"])


def test_a_changed_command_drops_the_standby_and_starts_afresh(pane: Pane, tmp_path: Path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(VERSION=1))
    start(pane, script)
    ready = pane.wait_state("a standby", lambda s: s.get("standby_pid") is not None)
    ls.write_options(pane.dir, {"mode": "wait", "wait_timeout": 0})  # tether.toml's mode changed
    ls.send_control(pane.state, "restart")
    second = pane.wait_state("the restart", lambda s: s["restarts"] == 1 and s.get("pid") not in (None, ready["pid"]))
    assert second["pid"] != ready["standby_pid"] and second["mode"] == "wait"
    wait_for(lambda: not alive(ready["standby_pid"]), "the dropped standby to end")
    assert "(started ahead)" not in pane.text()


def test_no_standby_when_turned_off(pane: Pane, tmp_path: Path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(VERSION=1))
    start(pane, script, "--no-standby")
    first = pane.wait_state("running", lambda s: s["status"] == "running")
    wait_for(lambda: f"version 1 pid={first['pid']}" in pane.text(), "the run's first line")
    # Past the moment a standby would have been made beside it (0.2 s after debugpy listened).
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert pane.read().get("standby_pid") is None
        time.sleep(0.05)
    ls.send_control(pane.state, "restart")
    second = pane.wait_state("the restart", lambda s: s["status"] == "running" and s["pid"] != first["pid"])
    wait_for(lambda: f"version 1 pid={second['pid']}" in pane.text(), "the new run's line")
    assert "(started ahead)" not in pane.text()


@pytest.mark.parametrize("setting, wanted", [("", True), ("standby = false\n", False)])
def test_debug_standby_in_tether_toml_reaches_the_loop(tmp_path: Path, setting: str, wanted: bool) -> None:
    """As the loop's options (taken at its next start, like the mode: no run is stopped for it)."""
    (tmp_path / "tether.toml").write_text(
        '[workspace]\nname = "w1"\nremote_root = "~/w1"\n[connection]\nlogin = "hpc"\n[debug]\n' + setting
    )
    loop = layout_request(load_workspace(tmp_path / "tether.toml"))["run"]["loop"]
    assert loop_options(loop)["standby"] is wanted


def test_turned_off_while_running_the_standby_goes_at_the_next_restart(pane: Pane, tmp_path: Path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(VERSION=1))
    start(pane, script)
    ready = pane.wait_state("a standby", lambda s: s.get("standby_pid") is not None)
    ls.write_options(pane.dir, {"mode": "attach", "wait_timeout": 0, "standby": False})
    ls.send_control(pane.state, "restart")
    second = pane.wait_state("the restart", lambda s: s["restarts"] == 1 and s["status"] == "running")
    assert second["pid"] != ready["standby_pid"] and second.get("standby_pid") is None
    wait_for(lambda: not alive(ready["standby_pid"]), "the dropped standby to end")
