"""Shared fixtures: the real testbed (login sshd + compute node in a netns), ssh, isolated state."""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

import pytest
from testbed import PasswordLogin, Testbed, TestbedUnavailable, build_testbed
from testbed.slurm import SlurmCluster, build_slurm, missing_programs
from testbed.ssh import SshCmd, run_ssh
from testbed.sshd import SSHD

_built: list[Testbed] = []

ROOT = Path(__file__).resolve().parent.parent


def skip_or_fail(reason: str) -> NoReturn:
    """Skip on a laptop; under CI (CI=true) every testbed test must run, so a skip fails."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so this may not be skipped: {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_netns: needs the full testbed (root: compute node in a network namespace)"
    )


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """The login host and compute node, built once per session and always torn down."""
    if shutil.which("ssh") is None or not os.access(SSHD, os.X_OK):
        skip_or_fail(f"the testbed needs the OpenSSH client and server ({SSHD})")
    # SIGTERM (a CI timeout, `kill`) would end Python without running teardown; pytest turns a
    # KeyboardInterrupt into an orderly shutdown that does run it.
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    bed = build_testbed()
    _built.append(bed)
    try:
        yield bed
    finally:
        bed.close()
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def needs_netns(testbed: Testbed) -> Testbed:
    """The full testbed; skips (fails under CI) in loopback mode, saying why."""
    if not testbed.has_netns:
        skip_or_fail(f"needs the network-namespace testbed: {testbed.unavailable_reason}")
    return testbed


@pytest.fixture(autouse=True)
def _needs_netns_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("needs_netns") is not None:
        request.getfixturevalue("needs_netns")


@pytest.fixture
def ssh_cmd(testbed: Testbed) -> SshCmd:
    """`ssh -F <testbed config> [options] ALIAS COMMAND` -> CompletedProcess (text, captured)."""
    return functools.partial(run_ssh, testbed.ssh_config)


@pytest.fixture
def password_login(needs_netns: Testbed) -> PasswordLogin:
    """The password-only login host (alias `pwlogin`), started on first use."""
    try:
        return needs_netns.password_login()
    except TestbedUnavailable as exc:
        skip_or_fail(str(exc))


@pytest.fixture
def tether_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, short base directory for Tether's state, cache, config and runtime files.

    Short on purpose (/tmp/tt-XXXXXXXX): ssh ControlPath and tmux sockets must stay < 104 bytes.
    """
    base = Path(tempfile.mkdtemp(prefix="tt-", dir="/tmp"))
    for variable, name in (
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_RUNTIME_DIR", "run"),
    ):
        path = base / name
        path.mkdir(mode=0o700)
        monkeypatch.setenv(variable, str(path))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def node(needs_netns: Testbed, tether_home: Path) -> Iterator[Testbed]:
    """The compute node with nothing an earlier test left there (tmux, runs, agents), before and after."""
    from node_helpers import clean_node

    clean_node(needs_netns)
    yield needs_netns
    clean_node(needs_netns)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for bed in _built:
        detail = f"netns, node {bed.node_ip}" if bed.has_netns else f"loopback ({bed.unavailable_reason})"
        terminalreporter.write_line(f"testbed {bed.run_id}: {detail}, set up in {bed.setup_seconds:.2f}s")


@pytest.fixture(scope="session")
def slurm(testbed: Testbed) -> Iterator[SlurmCluster]:
    """A real single-node Slurm (munged, slurmctld, slurmd on compute01), built on first use and
    always torn down; the test user's ssh sessions see it through SLURM_CONF. See testbed/slurm.py."""
    missing = missing_programs()
    if missing:
        skip_or_fail(f"Slurm tests need slurm-wlm and munge installed: missing {', '.join(missing)}")
    if not testbed.has_netns:
        skip_or_fail(f"Slurm tests need the network-namespace testbed: {testbed.unavailable_reason}")
    cluster = build_slurm(testbed)
    try:
        yield cluster
    finally:
        cluster.close()


class LaptopTerminal:
    """A private tmux server on the laptop side: the terminal a test runs `tether up` in."""

    EXITED = "CONSOLE-EXITED-"  # printed with tether's exit code when the console ends

    def __init__(self) -> None:
        self.socket = f"tether-terminal-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        """A tmux command on this terminal's server; its stdout."""
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout

    def run_tether(self, *args: str) -> None:
        """``tether ARGS`` in a 120x36 window; the window stays to show how it ended."""
        tether = f"cd {shlex.quote(str(ROOT))} && {shlex.quote(sys.executable)} -m tui {shlex.join(args)}"
        self("new-session", "-d", "-x", "120", "-y", "36", f"{tether}; echo {self.EXITED}$?; sleep 600")

    def screen(self) -> str:
        return self("capture-pane", "-p")

    def close(self) -> None:
        """End this terminal's tmux server and what runs in it."""
        self("kill-server")
        (Path(f"/tmp/tmux-{os.getuid()}") / self.socket).unlink(missing_ok=True)  # tmux 3.3 leaves it behind


@pytest.fixture
def terminal() -> Iterator[LaptopTerminal]:
    """The laptop-side terminal for tests that run the console for real (`a`, the demo)."""
    if shutil.which("tmux") is None:
        skip_or_fail("needs tmux")
    terminal = LaptopTerminal()
    yield terminal
    terminal.close()


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[object]:
    """A tmux pane on a private tmux server, for the debug loop (tests/test_loop.py's Pane)."""
    from test_loop import Pane

    made = Pane(tmp_path)
    try:
        yield made
    finally:
        made.close()
