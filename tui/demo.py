"""`tether demo`: a throwaway local "cluster" and a sample project, removed on exit.

An sshd on loopback with its own host key and client key plays both login host and node, as the
user who runs the demo. Nothing outside the demo's temporary directory is touched: the node's
sessions get a home inside it (sshd's SetEnv HOME), and so does the laptop side's state, cache and
sockets (XDG_* for the demo's own process). The sshd and its sessions are ended by their pids.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tui.errors import TetherError

SAMPLE_TRAIN = '''"""A training-like loop: prints a loss that goes down, one epoch a second."""

import math
import time

for epoch in range(1, 10_001):
    loss = 2.0 * math.exp(-epoch / 30) + 0.05
    print(f"epoch {epoch:5d}  loss {loss:.4f}", flush=True)
    time.sleep(1)
'''


class DemoError(TetherError):
    pass


def find_sshd() -> str:
    for candidate in (shutil.which("sshd"), "/usr/sbin/sshd", "/usr/local/sbin/sshd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise DemoError(
        "the demo needs an OpenSSH server (sshd) on this machine",
        fix="apt-get install openssh-server (or run `bash .ci/setup`)",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@dataclass(frozen=True)
class DemoCluster:
    root: Path
    config_path: Path
    sshd_pid: int


LAPTOP_DIRS = (
    ("XDG_STATE_HOME", "state"),
    ("XDG_CACHE_HOME", "cache"),
    ("XDG_CONFIG_HOME", "config"),
    ("XDG_RUNTIME_DIR", "run"),
)


def _write_sshd_config(root: Path, port: int) -> Path:
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {root / 'host_key'}",
                f"AuthorizedKeysFile {root / 'authorized_keys'}",
                f"PidFile {root / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "AllowTcpForwarding yes",
                # The node's ~ (Tether's agent, the run's log, its copy of debugpy) stays in the demo.
                f"SetEnv HOME={root / 'node-home'}",
                "",
            ]
        )
    )
    return config


def _write_client_config(root: Path, port: int) -> Path:
    config = root / "ssh_config"
    config.write_text(
        "\n".join(
            [
                "Host tether-demo",
                "  HostName 127.0.0.1",
                f"  Port {port}",
                f"  User {pwd.getpwuid(os.getuid()).pw_name}",
                f"  IdentityFile {root / 'client_key'}",
                "  IdentitiesOnly yes",
                f"  UserKnownHostsFile {root / 'known_hosts'}",
                "  StrictHostKeyChecking accept-new",
                "  BatchMode yes",
                "",
            ]
        )
    )
    return config


def _write_project(root: Path, ssh_config: Path) -> Path:
    project = root / "project"
    project.mkdir()
    (project / "train.py").write_text(SAMPLE_TRAIN)
    config = project / "tether.toml"
    config.write_text(
        "\n".join(
            [
                "# The demo workspace: a loopback sshd plays login host and node.",
                "[workspace]",
                'name = "demo"',
                f'remote_root = "{root / "remote"}"',
                "",
                "[connection]",
                'login = "tether-demo"',
                f'ssh_config = "{ssh_config}"',
                "control_persist = 60",
                "",
                "[run]",
                'command = "python3 train.py"',
                "",
            ]
        )
    )
    return config


def _wait_for_port(port: int, pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                raise DemoError(
                    "the demo sshd exited at start", fix="run `sshd -t` to check the OpenSSH server install"
                )
        time.sleep(0.05)
    raise DemoError(f"the demo sshd did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _cleanup_on_hangup() -> Iterator[None]:
    """A closed terminal (SIGHUP) or a `kill` (SIGTERM) must still run the demo's cleanup."""
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGHUP, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _laptop_dirs(root: Path) -> Iterator[None]:
    """The laptop side's state, cache, config and sockets under ``root`` while the demo runs."""
    previous = {name: os.environ.get(name) for name, _ in LAPTOP_DIRS}
    root.mkdir(mode=0o700)
    for name, folder in LAPTOP_DIRS:
        path = root / folder
        path.mkdir(mode=0o700)
        os.environ[name] = str(path)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (sshd's per-connection processes and the sessions' shells)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _end(pids: list[int], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL what is still there after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [pid for pid in pids if _alive(pid)]
        if not pids:
            return


@contextlib.contextmanager
def demo_cluster() -> Iterator[DemoCluster]:
    """Start the loopback cluster; on exit stop its sshd and remove every file it made."""
    with _cleanup_on_hangup():
        yield from _demo_cluster()


def _demo_cluster() -> Iterator[DemoCluster]:
    sshd = find_sshd()
    root = Path(tempfile.mkdtemp(prefix="tether-demo-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        _keygen(root / "host_key")
        _keygen(root / "client_key")
        shutil.copy(root / "client_key.pub", root / "authorized_keys")
        (root / "remote").mkdir()
        (root / "node-home").mkdir()
        port = free_port()
        sshd_config = _write_sshd_config(root, port)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        process = subprocess.Popen(
            [sshd, "-D", "-f", str(sshd_config), "-E", str(root / "sshd.log")],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the console must not reach the demo's server
        )
        _wait_for_port(port, process.pid)
        config = _write_project(root, _write_client_config(root, port))
        with _laptop_dirs(root / "laptop"):
            yield DemoCluster(root, config, process.pid)
    finally:
        if process is not None and process.poll() is None:
            # Ending the listener leaves its sessions (and what they started) running: end them too.
            sessions = _children(process.pid)
            _end([process.pid])
            process.wait()
            _end([pid for pid in sessions if _alive(pid)])
        shutil.rmtree(root, ignore_errors=True)
