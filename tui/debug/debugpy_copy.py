"""Tether's own debugpy, copied to the node (it works offline) for a run's python that has none."""

from __future__ import annotations

import asyncio
import shlex

from tui.debug.runs import debugpy_bundle
from tui.errors import TetherError
from tui.node.protocol_layout import DEBUGPY_HOME
from tui.remote.ssh import ControlMaster


async def copy_debugpy(master: ControlMaster, interpreter: str) -> str:
    """Unpack the bundle into DEBUGPY_HOME on ``master``'s host, replacing it whole; returns where."""
    folder = DEBUGPY_HOME.replace("~", "$HOME", 1)
    script = (
        f'd="{folder}"; mkdir -p "$d.new.$$" && tar xzf - -C "$d.new.$$" && rm -rf "$d" '
        f'&& mv "$d.new.$$" "$d" && echo "$d"'
    )
    result = await master.run(script, input_bytes=await asyncio.to_thread(debugpy_bundle), timeout=120)
    if not result.ok:
        raise TetherError(
            f"could not copy debugpy to {master.name}: {result.stderr.strip()}",
            fix=f"install debugpy for {shlex.quote(interpreter)} there: "
            "`tether doctor` gives the command that works for that python",
        )
    return result.stdout.strip()
