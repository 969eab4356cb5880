"""Building a Testbed: the full one (root: user, netns, two or three sshds) or the loopback one."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .commands import run
from .hosts import (
    ASKPASS_PASSWORD_VAR,
    ComputeNode,
    PasswordLogin,
    Testbed,
    TestbedUnavailable,
    nsenter_argv,
)
from .netns import NetworkPlan, NodeNetwork, plan_network
from .nodepython import debugpy_source, make_node_venv
from .procs import ProcessRef
from .resources import Registry, Resources, registry_lock, release, sweep_stale_runs
from .sshconfig import ClientFiles, HostEntry, SshClientConfig, known_hosts_line
from .sshd import Sshd, SshdSettings, SshdStartError, make_key
from .users import (
    TestUser,
    create_user,
    current_user,
    free_uid,
    set_password,
    user_exists,
)
from .wait import free_tcp_port, wait_until

NODE_HOSTNAME = "compute01"
NODE_SSH_PORT = 22  # the node has a network namespace of its own, so the real port is free
PORT_ATTEMPTS = 3  # a port found free can be taken before sshd binds it


class NetnsUnavailable(RuntimeError):
    pass


@dataclass
class RunContext:
    """What every builder step shares: the run's identity, its directory and its resource record."""

    run_id: str
    rng: random.Random
    dir: Path
    resources: Resources
    registry: Registry

    def record_process(self, ref: ProcessRef) -> None:
        self.resources.processes.append(ref)
        self.registry.save()

    def record_rule(self, args: list[str]) -> None:
        self.resources.rules.append(args)
        self.registry.save()

    def record_route(self, args: list[str]) -> None:
        self.resources.routes.append(args)
        self.registry.save()


def build_testbed(force_loopback: bool | None = None) -> Testbed:
    """Full testbed when root and network namespaces work, else the loopback one.

    TETHER_TESTBED=loopback forces the loopback testbed (to exercise the fallback as root).
    """
    if force_loopback is None:
        force_loopback = os.environ.get("TETHER_TESTBED") == "loopback"
    if os.geteuid() != 0:
        return build_loopback("not root: the compute node needs a network namespace and a test user")
    if force_loopback:
        return build_loopback("TETHER_TESTBED=loopback")
    try:
        return build_netns()
    except NetnsUnavailable as exc:
        return build_loopback(f"ip netns add failed: {exc}")


def _new_run() -> RunContext:
    run_id = secrets.token_hex(3)
    resources = Resources(run_id=run_id, owner=ProcessRef.of(os.getpid()))
    # Short path on purpose: unix sockets (ssh ControlPath, tmux) must stay under ~104 bytes.
    directory = Path(tempfile.mkdtemp(prefix="tb-"))
    resources.testbed_dir = str(directory)
    registry = Registry(resources, enabled=os.geteuid() == 0)
    registry.save()
    # The test user's sshd sessions read some files here (authorized keys, the venv, nodetmp).
    os.chmod(directory, 0o755)
    return RunContext(run_id, random.SystemRandom(), directory, resources, registry)


def _mkdir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    return path


@dataclass(frozen=True)
class Keys:
    client: ClientFiles
    authorized_keys: Path
    host_keys: dict[str, tuple[Path, str]]  # host name -> (private key path, public key line)


def _make_keys(directory: Path, hosts: list[str]) -> Keys:
    client_dir = _mkdir(directory / "client", 0o700)
    identity = client_dir / "id_ed25519"
    authorized = directory / "authorized_keys"
    authorized.write_text(make_key(identity) + "\n")
    # sshd reads the authorized keys as the user, so a root-only file would refuse every key.
    os.chmod(authorized, 0o644)
    known_hosts = client_dir / "known_hosts"
    known_hosts.touch()
    host_keys = {}
    for host in hosts:
        key = _mkdir(directory / host) / "host_ed25519"
        host_keys[host] = (key, make_key(key))
    return Keys(ClientFiles(identity, known_hosts), authorized, host_keys)


def _write_askpass(directory: Path) -> None:
    # The password is never written to disk: the helper prints it from its environment.
    script = directory / "askpass.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "${ASKPASS_PASSWORD_VAR}"\n')
    os.chmod(script, 0o755)


def _start_on_free_port(sshd: Sshd, on_port_change: Callable[[], None] = lambda: None) -> None:
    for attempt in range(PORT_ATTEMPTS):
        try:
            sshd.start()
            return
        except SshdStartError as exc:
            if "Address already in use" not in str(exc) or attempt == PORT_ATTEMPTS - 1:
                raise
            sshd.set_port(free_tcp_port())
            on_port_change()


def build_netns() -> Testbed:
    started = time.monotonic()
    ctx = _new_run()
    try:
        return _build_netns(ctx, started)
    except BaseException:
        release(ctx.resources)
        ctx.registry.forget()
        raise


def _build_netns(ctx: RunContext, started: float) -> Testbed:
    with ThreadPoolExecutor(max_workers=2) as pool:
        # Slow, independent file work runs while the user and the network are made.
        venv = pool.submit(make_node_venv, ctx.dir / "nodevenv")
        keys_future = pool.submit(_make_keys, ctx.dir, ["login", "pwlogin", "node"])
        user, network = _create_user_and_network(ctx)
        password = secrets.token_urlsafe(18)
        set_password(user.name, password)
        keys = keys_future.result()
        node_python = venv.result()
    _write_askpass(ctx.dir)
    tmux_tmpdir = _mkdir(ctx.dir / "nodetmp", 0o1777)
    plan = network.plan

    login = Sshd("login", ctx.dir / "login", _settings(keys, "login", free_tcp_port(), "127.0.0.1"), ctx.record_process)
    pw_sshd = Sshd(
        "pwlogin",
        ctx.dir / "pwlogin",
        _settings(keys, "pwlogin", free_tcp_port(), "127.0.0.1", password_only=True),
        ctx.record_process,
    )
    config = SshClientConfig(ctx.dir / "ssh_config", keys.client)

    def write_client_config() -> None:
        config.hosts = _netns_hosts(user, plan, login.port, pw_sshd.port)
        config.write()
        with open(keys.client.known_hosts, "w") as known:
            for host, port in (("login", login.port), ("pwlogin", pw_sshd.port)):
                known.write(known_hosts_line("127.0.0.1", port, keys.host_keys[host][1]))
            known.write(known_hosts_line(plan.node_ip, NODE_SSH_PORT, keys.host_keys["node"][1]))

    write_client_config()
    _start_on_free_port(login, write_client_config)
    node = _start_node(ctx, network, user, keys, tmux_tmpdir)

    def start_password_login() -> PasswordLogin:
        _start_on_free_port(pw_sshd, write_client_config)
        return PasswordLogin(alias="pwlogin", port=pw_sshd.port, node_alias="compute01-pw", sshd=pw_sshd)

    return Testbed(
        run_id=ctx.run_id,
        mode="netns",
        unavailable_reason=None,
        dir=ctx.dir,
        test_user=user,
        own_user=False,
        password=password,
        ssh_config=config.path,
        identity_file=keys.client.identity_file,
        known_hosts=keys.client.known_hosts,
        login=login,
        node=node,
        node_ip=plan.node_ip,
        node_port=NODE_SSH_PORT,
        node_tmux_tmpdir=tmux_tmpdir,
        node_python=node_python,
        registry=ctx.registry,
        start_password_login=start_password_login,
        setup_seconds=time.monotonic() - started,
    )


def _create_user_and_network(ctx: RunContext) -> tuple[TestUser, NodeNetwork]:
    res = ctx.resources
    # Under the lock: two runs must not pick the same uid, subnet, table or rule pref.
    with registry_lock():
        sweep_stale_runs()
        name = f"tb{ctx.run_id}"
        if user_exists(name):
            raise RuntimeError(f"user {name} already exists")
        plan = plan_network(ctx.run_id, ctx.rng)
        network = NodeNetwork(plan, ctx.rng, ctx.record_rule, ctx.record_route)
        res.netns, res.veth = plan.netns, plan.host_veth
        ctx.registry.save()
        failure = network.add_namespace()
        if failure is not None:
            res.netns = res.veth = None
            raise NetnsUnavailable(failure)
        network.wire()
        res.user, res.uid = name, free_uid(ctx.rng)
        ctx.registry.save()
        user = create_user(name, res.uid)
        # Only the test user's processes (the login sshd's session child) may reach the node.
        network.route_for_uid(user.uid)
    return user, network


def _settings(
    keys: Keys,
    host: str,
    port: int,
    listen: str,
    password_only: bool = False,
    set_env: tuple[tuple[str, str], ...] = (),
    user_env: bool = False,
    root_login: bool = False,
) -> SshdSettings:
    host_dir = keys.host_keys[host][0].parent
    return SshdSettings(
        port=port,
        listen=listen,
        host_key=keys.host_keys[host][0],
        pid_file=host_dir / "sshd.pid",
        authorized_keys=None if password_only else keys.authorized_keys,
        password_auth=password_only,
        set_env=set_env,
        permit_user_environment=user_env,
        permit_root_login=root_login,
    )


def _netns_hosts(user: TestUser, plan: NetworkPlan, login_port: int, pw_port: int) -> list[HostEntry]:
    ask = (("BatchMode", "no"), ("PubkeyAuthentication", "no"), ("NumberOfPasswordPrompts", "1"))
    return [
        HostEntry("login", "127.0.0.1", user.name, port=login_port),
        HostEntry("compute01", plan.node_ip, user.name, proxy_jump="login"),
        HostEntry("pwlogin", "127.0.0.1", user.name, port=pw_port, extra=ask),
        HostEntry("compute01-pw", plan.node_ip, user.name, proxy_jump="pwlogin"),
    ]


def _start_node(ctx: RunContext, network: NodeNetwork, user: TestUser, keys: Keys, tmux_tmpdir: Path) -> ComputeNode:
    backing = _mkdir(ctx.dir / "nodehome", 0o755)
    # The node's home starts like a fresh account's, but is a different directory from the login's.
    shutil.copytree("/etc/skel", backing, dirs_exist_ok=True)
    run(["chown", "-R", f"{user.uid}:{user.gid}", str(backing)])
    anchor = _start_anchor(ctx, network.plan)
    run(
        [
            "nsenter",
            "--target",
            str(anchor.pid),
            "--uts",
            "--mount",
            "sh",
            "-c",
            'hostname "$1" && mount --bind "$2" "$3"',
            "sh",
            NODE_HOSTNAME,
            str(backing),
            user.home,
        ]
    )
    settings = _settings(
        keys, "node", NODE_SSH_PORT, network.plan.node_ip, set_env=(("TMUX_TMPDIR", str(tmux_tmpdir)),), user_env=True
    )
    sshd = Sshd("node", ctx.dir / "node", settings, ctx.record_process, nsenter_argv(anchor))
    node = ComputeNode(sshd=sshd, anchor=anchor, network=network, home_backing_dir=backing)
    node.start()
    return node


def _start_anchor(ctx: RunContext, plan: NetworkPlan) -> ProcessRef:
    """A process that holds the node's namespaces (net from the netns; own UTS and mount).

    nsenter --net rather than `ip netns exec`, which remounts /sys and breaks slurmd later.
    """
    popen = subprocess.Popen(
        [
            "nsenter",
            f"--net=/run/netns/{plan.netns}",
            "unshare",
            "--uts",
            "--mount",
            "--propagation",
            "private",
            "sleep",
            "infinity",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd="/",
        start_new_session=True,
    )
    ref = ProcessRef.of(popen.pid)
    ctx.record_process(ref)

    def unshared() -> bool:
        if popen.poll() is not None:
            error = popen.stderr.read().decode(errors="replace") if popen.stderr else ""
            raise RuntimeError(f"node namespace holder exited {popen.returncode}: {error.strip()}")
        # nsenter and unshare exec in place: once the pid runs `sleep`, the namespaces exist.
        try:
            return os.path.basename(os.readlink(f"/proc/{popen.pid}/exe")) == "sleep"
        except OSError:
            return False

    wait_until(unshared, timeout=5, what="node namespaces")
    if popen.stderr is not None:
        popen.stderr.close()
    return ref


def build_loopback(reason: str) -> Testbed:
    """One sshd on loopback, as the current user, plays both the login host and the node."""
    started = time.monotonic()
    ctx = _new_run()
    try:
        return _build_loopback(ctx, reason, started)
    except BaseException:
        release(ctx.resources)
        ctx.registry.forget()
        raise


def _build_loopback(ctx: RunContext, reason: str, started: float) -> Testbed:
    user = current_user()
    keys = _make_keys(ctx.dir, ["login"])
    tmux_tmpdir = _mkdir(ctx.dir / "nodetmp", 0o1777)
    _write_askpass(ctx.dir)
    settings = _settings(
        keys,
        "login",
        free_tcp_port(),
        "127.0.0.1",
        set_env=(("TMUX_TMPDIR", str(tmux_tmpdir)),),
        user_env=True,
        root_login=user.uid == 0,
    )
    login = Sshd("login", ctx.dir / "login", settings, ctx.record_process)
    config = SshClientConfig(ctx.dir / "ssh_config", keys.client)

    def write_client_config() -> None:
        config.hosts = [
            HostEntry("login", "127.0.0.1", user.name, port=login.port),
            # Still through the jump, so code paths match the real testbed.
            HostEntry("compute01", "127.0.0.1", user.name, port=login.port, proxy_jump="login"),
        ]
        config.write()
        keys.client.known_hosts.write_text(known_hosts_line("127.0.0.1", login.port, keys.host_keys["login"][1]))

    write_client_config()
    _start_on_free_port(login, write_client_config)

    def no_password_login() -> PasswordLogin:
        raise TestbedUnavailable(f"password login needs the full testbed ({reason})")

    return Testbed(
        run_id=ctx.run_id,
        mode="loopback",
        unavailable_reason=reason,
        dir=ctx.dir,
        test_user=user,
        own_user=True,
        password=None,
        ssh_config=config.path,
        identity_file=keys.client.identity_file,
        known_hosts=keys.client.known_hosts,
        login=login,
        node=ComputeNode(sshd=login, anchor=None, network=None, home_backing_dir=None),
        node_ip="127.0.0.1",
        node_port=login.port,
        node_tmux_tmpdir=tmux_tmpdir,
        node_python=Path(sys.executable) if debugpy_source() is not None else None,
        registry=ctx.registry,
        start_password_login=no_password_login,
        setup_seconds=time.monotonic() - started,
    )
