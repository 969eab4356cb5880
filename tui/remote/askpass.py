"""Bring ssh's password and one-time-code prompts into the console.

While the console owns the terminal, ssh must not write its prompt there. ssh runs with
``SSH_ASKPASS`` pointing at a tiny program (``python -m tui.remote.askpass``) that hands the prompt
to Tether over a Unix socket in a private (0700) directory and prints the answer it gets back. The
answer only passes through memory and the socket: nothing secret is written to disk.

If the user already chose an askpass program (``SSH_ASKPASS_REQUIRE`` set in the environment), it
is left alone.

A console killed hard (SIGKILL) cannot remove its socket: the next bridge to start removes every
``askpass-PID.sock`` whose console is gone (its pid dead, or nobody listening). An abstract socket
would leave nothing behind, but it has no file permissions: any local user could connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import tui

Ask = Callable[[str], Awaitable["str | None"]]
SOCKET_ENV = "TETHER_ASKPASS_SOCKET"


def user_chose_askpass(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return "SSH_ASKPASS_REQUIRE" in environ


class AskpassBridge:
    """A socket server answering askpass requests with ``ask(prompt)``."""

    def __init__(self, runtime_dir: Path, ask: Ask) -> None:
        self._dir = runtime_dir
        self._ask = ask
        self._server: asyncio.AbstractServer | None = None
        self._lock = asyncio.Lock()  # one prompt on screen at a time
        self.socket_path = runtime_dir / f"askpass-{os.getpid()}.sock"
        self.program_path = runtime_dir / "askpass"

    async def start(self) -> dict[str, str]:
        """Listen, and return the environment ssh needs to ask through us."""
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self._dir, 0o700)
        remove_stale_sockets(self._dir)
        self.socket_path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        self._write_program()
        return {
            "SSH_ASKPASS": str(self.program_path),
            "SSH_ASKPASS_REQUIRE": "force",
            SOCKET_ENV: str(self.socket_path),
        }

    def _write_program(self) -> None:
        package_parent = Path(tui.__file__).resolve().parent.parent
        self.program_path.write_text(
            "#!/bin/sh\n"
            f'PYTHONPATH={package_parent}${{PYTHONPATH:+:$PYTHONPATH}} exec {sys.executable} -m tui.remote.askpass "$@"\n'
        )
        self.program_path.chmod(stat.S_IRWXU)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.socket_path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            async with self._lock:
                answer = await self._ask(str(request.get("prompt", "")))
            writer.write((json.dumps({"answer": answer}) + "\n").encode())
            await writer.drain()
        except (ValueError, ConnectionError, asyncio.CancelledError):
            pass  # the console closed mid-prompt: ssh's askpass sees EOF and gives up
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def remove_stale_sockets(directory: Path) -> list[Path]:
    """Remove the askpass sockets of consoles that are gone; the ones removed."""
    removed = []
    for path in directory.glob("askpass-*.sock"):
        pid = path.name[len("askpass-") : -len(".sock")]
        if pid.isdigit() and int(pid) != os.getpid() and not _listening(path, int(pid)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def _listening(path: Path, pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False  # its console is gone
    except PermissionError:
        pass  # alive, and someone else's: ask the socket
    # The pid lives, but may be another program's now: a live console still answers a connect.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True  # unsure (a timeout): leave it
    return True


def main(argv: list[str] | None = None) -> int:
    """The askpass program ssh runs: prompt in argv, answer on stdout, exit 1 to cancel."""
    args = sys.argv[1:] if argv is None else argv
    prompt = args[0] if args else "Password:"
    path = os.environ.get(SOCKET_ENV)
    if not path:
        print("tether askpass: no console to ask (TETHER_ASKPASS_SOCKET unset)", file=sys.stderr)
        return 1
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        conn.sendall((json.dumps({"prompt": prompt}) + "\n").encode())
        reply = json.loads(conn.makefile("rb").readline() or b"{}")
    answer = reply.get("answer")
    if answer is None:
        return 1
    sys.stdout.write(answer + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
