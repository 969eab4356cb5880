"""A real single-node Slurm cluster for the testbed: munged, slurmctld here, slurmd on the node.

Everything belongs to one run (TESTBED.md section 4, made per run): our own munged with its own
key and socket, a slurm.conf with a unique ClusterName and free ports, state, spool, pid and log
files under the testbed directory. Nothing system-wide is touched (no /etc/slurm, /run/munge or
/var/lib/slurm), so two runs side by side never meet.

- munged runs as the munge user (``Popen(user=...)``, in place, so we own its pid).
- slurmctld runs in the root namespaces and listens on the login side's veth address too; it
  drops to SlurmUser=slurm by itself.
- slurmd runs inside the node's net/UTS/mount namespaces through ``testbed.node.nsenter_argv()``
  (not `ip netns exec`, which remounts /sys and breaks slurmd). The anchor already carries the
  hostname compute01.
- Policy rules send the Slurm ports to the node's routing table (TESTBED.md section 1): slurmd's
  port, slurmctld's replies, and srun's port range. The test user's own traffic is already routed.
- The test user's ssh sessions find the config through SLURM_CONF, exported at the top of its
  ``~/.bashrc`` on the login host and in the node's private home (bash sources it for `ssh host
  cmd`). Nothing else about the user or the sshds changes, so other tests see no difference.

``build_slurm(testbed)`` returns a running cluster (the node idle); ``close()`` cancels every job
and stops the daemons. The daemons are also recorded in the testbed's registry, so a run killed
with SIGKILL is cleaned up by the next one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .commands import CommandError, run
from .hosts import Testbed
from .procs import ProcessRef, reap, terminate_tree
from .wait import free_tcp_port, wait_until

PROGRAMS = {
    "munged": "/usr/sbin/munged",
    "slurmctld": "/usr/sbin/slurmctld",
    "slurmd": "/usr/sbin/slurmd",
    "sbatch": "/usr/bin/sbatch",
    "squeue": "/usr/bin/squeue",
    "srun": "/usr/bin/srun",
}
NODE_CPUS = 2
NODE_MEMORY_MB = 1024
PARTITION = "debug"
SRUN_PORTS = 100  # how many ports srun may listen on (SrunPortRange)
BASHRC_MARK = "# tether testbed: Slurm"


class SlurmStartError(RuntimeError):
    """A Slurm daemon did not come up; the message carries the end of its log."""


def missing_programs() -> list[str]:
    """Slurm and munge programs this machine lacks (CI installs slurm-wlm and munge)."""
    missing = [path for path in PROGRAMS.values() if not os.access(path, os.X_OK)]
    for account in ("slurm", "munge"):
        try:
            pwd.getpwnam(account)
        except KeyError:
            missing.append(f"the '{account}' account")
    return missing


@dataclass
class Daemon:
    name: str
    popen: subprocess.Popen[bytes]
    ref: ProcessRef
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None and self.ref.is_alive()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        terminate_tree(self.ref, grace=3.0)
        reap(self.popen)


@dataclass
class SlurmCluster:
    """The running cluster. Commands as root: ``run(argv)``; as the test user: ``user_run(cmd)``."""

    testbed: Testbed
    dir: Path
    conf: Path
    cluster_name: str
    ctld_port: int
    slurmd_port: int
    srun_ports: tuple[int, int]
    munge_socket: Path
    node_name: str = "compute01"
    cpus: int = NODE_CPUS
    partition: str = PARTITION
    start_seconds: float = 0.0
    daemons: list[Daemon] = field(default_factory=list)
    _closed: bool = field(default=False, repr=False)

    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
            "SLURM_CONF": str(self.conf),
            "SLURM_TIME_FORMAT": "standard",
        }

    def run(self, argv: Sequence[str], check: bool = False, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """A Slurm command as root (the administrator's view), with this cluster's config."""
        return run(argv, check=check, env=self.env(), timeout=timeout)

    def user_run(self, cmd: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """``cmd`` (sh) as the test user on the login host, with this cluster's config."""
        return self.testbed.login_run_as_user(f"export SLURM_CONF={self.conf}; {cmd}", timeout=timeout)

    def jobs(self) -> list[str]:
        """Ids of every job Slurm still holds pending, running or ending."""
        return self.run(["squeue", "-h", "-o", "%i", "-t", "PD,R,CG,S,CF,RS,RQ,SO"], check=True).stdout.split()

    def node_state(self) -> str:
        return self.run(["sinfo", "-h", "-n", self.node_name, "-o", "%T"]).stdout.strip()

    def cancel_all(self, timeout: float = 15.0) -> None:
        """scancel every job and wait until none is left (not even completing)."""
        if not self.jobs():
            return
        self.run(["scancel", "--full", *self.jobs()])
        wait_until(lambda: not self.jobs(), timeout=timeout, interval=0.1, what="every Slurm job to end")

    def munge_ready(self) -> bool:
        self.check_alive()
        return self.munge_socket.exists()

    def check_alive(self) -> None:
        for daemon in self.daemons:
            if not daemon.alive():
                raise SlurmStartError(f"{daemon.name} exited:\n{daemon.log_tail()}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if any(d.name == "slurmctld" and d.alive() for d in self.daemons):
                self.cancel_all()
        except (TimeoutError, OSError, subprocess.SubprocessError, CommandError):
            pass  # the daemons stop below either way; the testbed kills the user's processes
        # slurmd before slurmctld (so no node failure is handled), munged last.
        for daemon in reversed(self.daemons):
            daemon.stop()
        _unexport(Path(self.testbed.home) / ".bashrc")
        if self.testbed.node.home_backing_dir is not None:
            _unexport(self.testbed.node.home_backing_dir / ".bashrc")
        shutil.rmtree(self.dir, ignore_errors=True)


def build_slurm(testbed: Testbed, timeout: float = 30.0) -> SlurmCluster:
    """Start munged, slurmctld and slurmd for ``testbed`` (netns mode) and wait until the node is idle."""
    if not testbed.has_netns or testbed.network is None:
        raise SlurmStartError(f"Slurm needs the network-namespace testbed: {testbed.unavailable_reason}")
    started = time.monotonic()
    plan = testbed.network.plan
    directory = testbed.dir / "slurm"
    _mkdir(directory, 0o755)
    srun_low = free_tcp_port()
    srun_low = min(srun_low, 65535 - SRUN_PORTS)
    cluster = SlurmCluster(
        testbed=testbed,
        dir=directory,
        conf=directory / "slurm.conf",
        cluster_name=f"tb{testbed.run_id}",
        ctld_port=free_tcp_port(),
        slurmd_port=6818,  # the node has a network namespace of its own: the usual port is free there
        srun_ports=(srun_low, srun_low + SRUN_PORTS - 1),
        munge_socket=directory / "munge" / "munge.socket",
    )
    try:
        _route_slurm_ports(testbed, cluster)
        _write_config(cluster, plan.host_ip, plan.node_ip)
        cluster.daemons.append(_start_munged(testbed, cluster))
        wait_until(cluster.munge_ready, timeout=10, what="munged's socket")
        cluster.daemons.append(
            _start(
                testbed,
                "slurmctld",
                [PROGRAMS["slurmctld"], "-D", "-f", str(cluster.conf)],
                cluster.dir / "ctld" / "slurmctld.log",
            )
        )
        cluster.daemons.append(
            _start(
                testbed,
                "slurmd",
                [
                    *testbed.node.nsenter_argv(),
                    PROGRAMS["slurmd"],
                    "-D",
                    "-f",
                    str(cluster.conf),
                    "-N",
                    cluster.node_name,
                ],
                cluster.dir / "node" / "slurmd.log",
            )
        )

        def idle() -> bool:
            cluster.check_alive()
            return cluster.node_state() == "idle"

        try:
            wait_until(idle, timeout=timeout, interval=0.05, what="the Slurm node to be idle")
        except TimeoutError as exc:
            logs = "\n".join(f"--- {d.name}\n{d.log_tail()}" for d in cluster.daemons)
            raise SlurmStartError(f"{exc}; node state {cluster.node_state()!r}\n{logs}") from exc
        _export_conf(testbed, cluster.conf)
    except BaseException:
        cluster.close()
        raise
    cluster.start_seconds = time.monotonic() - started
    return cluster


# -- pieces ------------------------------------------------------------------------------------


def _mkdir(path: Path, mode: int, owner: str | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _route_slurm_ports(testbed: Testbed, cluster: SlurmCluster) -> None:
    """Send Slurm's traffic between the root namespace and the node to the node's table."""
    assert testbed.network is not None
    subnet = str(testbed.network.plan.subnet)
    low, high = cluster.srun_ports
    for selector in (
        ["dport", str(cluster.slurmd_port)],  # slurmctld and srun -> slurmd
        ["sport", str(cluster.ctld_port)],  # slurmctld's replies to slurmd
        ["sport", f"{low}-{high}"],  # srun's replies (root's srun; the test user's is routed already)
    ):
        testbed.network.route_for(["to", subnet, "ipproto", "tcp", *selector])


def _write_config(cluster: SlurmCluster, host_ip: str, node_ip: str) -> None:
    d = cluster.dir
    _mkdir(d / "munge", 0o755, "munge")
    _mkdir(d / "ctld", 0o755, "slurm")
    _mkdir(d / "ctld" / "state", 0o755, "slurm")
    _mkdir(d / "node", 0o755)
    _mkdir(d / "node" / "spool", 0o755)
    (d / "plugstack.conf").write_text("")  # no site SPANK plugins from /etc/slurm
    controller = socket.gethostname().split(".")[0]  # slurmctld checks it runs on this host
    lines = [
        f"# Tether testbed {cluster.cluster_name}: generated per run, removed at teardown",
        f"ClusterName={cluster.cluster_name}",
        f"SlurmctldHost={controller}({host_ip})",  # the node reaches the controller at this address
        f"SlurmctldPort={cluster.ctld_port}",
        f"SlurmdPort={cluster.slurmd_port}",
        f"SrunPortRange={cluster.srun_ports[0]}-{cluster.srun_ports[1]}",
        "SlurmUser=slurm",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={cluster.munge_socket}",
        "MpiDefault=none",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SwitchType=switch/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        f"PlugStackConfig={d / 'plugstack.conf'}",
        "SchedulerType=sched/backfill",
        # Backfill every second, so a pending job's expected start is known quickly.
        "SchedulerParameters=bf_interval=1",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "ReturnToService=2",
        # Take the node as configured whatever this machine has, so tests know its size.
        "SlurmdParameters=config_overrides",
        "KillWait=5",
        f"StateSaveLocation={d / 'ctld' / 'state'}",
        f"SlurmctldPidFile={d / 'ctld' / 'slurmctld.pid'}",
        f"SlurmctldLogFile={d / 'ctld' / 'slurmctld.log'}",
        f"SlurmdSpoolDir={d / 'node' / 'spool'}",
        f"SlurmdPidFile={d / 'node' / 'slurmd.pid'}",
        f"SlurmdLogFile={d / 'node' / 'slurmd.log'}",
        f"NodeName={cluster.node_name} NodeAddr={node_ip} CPUs={cluster.cpus} RealMemory={NODE_MEMORY_MB} State=UNKNOWN",
        f"PartitionName={cluster.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ]
    cluster.conf.write_text("\n".join(lines) + "\n")
    os.chmod(cluster.conf, 0o644)


def _start_munged(testbed: Testbed, cluster: SlurmCluster) -> Daemon:
    """Our own munged: own key and socket, running as the munge user in the foreground."""
    munge_dir = cluster.munge_socket.parent
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    entry = pwd.getpwnam("munge")
    os.chown(key, entry.pw_uid, entry.pw_gid)
    os.chmod(key, 0o400)
    log = munge_dir / "munged.log"
    argv = [
        PROGRAMS["munged"],
        "--foreground",
        f"--socket={cluster.munge_socket}",
        f"--key-file={key}",
        f"--pid-file={munge_dir / 'munged.pid'}",
        f"--log-file={log}",
        f"--seed-file={munge_dir / 'munged.seed'}",
        "--num-threads=4",
    ]
    return _start(testbed, "munged", argv, log, user="munge")


def _start(testbed: Testbed, name: str, argv: list[str], log: Path, user: str | None = None) -> Daemon:
    popen = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"},
        # Own session: a Ctrl-C meant for pytest must not stop the daemon before teardown runs.
        start_new_session=True,
        user=user,
        group=user,
        extra_groups=[] if user else None,
    )
    ref = ProcessRef.of(popen.pid)
    # In the testbed's record too: a run killed with SIGKILL is cleaned up by the next one.
    testbed.registry.resources.processes.append(ref)
    testbed.registry.save()
    return Daemon(name, popen, ref, log)


def _export_conf(testbed: Testbed, conf: Path) -> None:
    """SLURM_CONF for the test user's ssh sessions on the login host and on the node.

    At the top of ~/.bashrc: Debian's bashrc returns early for non-interactive shells, and bash
    sources it for `ssh host command` before running the command.

    Also the node's TMUX_TMPDIR (its sshd sets it) on the login host: on a real site the login
    host and the nodes share one environment, and jobs inherit the login shell's. Without it, the
    tmux server a holder job starts would be on another socket than the one ssh sessions look at.
    """
    homes = [Path(testbed.home)]
    if testbed.node.home_backing_dir is not None:
        homes.append(testbed.node.home_backing_dir)  # the node's private home
    tmux_tmpdir = f"export TMUX_TMPDIR={testbed.node_tmux_tmpdir}  {BASHRC_MARK}\n"
    for home in homes:
        bashrc = home / ".bashrc"
        old = bashrc.read_text() if bashrc.exists() else ""
        bashrc.write_text(f"export SLURM_CONF={conf}  {BASHRC_MARK}\n{tmux_tmpdir}{old}")
        os.chown(bashrc, testbed.uid, testbed.gid)


def _unexport(bashrc: Path) -> None:
    try:
        lines = bashrc.read_text().splitlines(keepends=True)
    except OSError:
        return
    kept = [line for line in lines if BASHRC_MARK not in line]
    if kept != lines:
        bashrc.write_text("".join(kept))
