"""What runs in each pane of the workspace's tmux session: the shell commands and scripts the
layout hands tmux (pure; stdlib only, it runs on the node).

tmux starts a pane's command with the user's login shell, so a command given to tmux stays plain
(``exec PROGRAM SCRIPT``, ``htop``); what needs sh syntax (env lines, the debug loop, waiting for the
output pipe) goes into a run script that a POSIX shell reads.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from tui.node.protocol_layout import DEBUGPY_HOME, PaneSpec, RunSpec

_SHELL_WORDS = {"cd", "exec", "export", "source", ".", "env", "nice", "time", "while", "for", "if", "{", "("}


def missing_message(program: str, host: str, what: str) -> str:
    return f"{program} is not installed on {host}: {what}"


def run_script(root: str, run: RunSpec) -> str:
    """The run pane's shell: the [run] env lines, the command, then a shell once it exits."""
    command = " ".join(part for part in (run.get("prefix", ""), run.get("command", "")) if part)
    # Output goes to the log through `tmux pipe-pane`, attached just after the pane starts: wait
    # for it (at most 5 s) so that the first lines are in the log too.
    lines = [_WAIT_FOR_PIPE, "export PYTHONUNBUFFERED=1", *run.get("env", []), command or ":"]
    lines.append("printf '\\n[tether] the run exited with code %s\\n' \"$?\"")
    lines.append('exec "${SHELL:-/bin/sh}"')
    return "\n".join(lines)


_WAIT_FOR_PIPE = (
    'i=0; while [ "$(tmux display-message -p -t "$TMUX_PANE" \'#{pane_pipe}\' 2>/dev/null)" != 1 ]'
    " && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done"
)


def loop_script(
    run: RunSpec,
    *,
    rank: int,
    port: int,
    state: Path,
    agent_python: str,
    agent_root: str,
    master_port: int = 0,
    wait_for_pipe: bool = True,
    first: tuple[str, ...] = (),
) -> str:
    """A run pane's shell when the debug loop runs the command: env lines, then the loop (in the
    foreground: Ctrl-C reaches it), then a shell once it is left (Ctrl-C twice)."""
    loop = run["loop"]
    ranks = int(loop.get("ranks", 1))
    command = shlex.split(run.get("command") or "")
    interpreter = loop.get("interpreter") or ""
    if command and interpreter and "/" not in command[0] and re.fullmatch(r"python(\d+(\.\d+)?)?", command[0]):
        command[0] = interpreter  # "python train.py" means the run's interpreter ([run] interpreter)
    words = [
        agent_python,
        "-m",
        "tui.node.loop",
        "--state",
        str(state),
        "--port",
        str(port),
        "--mode",
        str(loop.get("mode", "attach")),
        "--wait-timeout",
        str(loop.get("wait_timeout", 0)),
        "--debugpy-dir",
        os.path.expanduser(DEBUGPY_HOME),
        "--provide-debugpy",
        str(loop.get("provide_debugpy", "auto")),
    ]
    if interpreter:
        words += ["--python", interpreter]
    if run.get("prefix"):
        words += ["--prefix", run["prefix"]]
    lines = [_WAIT_FOR_PIPE] if wait_for_pipe else []
    lines += [*first, "export PYTHONUNBUFFERED=1", *run.get("env", [])]
    if ranks > 1:
        lines.append(
            f"export RANK={rank} LOCAL_RANK={rank} WORLD_SIZE={ranks} LOCAL_WORLD_SIZE={ranks} "
            f"MASTER_ADDR=127.0.0.1 MASTER_PORT={master_port}"
        )
    lines += [
        "trap : INT",  # the shell outlives Ctrl-C; the loop (a child) decides what Ctrl-C does
        'tether_pp="${PYTHONPATH-}"',
        f'PYTHONPATH={shlex.quote(agent_root)} {loop_module_env()}="$tether_pp" '
        + shlex.join([*words, "--", *command]),
        "tether_code=$?; trap - INT",
        'printf \'\\n[tether] left the debug loop (code %s); start it again: sh %s\\n\' "$tether_code" "$0"',
        'exec "${SHELL:-/bin/sh}"',
    ]
    return "\n".join(lines)


# Shells that read the run script's sh syntax. tmux starts a pane's command with the user's shell,
# so the command itself must parse in any shell (tcsh, fish): a plain `exec PROGRAM SCRIPT`.
POSIX_SHELLS = frozenset({"sh", "bash", "zsh", "ksh", "mksh", "dash", "ash"})


def script_command(script: Path, environ: Mapping[str, str] = os.environ) -> str:
    """The pane command that runs a run script: with the user's shell when it reads sh (bash keeps
    exported `module` functions working), else /bin/sh."""
    shell = environ.get("SHELL", "")
    runner = shell if os.path.basename(shell) in POSIX_SHELLS else "/bin/sh"
    return f"exec {shlex.quote(runner)} {shlex.quote(str(script))}"


def loop_module_env() -> str:
    return "TETHER_RUN_PYTHONPATH"


def message_command(text: str) -> str:
    return f"printf '%s\\n' {shlex.quote(text)}; exec tail -f /dev/null"


def pane_command(
    pane: PaneSpec, root: str, run: RunSpec, host: str, which: Callable[[str], str | None] = shutil.which
) -> tuple[str | None, str]:
    """(shell command for the pane or None for a plain shell, note when a program is missing)."""
    name, command = pane["name"], pane.get("command")
    if command is None and name == "run":
        return (run_script(root, run) if not run.get("loop") else None), ""
    if command is None and name == "htop":
        if which("htop"):
            return "htop", ""
        note = missing_message("htop", host, "install it, or leave it out of [layout] panes")
        return message_command(note), note
    if command is None and name == "gpu":
        if which("nvidia-smi") and which("watch"):
            return "watch -n 2 nvidia-smi", ""
        note = f"no GPU on {host}: nvidia-smi is not installed there"
        return message_command(note), note
    if command is None:
        return None, ""
    words = shlex.split(command) if command.strip() else []
    program = words[0] if words else ""
    if program and "=" not in program and program not in _SHELL_WORDS and not which(program):
        note = missing_message(program, host, f"the {name} pane has nothing to run")
        return message_command(note), note
    return command, ""
