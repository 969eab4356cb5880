"""`tether demo` in a real terminal: the link comes up, `q` leaves, and nothing of the demo is left.

The terminal is a private tmux server (its own socket, killed at the end); the test reads the
screen with capture-pane and types with send-keys, as a person would.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from testbed.procs import ProcessRef
from testbed.wait import wait_until


def demo_processes() -> list[ProcessRef]:
    """Processes whose command line names a demo folder (its sshd, ssh connections to it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            found.append(ProcessRef.of(int(entry.name))) if b"/tether-demo-" in cmdline else None
        except (OSError, ProcessLookupError):
            continue
    return [p for p in found if p.is_alive()]


@pytest.mark.skipif(
    shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(), reason="the demo needs openssh-server"
)
def test_demo_comes_up_and_leaves_nothing_running(terminal, tether_home):
    terminal.run_tether("demo")
    screen = terminal.screen

    # The run's python (the node's plain python3) has no debugpy: Tether provides its own, unasked.
    try:
        wait_until(lambda: "epoch     1" in screen(), 60)
    except TimeoutError:
        raise AssertionError(f"the demo's run printed nothing within 60 s; the screen:\n{screen()}") from None
    shown = screen()
    assert "laptop → tether-demo" in shown and " ms" in shown and "up " in shown
    assert "error" not in shown.lower() and "No module named" not in shown and "crashed" not in shown, shown
    started = demo_processes()
    # sshd rewrites its process title into one string: "sshd: /usr/sbin/sshd -D -f DIR/sshd_config ...".
    titles = " ".join(Path(f"/proc/{p.pid}/cmdline").read_bytes().decode().replace("\0", " ") for p in started)
    demo_root = Path(re.search(r"-f (\S+/tether-demo-[^/\s]+)/sshd_config", titles).group(1))
    assert demo_root.is_dir() and (demo_root / "project" / "train.py").exists()

    terminal("send-keys", "q")
    wait_until(lambda: f"{terminal.EXITED}0" in screen(), 60)
    # The demo waits for its sshd and the sessions it served before it exits: nothing to wait for.
    assert "The demo is over" in screen()
    assert not [p for p in started if p.is_alive()] and demo_processes() == []
    assert not demo_root.exists()
