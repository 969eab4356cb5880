"""What the debug loop puts on its run's PYTHONPATH, in ``pyhook/`` next to its state (0600 files in
0700 folders): the breakpoint() hook and the guard that keeps other users out of debugpy.

  pyhook/tether_breakpoint.py                tui/node/hook.py (PYTHONBREAKPOINT=HOOK)
  pyhook/tether_debugguard/__init__.py       the guard's names, for ``import tether_debugguard``
  pyhook/tether_debugguard/__main__.py       ``python -m tether_debugguard`` = guarded ``python -m debugpy``
  pyhook/tether_debugguard/debugguard.py     tui/node/debugguard.py
  pyhook/tether_debugguard/debugadapter.py   tui/node/debugadapter.py (its relative import finds the guard)
  pyhook/tether_debugguard/tether_adapter/   what debugpy runs as its adapter: the guarded one

Stdlib only (shipped to the node).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tui.node.debugguard import ADAPTER_DIR, GUARD_MODULE

HOOK = "tether_breakpoint.breakpointhook"  # PYTHONBREAKPOINT for the run
HOOK_DIR = "pyhook"
GUARD_SOURCES = ("debugguard.py", "debugadapter.py")  # tui/node files copied into the package as they are
GUARD_INIT = (
    "# Written by Tether's debug loop: tui/node/debugguard.py and debugadapter.py as one package.\n"
    "from .debugguard import install, main\n"
    "from .debugadapter import adapter_main, survive_quick_reattach\n"
)
GUARD_MAIN = (
    "# Written by Tether's debug loop: python -m debugpy with its listeners guarded.\n"
    "from .debugguard import main\n"
    "main()\n"
)
ADAPTER_MAIN = (
    "# Written by Tether's debug loop: debugpy's adapter with its listeners guarded (tether_debugguard).\n"
    "import os, sys\n"
    "sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(sys.path[0])))\n"
    "from tether_debugguard.debugadapter import adapter_main\n"
    "adapter_main()\n"
)


def install_hook(directory: Path) -> Path | None:
    """The ``pyhook`` folder in ``directory``, its files as this Tether has them (see the module's
    doc); None when it cannot be written."""
    target = directory / HOOK_DIR
    package = target / GUARD_MODULE
    here = Path(__file__).parent
    try:
        files = {
            target / "tether_breakpoint.py": (here / "hook.py").read_bytes(),
            package / "__init__.py": GUARD_INIT.encode(),
            package / "__main__.py": GUARD_MAIN.encode(),
            package / ADAPTER_DIR / "__main__.py": ADAPTER_MAIN.encode(),
            **{package / name: (here / name).read_bytes() for name in GUARD_SOURCES},
        }
        for folder in (target, package, package / ADAPTER_DIR):
            folder.mkdir(mode=0o700, exist_ok=True)
        for path, data in files.items():
            _write_if_changed(path, data)
        with contextlib.suppress(FileNotFoundError):
            (target / f"{GUARD_MODULE}.py").unlink()  # an earlier Tether's guard, one file (the package wins anyway)
    except OSError:
        return None
    return target


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
