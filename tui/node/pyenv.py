"""How pip may install into a python on the node, and the debugpy install command that works there.

Shared by ``tether doctor`` (which runs the probe over ssh) and the debug loop (which runs it where
it is, with the run's python), so both give the user the same command. Runs on Python 3.6 too: the
probe is executed by whatever python the run uses.
"""

from __future__ import annotations

import shlex

# Printed as "VERSION KIND[,nopip]": KIND "own" (a venv, or a prefix the user may write, e.g. their
# conda env), "managed" (PEP 668: Debian 12, Ubuntu 24.04 refuse `pip install --user` with
# "externally-managed-environment"; pip ignores the marker inside a venv, so a venv is "own" first)
# or "system".
PYTHON_ENV_PROBE = (
    "import sys, os, sysconfig, importlib.util as u\n"
    "paths = sysconfig.get_paths()\n"
    "managed = os.path.isfile(os.path.join(paths['stdlib'], 'EXTERNALLY-MANAGED'))\n"
    "venv = sys.prefix != sys.base_prefix\n"
    "kind = 'own' if venv else 'managed' if managed else 'own' if os.access(paths['purelib'], os.W_OK) else 'system'\n"
    "print('%d.%d %s%s' % (sys.version_info[0], sys.version_info[1], kind, '' if u.find_spec('pip') else ',nopip'))"
)


def debugpy_install_fix(interpreter: str, python_env: str) -> str:
    """A command that installs debugpy for ``interpreter`` on the node and works there, judged by
    the ``PYTHON_ENV_PROBE`` output ("" when unknown). Needs the internet on the node."""
    py = shlex.quote(interpreter)
    kind = python_env.split(" ")[-1] if python_env else "system"
    venv = (
        f"make the run a venv: `{py} -m venv ~/venvs/run && ~/venvs/run/bin/python -m pip install debugpy`, "
        "then set [run] interpreter to that python's full path"
    )
    if kind.startswith("own"):
        return (
            f"`{py} -m pip install debugpy`"
            if "nopip" not in kind
            else f"`{py} -m ensurepip && {py} -m pip install debugpy`"
        )
    if kind.startswith("managed"):
        if "nopip" in kind:
            return venv  # no pip for that python: --break-system-packages cannot help
        # debugpy has no dependencies, so a --user install cannot break the system's packages.
        return f"{venv}; or `{py} -m pip install --user --break-system-packages debugpy`"
    return f"`{py} -m pip install --user debugpy`" if "nopip" not in kind else venv
