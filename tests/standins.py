"""STAND-IN commands for what cannot run here (a PBS server, a Kubernetes API): small executables
named like the real tools on a private PATH, each calling tests/fixtures/standins/standin.py, which
records the call and answers with captured-format fixtures. Named as stand-ins wherever used."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.remote.ssh import CommandResult

FIXTURES = Path(__file__).parent / "fixtures"
STANDIN = FIXTURES / "standins" / "standin.py"
PBS_TOOLS = ("qsub", "qstat", "qdel")
KUBE_TOOLS = ("kubectl", "oc")


def fixture_body(relative: str) -> str:
    """A fixture without its '#' header: exactly what the real command prints."""
    lines = (FIXTURES / relative).read_text().splitlines(keepends=True)
    header = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    return "".join(lines[header:])


@dataclass
class StandIns:
    """STAND-IN commands on a private PATH, and what they were asked."""

    bin: Path
    state: Path
    replay: dict[str, str] = field(default_factory=dict)
    system_path: str = field(default_factory=lambda: os.environ.get("PATH", ""))  # after the stand-ins

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PATH": f"{self.bin}{os.pathsep}{self.system_path}"}
        env.update({"STANDIN_STATE": str(self.state), "STANDIN_FIXTURES": str(FIXTURES)})
        env.update({f"STANDIN_{key}": value for key, value in self.replay.items()})
        return env

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        path = self.state / "calls.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return [r for r in records if tool is None or r["tool"] == tool]


def install_standins(folder: Path, tools: Iterable[str], instead_of: str) -> StandIns:
    """STAND-IN ``tools`` in ``folder/bin`` (``instead_of`` names what they are not, in each file)."""
    bin_dir, state = folder / "bin", folder / "state"
    bin_dir.mkdir()
    state.mkdir()
    for tool in tools:
        wrapper = bin_dir / tool
        wrapper.write_text(
            f'#!/bin/sh\n# STAND-IN {tool} for tests, not {instead_of}\nexec "{sys.executable}" "{STANDIN}" {tool} "$@"\n'
        )
        wrapper.chmod(0o755)
    return StandIns(bin_dir, state)


class LocalLoginShell:
    """A LoginShell for tests: runs the command string with the local /bin/sh, as sshd would."""

    def __init__(self, standins: StandIns) -> None:
        self.standins = standins
        self.commands: list[str] = []

    async def run(self, command: str, *, input_bytes: bytes | None = None, timeout: float | None = 60) -> CommandResult:
        self.commands.append(command)
        proc = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.PIPE if input_bytes is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.standins.env(),
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(input_bytes), timeout)
        except BaseException:
            if proc.returncode is None:
                os.kill(proc.pid, 9)
                await proc.wait()
            raise
        return CommandResult(proc.returncode or 0, out.decode(), err.decode())
