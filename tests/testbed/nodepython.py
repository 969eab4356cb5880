"""A Python for the node that the test user can run, with debugpy importable.

The interpreter running the tests lives under /root (pyenv, mode 0700), which the test user
cannot read, so a venv from it would fail with "Permission denied". The venv comes from the
system /usr/bin/python3 instead, and debugpy is copied in from the running interpreter
(same cp311 ABI) rather than installed: tests need no network.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from .commands import run

SYSTEM_PYTHON = "/usr/bin/python3"


def debugpy_source() -> Path | None:
    spec = importlib.util.find_spec("debugpy")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def make_node_venv(target: Path) -> Path | None:
    """Returns the venv's python, or None when debugpy is not available to copy."""
    source = debugpy_source()
    if source is None or not os.access(SYSTEM_PYTHON, os.X_OK):
        return None
    run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(target)])
    (site_packages,) = target.glob("lib/python3*/site-packages")
    # __pycache__ comes along: the venv is root's, so the test user could not write fresh .pyc
    # files and would recompile debugpy on every start.
    shutil.copytree(source, site_packages / "debugpy")
    make_world_readable(target)
    return target / "bin" / "python"


def make_world_readable(top: Path) -> None:
    """chmod -R a+rX: the test user runs this interpreter."""
    for root, dirs, files in os.walk(top):
        for name in dirs:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode | 0o555)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, mode | (0o555 if mode & 0o111 else 0o444))
    os.chmod(top, os.stat(top).st_mode | 0o555)
