"""``breakpoint()`` for runs under Tether's debug loop (PYTHONBREAKPOINT=tether_breakpoint.breakpointhook).

The loop copies this file next to its state as ``tether_breakpoint.py`` and puts that folder on the
run's PYTHONPATH. Stdlib only; debugpy is imported when breakpoint() is called. A call:
  1. makes sure debugpy listens on the rank's port (TETHER_DEBUG_PORT, on 127.0.0.1 only, for the
     run's owner alone: ``tether_debugguard``): already so in modes attach and wait; in mode off it
     starts listening now;
  2. writes ``breakpoint.json`` next to the loop's state ({token, file, line, pid, port, at}): the loop
     shows "waiting for debugger at train.py:42" and the console notifies;
  3. waits for a debugger, then stops in the caller's frame (at the breakpoint() line).
Without a loop around it (no TETHER_LOOP_DIR) or without debugpy, it falls back to pdb, saying why.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

HOST = "127.0.0.1"  # never 0.0.0.0


def _note(text: str) -> None:
    sys.stderr.write(f"tether: {text}\n")
    sys.stderr.flush()


def _record(folder: str, info: dict[str, Any]) -> str:
    path = os.path.join(folder, "breakpoint.json")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        json.dump(info, handle)
    os.replace(tmp, path)
    return path


def _forget(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def breakpointhook(*args: object, **kwargs: object) -> None:
    frame = sys._getframe(1)
    folder, port = os.environ.get("TETHER_LOOP_DIR"), os.environ.get("TETHER_DEBUG_PORT")
    if not folder or not port:
        import pdb

        return pdb.Pdb().set_trace(frame)
    try:
        import debugpy
    except ImportError:
        _note(f"breakpoint(): debugpy is not installed for {sys.executable}; falling back to pdb")
        import pdb

        return pdb.Pdb().set_trace(frame)
    if os.environ.get("TETHER_DEBUG_MODE") == "off" and not getattr(breakpointhook, "_listening", False):
        try:  # only the run's owner may reach it (tether_debugguard, next to this file)
            import tether_debugguard

            tether_debugguard.install()
        except (ImportError, RuntimeError) as exc:
            _note(f"breakpoint(): cannot keep other users of the node out of debugpy ({exc}); falling back to pdb")
            import pdb

            return pdb.Pdb().set_trace(frame)
        try:
            debugpy.listen((HOST, int(port)))
        except RuntimeError:  # already listening (a second call)
            pass
        breakpointhook._listening = True  # type: ignore[attr-defined]
    where = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
    path = _record(
        folder,
        {
            "token": os.environ.get("TETHER_LOOP_RUN"),
            "file": os.path.basename(frame.f_code.co_filename),
            "path": frame.f_code.co_filename,
            "line": frame.f_lineno,
            "pid": os.getpid(),
            "port": int(port),
            "at": time.time(),
        },
    )
    try:
        if not debugpy.is_client_connected():
            _note(f"waiting for debugger at {where} (port {port} on {HOST}; attach from Tether or VS Code)")
            debugpy.wait_for_client()
    finally:
        _forget(path)
    try:  # stop in the caller's frame, not in this hook (what debugpy.breakpoint() does from user code)
        from debugpy.server import api

        api._settrace(suspend=True, trace_only_current_thread=True, patch_multiprocessing=False, stop_at_frame=frame)
    except Exception:  # noqa: BLE001 - a debugpy without that internal: stop here instead
        debugpy.breakpoint()
