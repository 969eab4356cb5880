"""What the debug loop was asked to run: its options (the command line's), the launch they make, and
the environment each start of the run gets.

Stdlib only (shipped to the node).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tui.node.loopcmd import Launch, build_launch
from tui.node.pyhook import HOOK

RUN_PYTHONPATH = "TETHER_RUN_PYTHONPATH"  # the user's PYTHONPATH, kept aside while the loop runs with the agent's
MODES = ("attach", "wait", "off")


@dataclass(frozen=True)
class Options:
    state: Path
    port: int
    command: tuple[str, ...]
    mode: str = "attach"
    wait_timeout: float = 0.0
    grace: float = 3.0
    python: str = sys.executable
    prefix: tuple[str, ...] = ()  # a container prefix put before the launch argv (apptainer exec ...)
    debugpy_dir: Path | None = None  # a folder holding Tether's copy of debugpy, used when the run has none
    provide_debugpy: str = "auto"  # [debug] provide_debugpy: "never" stops at once when debugpy is missing
    standby: bool = True  # [debug] standby: the next run starts ahead, so a restart takes milliseconds


def launch_for(options: Options) -> Launch:
    """What a start runs: the command under (guarded) debugpy in the options' mode, after the prefix."""
    launch = build_launch(options.command, options.mode, options.port, options.python)
    return Launch((*options.prefix, *launch.argv), launch.name) if options.prefix else launch


def run_python(options: Options, launch: Launch) -> str:
    """The interpreter a start runs (after the prefix)."""
    return launch.argv[len(options.prefix)] if len(launch.argv) > len(options.prefix) else launch.argv[0]


def run_env(
    options: Options,
    token: str,
    hook_dir: Path | None,
    debugpy_dir_needed: Callable[[Mapping[str, str]], bool],
) -> dict[str, str]:
    """The debuggee's environment: the pane's, the user's PYTHONPATH back, the hook (``hook_dir``),
    Tether's debugpy where ``debugpy_dir_needed`` (asked with the environment so far), the port."""
    env = dict(
        os.environ,
        TETHER_LOOP_RUN=token,
        TETHER_DEBUG_PORT=str(options.port),
        TETHER_DEBUG_MODE=options.mode,
        TETHER_LOOP_DIR=str(options.state.parent),
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    if RUN_PYTHONPATH in env:  # the loop ran with the agent's path; the run gets the user's again
        user_path = env.pop(RUN_PYTHONPATH)
        if user_path:
            env["PYTHONPATH"] = user_path
        else:
            env.pop("PYTHONPATH", None)
    paths = [str(hook_dir)] if hook_dir is not None else []
    if debugpy_dir_needed(env):
        paths.append(str(options.debugpy_dir))
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        if hook_dir is not None:
            env.setdefault("PYTHONBREAKPOINT", HOOK)
    if options.mode != "off":
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env
