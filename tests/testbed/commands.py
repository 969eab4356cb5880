"""Running system commands with errors that say what failed and why."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence


class CommandError(RuntimeError):
    """A setup command failed; the message carries its argv, exit status and stderr."""


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        timeout=timeout,
        # Setup commands run as root or as the test user: "/" is always readable for both.
        cwd="/",
    )
    if check and proc.returncode != 0:
        raise CommandError(f"{' '.join(argv)!s} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc


def run_quietly(argv: Sequence[str]) -> bool:
    """Teardown steps: a resource that is already gone is not an error."""
    try:
        return run(argv, check=False, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
