"""How the debug loop turns the user's command into one that runs under debugpy on 127.0.0.1.

debugpy runs through ``tether_debugguard`` (``tui.node.debugguard``, copied next to the loop's
state and on the run's PYTHONPATH): ``python -m tether_debugguard`` is ``python -m debugpy`` whose
listeners accept no other user of the node.

Stdlib only (shipped to the node). See ``tui.node.loop`` for the rules a command follows.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass

HOST = "127.0.0.1"  # never 0.0.0.0: an open debugpy port lets any user on the node run code as you
GUARD = "tether_debugguard"  # debugguard.GUARD_MODULE; python -m GUARD = python -m debugpy, reachable by the run's owner alone
_PYTHON_WORD = re.compile(r"python(\d+(\.\d+)?)?")
_PYTHON_FLAGS = set("bBdEiIOPqsSuvx")  # interpreter options without an argument


# The launchers people run, as the modules their console scripts call: run so under debugpy, which
# follows the workers each one starts (debugpy's subProcess), every rank is debuggable and the whole
# launch restarts as one. ("accelerate" only with its "launch" subcommand.)
LAUNCHERS: dict[tuple[str, ...], str] = {
    ("torchrun",): "torch.distributed.run",
    ("accelerate", "launch"): "accelerate.commands.launch",
    ("deepspeed",): "deepspeed.launcher.runner",
}


def script_python(name: str) -> str | None:
    """The interpreter a console script on PATH (``torchrun``) runs with, from its ``#!`` line:
    the environment it was installed into. None when it is not found or not a Python script."""
    path = shutil.which(name)
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            first = handle.readline(4096).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if words and os.path.basename(words[0]) == "env":
        words = [word for word in words[1:] if not word.startswith("-")]
    return words[0] if words and _PYTHON_WORD.fullmatch(os.path.basename(words[0])) else None


def launcher(words: list[str]) -> tuple[str, str, list[str]] | None:
    """``torchrun ARGS`` -> ("torchrun", "torch.distributed.run", ARGS): how messages name it, its
    module, its arguments; None for a command that is no known launcher."""
    for head, module in LAUNCHERS.items():
        if (os.path.basename(words[0]), *words[1 : len(head)]) == head:
            return " ".join(head), module, words[len(head) :]
    return None


class CommandError(ValueError):
    """A command the loop cannot run under debugpy; the message says what to give instead."""


@dataclass(frozen=True)
class Launch:
    argv: tuple[str, ...]
    name: str  # how messages call the program: "train.py", "pkg.train", "python -c"


def build_launch(
    command: list[str] | tuple[str, ...],
    mode: str,
    port: int,
    python: str = sys.executable,
    resolve: Callable[[str], str | None] | None = script_python,
) -> Launch:
    """The argv that runs ``command`` under (guarded) debugpy on 127.0.0.1:port (mode off: as given).
    A launcher (``torchrun``, ``accelerate launch``, ``deepspeed``) runs as its module, with the
    interpreter its script names (``resolve``; else ``python``)."""
    if not command:
        raise CommandError("no command: give it after --, e.g. -- python train.py --lr 3")
    words = list(command)
    if mode == "off":
        return Launch(tuple(words), os.path.basename(words[0]))
    known = launcher(words)
    if known is not None:
        name, module, args = known
        interpreter = (resolve(words[0]) if resolve else None) or python
        return Launch(build_launch([interpreter, "-m", module, *args], mode, port).argv, name)
    if words[0].endswith(".py"):
        words = [python, *words]
    if not _PYTHON_WORD.fullmatch(os.path.basename(words[0])):
        launchers = ", ".join(" ".join(head) for head in LAUNCHERS)
        raise CommandError(
            f"the loop adds debugpy only to a Python command (python script.py ..., python -m module ..., "
            f"script.py ...) or a launcher ({launchers}), not to {words[0]!r}: run it with --mode off (no "
            "debugger), or start debugpy from the program itself"
        )
    options: list[str] = []
    index = 1
    while index < len(words):
        word = words[index]
        if word in ("-m", "-c") or word.startswith(("-m", "-c")) or not word.startswith("-") or word == "-":
            break
        if word[1:2] in ("X", "W"):
            options.append(word)
            if len(word) == 2:
                if index + 1 >= len(words):
                    raise CommandError(f"interpreter option {word} needs a value")
                options.append(words[index + 1])
                index += 1
        elif word.startswith("--") or not set(word[1:]) <= _PYTHON_FLAGS:
            raise CommandError(f"interpreter option {word!r} is not supported by the loop; leave it out")
        else:
            options.append(word)
        index += 1
    rest = words[index:]
    if not rest:
        raise CommandError("no script or module to run: give e.g. python train.py, or python -m package.module")
    target, args = rest[0], rest[1:]
    if target == "-":
        raise CommandError("a program read from stdin (python -) cannot run under the loop; give a script file")
    if target.startswith(("-m", "-c")):
        flag, value = target[:2], target[2:]
        if not value:
            if not args:
                raise CommandError(f"{flag} needs a value")
            value, args = args[0], args[1:]
        if flag == "-m" and value == "debugpy":
            raise CommandError(
                "the command starts debugpy itself: give it without '-m debugpy ...' (the loop adds "
                f"-m debugpy --listen {HOST}:PORT, never 0.0.0.0)"
            )
        head, name = [flag, value], (value if flag == "-m" else "python -c")
    else:
        head, name = [target], os.path.basename(target)
    if not any("frozen_modules" in option for option in options):
        options += ["-X", "frozen_modules=off"]  # else debugpy warns and may miss breakpoints (3.11+)
    debugpy = ["-m", GUARD, "--listen", f"{HOST}:{port}"] + (["--wait-for-client"] if mode == "wait" else [])
    return Launch((words[0], *options, *debugpy, *head, *args), name)
