"""The testbed as tests see it: a login host, a compute node behind it, and the laptop's ssh config."""

from __future__ import annotations

import atexit
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .netns import NodeNetwork
from .nodepython import SYSTEM_PYTHON
from .procs import ProcessRef
from .resources import Registry, kill_user_processes, release
from .sshd import Sshd
from .users import TestUser

ASKPASS_PASSWORD_VAR = "TETHER_TESTBED_PASSWORD"


class TestbedUnavailable(RuntimeError):
    """This feature needs the full (root, network namespace) testbed."""

    __test__ = False


def _run_as(
    argv_prefix: list[str],
    user: TestUser,
    own_user: bool,
    tmux_tmpdir: Path | None,
    cmd: str,
    check: bool,
    timeout: float,
    input: str | None,
) -> subprocess.CompletedProcess[str]:
    # A clean, predictable environment: root's pyenv PATH and variables must not leak in.
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": user.home,
        "USER": user.name,
        "LOGNAME": user.name,
    }
    if tmux_tmpdir is not None:
        # The same tmux server that ssh sessions on the node see (sshd's SetEnv).
        env["TMUX_TMPDIR"] = str(tmux_tmpdir)
    as_user = [] if own_user else ["/usr/sbin/runuser", "-u", user.name, "--"]
    argv = [*argv_prefix, *as_user, "sh", "-c", 'cd "$HOME" && eval "$1"', "sh", cmd]
    return subprocess.run(
        argv, input=input, capture_output=True, text=True, env=env, timeout=timeout, check=check, cwd="/"
    )


def nsenter_argv(anchor: ProcessRef) -> list[str]:
    """Prefix that runs a command on the node, e.g. slurmd (not `ip netns exec`: it remounts /sys)."""
    return ["/usr/bin/nsenter", "--target", str(anchor.pid), "--net", "--uts", "--mount"]


@dataclass
class ComputeNode:
    """The node's sshd, inside the node's network, UTS and mount namespaces.

    An anchor process (`sleep infinity`) holds those namespaces, so the node keeps its hostname
    and private home across `stop()`/`start()` of its sshd, and files can be inspected on the
    node even while its sshd is down. In loopback mode the node is the login sshd itself.
    """

    sshd: Sshd
    anchor: ProcessRef | None
    network: NodeNetwork | None
    home_backing_dir: Path | None  # the directory mounted over the user's home on the node

    @property
    def log_path(self) -> Path:
        return self.sshd.log_path

    @property
    def pid(self) -> int | None:
        return self.sshd.pid

    @property
    def is_running(self) -> bool:
        return self.sshd.is_running

    def start(self) -> None:
        self.sshd.start()

    def stop(self) -> None:
        """sshd and its sessions go away; detached user processes on the node (tmux) survive."""
        self.sshd.stop()

    def count_auths(self) -> int:
        return self.sshd.count_auths()

    def nsenter_argv(self) -> list[str]:
        """Prefix that runs a command on the node (empty in loopback mode, where the node is here)."""
        return [] if self.anchor is None else nsenter_argv(self.anchor)

    def set_link(self, up: bool) -> None:
        if self.network is None:
            raise TestbedUnavailable("the loopback testbed has no link to cut")
        self.network.set_link(up)


@dataclass
class PasswordLogin:
    """A second login host that accepts only passwords (stands in for password + 2FA sites)."""

    alias: str
    port: int
    node_alias: str  # the compute node reached through this host
    sshd: Sshd

    @property
    def log_path(self) -> Path:
        return self.sshd.log_path

    def count_auths(self) -> int:
        return self.sshd.count_auths()


@dataclass
class Testbed:
    """Built once per test session by `build_testbed()`; `close()` undoes everything."""

    __test__ = False  # pytest: not a test class despite the name

    run_id: str
    mode: Literal["netns", "loopback"]  # netns: real jump host + node; loopback: one sshd plays both
    unavailable_reason: str | None  # why the netns testbed could not be built, in loopback mode
    dir: Path
    test_user: TestUser
    own_user: bool  # loopback mode: the account running the tests, which we must never kill
    password: str | None = field(repr=False)  # kept in memory only; never printed
    ssh_config: Path
    identity_file: Path
    known_hosts: Path
    login: Sshd
    node: ComputeNode
    node_ip: str
    node_port: int
    node_tmux_tmpdir: Path
    node_python: Path | None
    registry: Registry
    start_password_login: Callable[[], PasswordLogin]
    setup_seconds: float = 0.0
    login_alias: str = "login"
    node_alias: str = "compute01"
    plain_python: str = SYSTEM_PYTHON  # no debugpy there
    _password_login: PasswordLogin | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        # Last line of defence when pytest's own teardown does not run (e.g. sys.exit in a hook).
        atexit.register(self.close)

    @property
    def has_netns(self) -> bool:
        return self.mode == "netns"

    @property
    def user(self) -> str:
        return self.test_user.name

    @property
    def uid(self) -> int:
        return self.test_user.uid

    @property
    def gid(self) -> int:
        return self.test_user.gid

    @property
    def home(self) -> str:
        return self.test_user.home

    @property
    def login_port(self) -> int:
        return self.login.port

    @property
    def network(self) -> NodeNetwork | None:
        return self.node.network

    def count_auths(self) -> int:
        """Authentications seen by the (key) login host."""
        return self.login.count_auths()

    def ssh_argv(self, alias: str, *command: str) -> list[str]:
        return ["ssh", "-F", str(self.ssh_config), alias, *command]

    def password_login(self) -> PasswordLogin:
        """Start the password-only login host on first use; alias `pwlogin`, node `compute01-pw`."""
        if self._password_login is None:
            self._password_login = self.start_password_login()
        return self._password_login

    def askpass_env(self, base: Mapping[str, str] | None = None, password: str | None = None) -> dict[str, str]:
        """Environment that makes ssh take the password from an askpass helper, without a tty.

        The password travels only in this environment; the helper script just prints it.
        """
        if password is None:
            if self.password is None:
                raise TestbedUnavailable("password login needs root (a throwaway user with a password)")
            password = self.password
        env = dict(os.environ if base is None else base)
        env.update(
            {
                "SSH_ASKPASS": str(self.dir / "askpass.sh"),
                "SSH_ASKPASS_REQUIRE": "force",
                ASKPASS_PASSWORD_VAR: password,
            }
        )
        env.pop("DISPLAY", None)
        return env

    def node_run_as_user(
        self, cmd: str, *, check: bool = False, timeout: float = 30.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` (sh) as the test user on the node, in its namespaces: its private home, its
        tmux socket dir. Works while the node's sshd is stopped."""
        return _run_as(
            self.node.nsenter_argv(), self.test_user, self.own_user, self.node_tmux_tmpdir, cmd, check, timeout, input
        )

    def login_run_as_user(
        self, cmd: str, *, check: bool = False, timeout: float = 30.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `cmd` as the test user on the login host (the root namespaces)."""
        return _run_as([], self.test_user, self.own_user, None, cmd, check, timeout, input)

    def kill_user_processes(self) -> None:
        """Every process of the test user, on both hosts (the user is ours; never in loopback mode)."""
        if self.own_user:
            raise TestbedUnavailable("loopback mode runs as your own account: refusing to kill its processes")
        kill_user_processes(self.uid)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        # Stopping through the Sshd objects also reaps them, so no zombie outlives the testbed.
        for sshd in (self.node.sshd, self.login, self._password_login and self._password_login.sshd):
            if sshd is not None:
                sshd.stop()
        release(self.registry.resources)
        self.registry.forget()

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
