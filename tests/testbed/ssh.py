"""Running the laptop's ssh client against the testbed."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol


class SshCmd(Protocol):
    """The `ssh_cmd` fixture: `ssh_cmd("compute01", "hostname").stdout`."""

    def __call__(
        self,
        alias: str,
        command: str,
        *,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> subprocess.CompletedProcess[str]: ...


def run_ssh(
    config: Path,
    alias: str,
    command: str,
    *,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    """`ssh -F config [options] alias command`, output captured as text."""
    return subprocess.run(
        ["ssh", "-F", str(config), *options, alias, command],
        # ssh would otherwise read pytest's stdin.
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
    )
