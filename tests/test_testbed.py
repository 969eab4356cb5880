"""The testbed itself, tested with the real programs: sshd, ssh, ip, nsenter."""

from __future__ import annotations

import errno
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from testbed import PasswordLogin, Testbed, build_testbed, wait_until
from testbed.procs import ProcessRef
from testbed.resources import (
    REGISTRY_DIR,
    registry_lock,
    sweep_stale_runs,
    user_processes,
)
from testbed.ssh import SshCmd


def test_login_runs_commands_on_the_login_host(testbed: Testbed, ssh_cmd: SshCmd) -> None:
    result = ssh_cmd(testbed.login_alias, "hostname; id -u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [socket.gethostname(), str(testbed.uid)]


def test_node_alias_works_in_every_mode(testbed: Testbed, ssh_cmd: SshCmd) -> None:
    result = ssh_cmd(testbed.node_alias, "echo ok")
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


@pytest.mark.needs_netns
def test_node_is_reached_through_the_jump_host(testbed: Testbed, ssh_cmd: SshCmd) -> None:
    result = ssh_cmd(testbed.node_alias, "hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "compute01\n"


@pytest.mark.needs_netns
def test_laptop_cannot_reach_the_node_directly(testbed: Testbed) -> None:
    started = time.monotonic()
    with pytest.raises(OSError) as caught:
        socket.create_connection((testbed.node_ip, testbed.node_port), timeout=5).close()
    assert caught.value.errno == errno.EHOSTUNREACH
    assert time.monotonic() - started < 1.0, "must fail at once, not time out"


@pytest.mark.needs_netns
def test_the_test_user_on_the_login_host_can_reach_the_node(testbed: Testbed, ssh_cmd: SshCmd) -> None:
    probe = f"timeout 5 bash -c 'exec 3<>/dev/tcp/{testbed.node_ip}/{testbed.node_port}' && echo open"
    result = ssh_cmd(testbed.login_alias, probe)
    assert result.stdout == "open\n", result.stderr


@pytest.mark.needs_netns
def test_node_sshd_pid_is_sshd_itself(testbed: Testbed) -> None:
    assert testbed.node.pid is not None
    assert os.readlink(f"/proc/{testbed.node.pid}/exe") == "/usr/sbin/sshd"


@pytest.mark.needs_netns
def test_node_home_is_private(testbed: Testbed, ssh_cmd: SshCmd) -> None:
    assert ssh_cmd("compute01", "echo x > ~/only_on_node").returncode == 0
    assert ssh_cmd("login", "echo y > ~/only_on_login").returncode == 0

    assert ssh_cmd("login", "test -e ~/only_on_node").returncode == 1
    assert ssh_cmd("compute01", "cat ~/only_on_node").stdout == "x\n"
    assert ssh_cmd("compute01", "test -e ~/only_on_login").returncode == 1
    assert testbed.node_run_as_user("cat ~/only_on_node").stdout == "x\n"
    assert testbed.login_run_as_user("cat ~/only_on_login").stdout == "y\n"
    assert testbed.node_run_as_user("rm ~/only_on_node").returncode == 0
    assert testbed.login_run_as_user("rm ~/only_on_login").returncode == 0


@pytest.mark.needs_netns
def test_node_sessions_get_their_own_tmux_dir(testbed: Testbed, ssh_cmd: SshCmd) -> None:
    assert ssh_cmd("compute01", "echo $TMUX_TMPDIR").stdout == f"{testbed.node_tmux_tmpdir}\n"


@pytest.mark.needs_netns
def test_node_path_can_be_changed_with_ssh_environment(testbed: Testbed, ssh_cmd: SshCmd) -> None:
    write = "mkdir -p ~/.ssh && echo PATH=/opt/nowhere:/usr/bin:/bin > ~/.ssh/environment"
    assert testbed.node_run_as_user(write).returncode == 0
    try:
        assert ssh_cmd("compute01", "echo $PATH").stdout == "/opt/nowhere:/usr/bin:/bin\n"
        assert "/opt/nowhere" not in ssh_cmd("login", "echo $PATH").stdout
    finally:
        testbed.node_run_as_user("rm -f ~/.ssh/environment")


def test_each_new_connection_authenticates_once(testbed: Testbed, ssh_cmd: SshCmd) -> None:
    before = testbed.count_auths()
    assert ssh_cmd("login", "true").returncode == 0
    assert testbed.count_auths() == before + 1
    # The jump authenticates at the login host once more; the node counts its own (in loopback
    # mode the node is the login sshd, which then sees both).
    node_before = testbed.node.count_auths()
    assert ssh_cmd("compute01", "true").returncode == 0
    assert testbed.count_auths() == before + (2 if testbed.has_netns else 3)
    assert testbed.node.count_auths() == node_before + (1 if testbed.has_netns else 2)


def _ssh_without_tty(testbed: Testbed, alias: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # setsid: no controlling terminal, so ssh can only ask through SSH_ASKPASS.
    return subprocess.run(
        ["setsid", "-w", "ssh", "-F", str(testbed.ssh_config), alias, "echo ok"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def test_password_login_asks_once_through_askpass(testbed: Testbed, password_login: PasswordLogin) -> None:
    before = password_login.count_auths()
    result = _ssh_without_tty(testbed, password_login.alias, testbed.askpass_env())
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
    assert password_login.count_auths() == before + 1


def test_password_login_refuses_a_wrong_password(testbed: Testbed, password_login: PasswordLogin) -> None:
    before = password_login.count_auths()
    result = _ssh_without_tty(testbed, password_login.alias, testbed.askpass_env(password="wrong"))
    assert result.returncode == 255
    assert "Permission denied" in result.stderr
    assert password_login.count_auths() == before


def test_node_through_the_password_host(testbed: Testbed, password_login: PasswordLogin) -> None:
    result = _ssh_without_tty(testbed, password_login.node_alias, testbed.askpass_env())
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_node_python_has_debugpy_and_plain_python_has_not(testbed: Testbed) -> None:
    if testbed.node_python is None:
        pytest.skip("debugpy is not importable in the interpreter running the tests")
    assert testbed.node_run_as_user(f"{testbed.node_python} -c 'import debugpy'").returncode == 0
    if testbed.has_netns:
        assert testbed.node_run_as_user(f"{testbed.plain_python} -c 'import debugpy'").returncode == 1


@pytest.mark.needs_netns
def test_node_stops_and_starts_again(testbed: Testbed, ssh_cmd: SshCmd) -> None:
    assert testbed.node_run_as_user("echo kept > ~/survives_restart").returncode == 0
    testbed.node.stop()
    try:
        down = ssh_cmd("compute01", "true")
        assert down.returncode == 255
        assert "Connection refused" in down.stderr
        # The node's namespaces outlive its sshd.
        assert testbed.node_run_as_user("hostname").stdout == "compute01\n"
    finally:
        testbed.node.start()
    assert ssh_cmd("compute01", "hostname; cat ~/survives_restart; rm ~/survives_restart").stdout == (
        "compute01\nkept\n"
    )


@pytest.mark.needs_netns
def test_node_link_can_be_cut(testbed: Testbed, ssh_cmd: SshCmd) -> None:
    testbed.node.set_link(False)
    try:
        assert ssh_cmd("compute01", "true", options=["-o", "ConnectTimeout=2"]).returncode == 255
    finally:
        testbed.node.set_link(True)
    assert wait_until(lambda: ssh_cmd("compute01", "true").returncode == 0, timeout=10)


@dataclass(frozen=True)
class Footprint:
    """What a netns testbed creates on the machine, to prove teardown removes all of it."""

    user: str
    uid: int
    netns: str
    veth: str
    subnet: str
    table: int
    dir: Path
    processes: tuple[ProcessRef, ...]


def footprint_of(bed: Testbed) -> Footprint:
    assert bed.network is not None
    res = bed.registry.resources
    return Footprint(
        bed.user,
        bed.uid,
        bed.network.plan.netns,
        bed.network.plan.host_veth,
        str(bed.network.plan.subnet),
        bed.network.plan.table,
        bed.dir,
        tuple(res.processes),
    )


def leftovers(fp: Footprint) -> list[str]:
    found = []
    if fp.user in {p.pw_name for p in pwd.getpwall()}:
        found.append(f"user {fp.user}")
    if Path(f"/home/{fp.user}").exists():
        found.append(f"home of {fp.user}")
    if fp.netns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split():
        found.append(f"netns {fp.netns}")
    if subprocess.run(["ip", "link", "show", fp.veth], capture_output=True).returncode == 0:
        found.append(f"veth {fp.veth}")
    rules = subprocess.run(["ip", "rule"], capture_output=True, text=True).stdout
    if f"lookup {fp.table}" in rules:
        found.append(f"ip rule for table {fp.table}")
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    if fp.subnet in routes:
        found.append(f"route for {fp.subnet}")
    found += [f"process {r.pid}" for r in fp.processes if r.is_alive()]
    # Zombies do not count: they are gone, only not yet reaped by init.
    found += [f"user process {r.pid}" for r in user_processes(fp.uid) if r.is_alive()]
    if fp.dir.exists():
        found.append(f"dir {fp.dir}")
    return found


@pytest.mark.needs_netns
def test_a_second_testbed_coexists_and_tears_down_completely(testbed: Testbed) -> None:
    with build_testbed() as second:
        assert second.run_id != testbed.run_id
        assert (second.user, second.node_ip, second.login_port) != (testbed.user, testbed.node_ip, testbed.login_port)
        second.password_login()
        fp = footprint_of(second)
        # A live session on the node, as the test user: teardown must end it too.
        session = subprocess.Popen(
            second.ssh_argv("compute01", "sleep 300"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(
            lambda: subprocess.run(["pgrep", "-U", str(second.uid), "sleep"], capture_output=True).returncode == 0,
            timeout=10,
        )
        assert leftovers(fp) != []
    assert session.wait(timeout=10) == 255
    assert leftovers(fp) == []
    assert not (REGISTRY_DIR / f"{second.run_id}.json").exists()
    # The session's testbed is untouched.
    assert subprocess.run(testbed.ssh_argv("compute01", "true"), stdin=subprocess.DEVNULL).returncode == 0


@pytest.mark.needs_netns
def test_a_run_killed_with_sigkill_is_cleaned_up_by_the_next(testbed: Testbed) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import testbed, time; tb = testbed.build_testbed(); print(tb.run_id, flush=True); time.sleep(120)",
        ],
        cwd=Path(__file__).parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    run_id = child.stdout.readline().strip()
    record = REGISTRY_DIR / f"{run_id}.json"
    assert record.exists()
    user = f"tb{run_id}"
    uid = pwd.getpwnam(user).pw_uid
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert pwd.getpwnam(user)  # nothing cleaned up: the crash case

    with registry_lock():
        # A test run beside this one may have swept it first: either way it must be gone now.
        swept = sweep_stale_runs()
    assert run_id in swept or not record.exists()
    assert not record.exists()
    assert user not in {p.pw_name for p in pwd.getpwall()}
    assert not [r for r in user_processes(uid) if r.is_alive()]
    assert f"tbns-{run_id}" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_loopback_testbed_plays_both_hosts(testbed: Testbed) -> None:
    bed = build_testbed(force_loopback=True)
    try:
        assert bed.mode == "loopback" and not bed.has_netns
        for alias in (bed.login_alias, bed.node_alias):
            result = subprocess.run(
                bed.ssh_argv(alias, "id -un"), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30
            )
            assert (result.returncode, result.stdout) == (0, f"{pwd.getpwuid(os.getuid()).pw_name}\n"), result.stderr
        sshd = ProcessRef.of(bed.login.pid or -1)
    finally:
        bed.close()
    assert not sshd.is_alive()
    assert not bed.dir.exists()


def test_tether_home_isolates_state_with_short_paths(tether_home: Path) -> None:
    for variable in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR"):
        path = Path(os.environ[variable])
        assert path.is_dir() and path.parent == tether_home
    # Room for a ControlPath like <runtime>/tether/<40-hex %C> under the 104-byte socket limit.
    assert len(os.environ["XDG_RUNTIME_DIR"]) + len("/tether/") + 40 < 104
