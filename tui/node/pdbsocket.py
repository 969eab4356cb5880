"""The one Unix socket the agent's relay may reach: a run's pdb (tui/node/hook.py), where the run's
python has no debugpy. Checked before every connection: a socket called pdb.sock, owned by this
user, in a folder of this user's that no one else may enter, so the relay never becomes a way into
other Unix sockets on the node (another user's, a system daemon's). Stdlib only.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Any

PDB_SOCKET = "pdb.sock"  # the name tui.node.hook gives it, in the loop's folder


def pdb_refusal(path: Any) -> str | None:
    """Why ``path`` is not a pdb socket of one of this user's runs, or None."""
    if not isinstance(path, str) or not os.path.isabs(path) or os.path.basename(path) != PDB_SOCKET:
        return f"pdb must be the absolute path of a {PDB_SOCKET}, not {path!r}"
    try:
        folder, sock = os.stat(os.path.dirname(path)), os.lstat(path)
    except OSError:
        return f"no pdb waits at {path}"
    if folder.st_uid != os.getuid() or folder.st_mode & 0o077 or sock.st_uid != os.getuid():
        return f"{path} is not in a private folder of this user's"
    if not stat.S_ISSOCK(sock.st_mode):
        return f"{path} is not a socket"
    return None


def pdb_connection(path: str, timeout: float) -> socket.socket:
    """A connection to the pdb at ``path`` (already checked with ``pdb_refusal``)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock
