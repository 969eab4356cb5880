"""A real OpenSSH server in the foreground (-D), so we own its pid, with its own config and log."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .commands import run
from .procs import ProcessRef, reap, terminate_tree
from .wait import wait_until

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = "/run/sshd"  # compiled into Debian's sshd
# Only successful authentications: "Accepted publickey for u from ...", "Accepted password for".
# VERBOSE also logs lines such as "Accepted key ED25519 ... found at", which must not count.
_ACCEPTED = re.compile(r"\bAccepted \S+ for \S+ from ")


@dataclass(frozen=True)
class SshdSettings:
    port: int
    listen: str
    host_key: Path
    pid_file: Path
    authorized_keys: Path | None  # None: public keys are refused (the password-only login host)
    password_auth: bool = False
    set_env: tuple[tuple[str, str], ...] = ()
    permit_user_environment: bool = False
    permit_root_login: bool = False


def render_sshd_config(s: SshdSettings) -> str:
    yes_no = {True: "yes", False: "no"}
    lines = [
        f"Port {s.port}",
        f"ListenAddress {s.listen}",
        f"HostKey {s.host_key}",
        f"PidFile {s.pid_file}",
        f"PubkeyAuthentication {yes_no[s.authorized_keys is not None]}",
        f"AuthorizedKeysFile {s.authorized_keys or 'none'}",
        f"PasswordAuthentication {yes_no[s.password_auth]}",
        "KbdInteractiveAuthentication no",
        # Test files live in root-owned temp dirs that StrictModes would reject.
        "StrictModes no",
        # Without PAM, sshd checks passwords against /etc/shadow, which chpasswd wrote.
        "UsePAM no",
        "AllowTcpForwarding yes",
        # VERBOSE logs one "Accepted ..." line per authentication: tests count them.
        "LogLevel VERBOSE",
        "MaxSessions 50",
        "MaxStartups 50",
        f"PermitRootLogin {yes_no[s.permit_root_login]}",
        f"PermitUserEnvironment {yes_no[s.permit_user_environment]}",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
    ]
    if s.set_env:
        lines.append("SetEnv " + " ".join(f"{k}={v}" for k, v in s.set_env))
    return "\n".join(lines) + "\n"


def make_key(path: Path) -> str:
    """Generate an ed25519 key pair without passphrase; returns the public key line."""
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)])
    return path.with_suffix(".pub").read_text().strip()


class SshdStartError(RuntimeError):
    pass


def ensure_privsep_dir() -> None:
    """sshd started as root refuses to run without its privilege separation folder. Debian's
    openssh-server leaves making it to the init system, which a container or CI machine may not
    run; it lives on /run, which is empty after every boot."""
    if os.geteuid() == 0:
        Path(PRIVSEP_DIR).mkdir(mode=0o755, exist_ok=True)


class Sshd:
    """One sshd daemon. `launch_prefix` wraps the command, e.g. with nsenter into the node."""

    def __init__(
        self,
        name: str,
        directory: Path,
        settings: SshdSettings,
        on_started: Callable[[ProcessRef], None],
        launch_prefix: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.directory = directory
        self.settings = settings
        self.config_path = directory / "sshd_config"
        self.log_path = directory / "sshd.log"
        self._on_started = on_started
        self._launch_prefix = list(launch_prefix)
        self._popen: subprocess.Popen[bytes] | None = None
        self._ref: ProcessRef | None = None

    @property
    def port(self) -> int:
        return self.settings.port

    @property
    def pid(self) -> int | None:
        return self._ref.pid if self._ref and self._ref.is_alive() else None

    @property
    def is_running(self) -> bool:
        return self._ref is not None and self._ref.is_alive()

    def set_port(self, port: int) -> None:
        self.settings = replace(self.settings, port=port)

    def start(self, timeout: float = 5.0) -> None:
        if self.is_running:
            return
        ensure_privsep_dir()
        self.config_path.write_text(render_sshd_config(self.settings))
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [*self._launch_prefix, SSHD, "-D", "-f", str(self.config_path), "-E", str(self.log_path)]
        self._popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            # Own session: a Ctrl-C meant for pytest must not kill sshd before teardown runs.
            start_new_session=True,
        )
        self._ref = ProcessRef.of(self._popen.pid)
        self._on_started(self._ref)
        try:
            wait_until(lambda: self._listening_since(offset), timeout=timeout, what=f"{self.name} sshd")
        except (TimeoutError, SshdStartError) as exc:
            self.stop()
            raise SshdStartError(f"{self.name} sshd did not start: {self.log_tail(offset)}") from exc

    def _listening_since(self, offset: int) -> bool:
        if self._popen is not None and self._popen.poll() is not None:
            raise SshdStartError(f"exited with status {self._popen.returncode}")
        return "Server listening on" in self._read_log(offset)

    def _read_log(self, offset: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, offset: int = 0, lines: int = 20) -> str:
        return "\n".join(self._read_log(offset).splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the daemon and every session it forked, like a host going down."""
        if self._ref is not None:
            terminate_tree(self._ref)
        reap(self._popen)
        self._popen = None

    def count_auths(self) -> int:
        """Successful authentications since this testbed started (one per new ssh connection)."""
        return len(_ACCEPTED.findall(self._read_log()))
