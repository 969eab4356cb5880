"""[run] pass_env values handed to the run without a command line and without a file.

tmux's ``-e KEY=VALUE`` would put the values on a command line, which every user of a shared node
can read in ``ps``. Instead the agent makes a FIFO (mode 0600: only the user opens it, and what
goes through it stays in kernel memory), and the run script reads the values from it first thing::

    eval "$(python -m tui.node.passenv FIFO)"

The reader prints ``export KEY='VALUE'`` lines for the script's shell. Stdlib only (it runs on the
node, with the agent's interpreter).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import signal
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

HAND_OVER_TIMEOUT_S = 30.0  # the pane starts within a second; this bounds a pane that never reads
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def make_fifo(path: Path) -> None:
    """A fresh FIFO at ``path`` that only the user can open."""
    path.unlink(missing_ok=True)
    os.mkfifo(path, 0o600)


def reader_line(path: Path, agent_python: str, agent_root: str) -> str:
    """The run script's first line: take the values from the FIFO into the shell's environment."""
    reader = (
        f"PYTHONPATH={shlex.quote(agent_root)} {shlex.quote(agent_python)} -m tui.node.passenv {shlex.quote(str(path))}"
    )
    return f'eval "$({reader})"'


def offer(path: Path, values: dict[str, str], log: Callable[[str], None], timeout: float = HAND_OVER_TIMEOUT_S) -> bool:
    """Write ``values`` into the FIFO once the run script opens it (an agent thread waits here);
    then remove it. False when no reader came in time."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until the reader opens it
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                    log(f"pass_env: no run script took the values from {path}: {exc}")
                    return False
                time.sleep(0.05)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as fifo:
            fifo.write(json.dumps(values).encode())
        return True
    finally:
        path.unlink(missing_ok=True)


def exports(values: dict[str, str]) -> str:
    """``export KEY='VALUE'`` lines (names that are not shell names are left out)."""
    return "".join(f"export {name}={shlex.quote(str(value))}\n" for name, value in values.items() if _NAME.match(name))


def read(path: Path, timeout: float = HAND_OVER_TIMEOUT_S) -> dict[str, str]:
    """The values the agent offers on ``path``; {} when there is no FIFO or nobody writes in time."""
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            return {}
    except FileNotFoundError:
        return {}  # the script run again by hand: the values were handed over once, to the first run

    def give_up(signum: int, frame: object) -> None:
        raise TimeoutError

    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(max(1, int(timeout)))
    try:
        with open(path, "rb") as fifo:
            return {str(k): str(v) for k, v in json.loads(fifo.read() or b"{}").items()}
    except (TimeoutError, OSError, ValueError):
        return {}
    finally:
        signal.alarm(0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    values = read(Path(args[0]))
    if not values:
        sys.stderr.write("[tether] pass_env: no values were handed over; the run starts without them\n")
    sys.stdout.write(exports(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
