"""The laptop's `ssh -F` file: host aliases for the login host(s) and the node."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class HostEntry:
    alias: str
    hostname: str
    user: str
    port: int | None = None
    proxy_jump: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ClientFiles:
    identity_file: Path
    known_hosts: Path


@dataclass
class SshClientConfig:
    path: Path
    files: ClientFiles
    hosts: list[HostEntry] = field(default_factory=list)

    def render(self) -> str:
        out = ["# Tether testbed: generated per run and removed at teardown."]
        for host in self.hosts:
            out.append(f"Host {host.alias}")
            out.append(f"    HostName {host.hostname}")
            if host.port is not None:
                out.append(f"    Port {host.port}")
            out.append(f"    User {host.user}")
            if host.proxy_jump:
                out.append(f"    ProxyJump {host.proxy_jump}")
            out.extend(f"    {key} {value}" for key, value in host.extra)
        # ssh keeps the FIRST value it reads for each option, so the defaults must come last,
        # or `BatchMode yes` here would beat a host's `BatchMode no`.
        out += [
            "Host *",
            f"    IdentityFile {self.files.identity_file}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {self.files.known_hosts}",
            "    StrictHostKeyChecking accept-new",
            "    BatchMode yes",
            # A broken testbed should fail a test quickly rather than hang it.
            "    ConnectTimeout 10",
        ]
        return "\n".join(out) + "\n"

    def write(self) -> None:
        # Atomic: a test may be reading the file while the lazy password host is added.
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(self.render())
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)


def known_hosts_line(hostname: str, port: int, public_key: str) -> str:
    """Pre-trusting host keys keeps ssh's stderr free of "Permanently added" warnings."""
    name = hostname if port == 22 else f"[{hostname}]:{port}"
    key_type, key_data = public_key.split()[:2]
    return f"{name} {key_type} {key_data}\n"
