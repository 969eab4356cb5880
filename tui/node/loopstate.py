"""What the debug loop leaves on the node, and the small client the agent uses to read and drive it.

Stdlib only: shipped to the node with the agent and imported by ``tui.node.loop`` as well.

A loop owns one directory (the parent of its ``--state`` file); a second loop there is refused:
  STATE          JSON (``protocol_loop.LoopState``), replaced atomically (temporary file, fsync, rename)
  control.sock   Unix stream socket, mode 0600: the client sends one command line, the loop answers
                 one JSON line and closes. Commands: ``restart``, ``stop``, ``quit``, ``status``.
  output.log     everything the debuggee printed, appended across restarts (moved to output.log.1
                 when it passes 64 MiB at a start), plus the loop's own ``tether:`` lines
  output.tail    the last 200 lines of that output, plain text, rewritten at most once a second
  options.json   written by the agent: the [debug] options (mode, wait_timeout) tether.toml asks for
                 now; the loop takes them at its next start of the debuggee, so a changed mode never
                 costs a run the user did not restart

The /proc helpers (processes by session, TCP sockets by port) are Linux facts the loop needs to stop
a whole run and to see a debugger attach; the agent can use them for its own panels.

Agent capability (``register``; the messages' types are ``protocol_loop``'s); every request names
the loop's state file as ``state``:
  loop.status  {state, tail?: N}      -> {op: "loop.state", state_path, state (null: no loop yet),
                                          tail: the last N output lines}
  loop.control {state, command}       -> {op: "loop.control", state_path, reply: the loop's answer}
  loop.watch   {state, interval?: s}  -> {op: "ok"}, then events {op: "loop.state", state_path, state}
                                          whenever the file changes or the loop process dies
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from tui.node.protocol import Message, Ok, RequestT
from tui.node.protocol_loop import (
    COMMANDS,
    CONTROL,
    STATE_EVENT,
    STATUS,
    WATCH,
    LoopControlReply,
    LoopControlRequest,
    LoopOptions,
    LoopReply,
    LoopRequest,
    LoopState,
    LoopStateEvent,
    LoopStatusReply,
    LoopStatusRequest,
    LoopWatchRequest,
)

CONTROL_NAME = "control.sock"
LOG_NAME = "output.log"
TAIL_NAME = "output.tail"
TAIL_LINES = 200
OPTIONS_NAME = "options.json"
OPTION_KEYS = ("mode", "wait_timeout", "standby")
# Unix socket addresses hold ~108 bytes; longer paths go through /proc/self/fd/N/NAME.
_MAX_SOCKET_PATH = 100


class LoopError(Exception):
    """A loop that cannot be read or reached; the message says which file and what to do."""


def loop_dir(path: str | os.PathLike[str]) -> Path:
    """The loop's directory, given the directory itself or its state file."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def control_path(path: str | os.PathLike[str]) -> Path:
    return loop_dir(path) / CONTROL_NAME


def write_state(path: str | os.PathLike[str], state: LoopState) -> None:
    """Replace the state file atomically: readers see the old file or the new one, never half."""
    _write_json(Path(path), state)


def _write_json(path: Path, state: Mapping[str, object]) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_state(path: str | os.PathLike[str]) -> LoopState | None:
    """The loop's state, or None when no loop ever wrote one there.

    Adds ``loop_alive``: whether the supervisor process still runs. ``loop_running`` true with
    ``loop_alive`` false means the supervisor was killed (its debuggee was killed with it).
    """
    path = Path(path)
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LoopError(f"{path}: unreadable loop state ({exc}); delete it and start the loop again") from None
    if not isinstance(found, dict):
        raise LoopError(f"{path}: loop state is not a JSON object; delete it and start the loop again")
    state = cast(LoopState, found)
    state["loop_alive"] = is_loop_process(state.get("loop_pid"))
    return state


def write_options(path: str | os.PathLike[str], options: Mapping[str, object]) -> None:
    """The options the loop in ``path`` is to use from its next start on (``OPTION_KEYS`` of
    ``options``: a ``LoopOptions``)."""
    _write_json(loop_dir(path) / OPTIONS_NAME, {k: options[k] for k in OPTION_KEYS if k in options})


def read_options(path: str | os.PathLike[str]) -> LoopOptions:
    """The options the agent last asked the loop in ``path`` for ({} when none or unreadable)."""
    try:
        found = json.loads((loop_dir(path) / OPTIONS_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return cast(LoopOptions, {k: found[k] for k in OPTION_KEYS if isinstance(found, dict) and k in found})


def read_tail(path: str | os.PathLike[str]) -> list[str]:
    """The last output lines the loop kept (empty when none yet)."""
    try:
        text = (loop_dir(path) / TAIL_NAME).read_text(errors="replace")
    except FileNotFoundError:
        return []
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def write_tail(directory: Path, lines: Iterable[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    fd, temporary = tempfile.mkstemp(prefix=f".{TAIL_NAME}.", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, directory / TAIL_NAME)


@contextlib.contextmanager
def unix_address(path: Path) -> Iterator[str]:
    """An address for bind/connect that fits the kernel's limit, however long the directory path."""
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def send_control(path: str | os.PathLike[str], command: str, timeout: float = 5.0) -> LoopReply:
    """Send one command to the loop owning ``path`` (its directory or state file); return its reply.

    The reply is ``{"ok": true, "status": ..., ...}`` or ``{"ok": false, "error": ...}``. Raises
    LoopError when no loop listens there.
    """
    if command not in COMMANDS:
        raise LoopError(f"unknown loop command {command!r}; known: {', '.join(COMMANDS)}")
    sock_path = control_path(path)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        with unix_address(sock_path) as address:
            client.connect(address)
        client.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    except (FileNotFoundError, ConnectionRefusedError):
        raise LoopError(f"no debug loop is running in {sock_path.parent} (nothing answers on {sock_path})") from None
    except OSError as exc:
        raise LoopError(f"the debug loop in {sock_path.parent} did not answer {command!r}: {exc}") from None
    finally:
        client.close()
    try:
        reply = json.loads(data)
    except ValueError:
        raise LoopError(f"the debug loop in {sock_path.parent} gave a garbled answer: {data[:200]!r}") from None
    return cast(LoopReply, reply) if isinstance(reply, dict) else {"ok": False, "error": f"unexpected reply {reply!r}"}


# ---------------------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str  # R, S, D, Z, T ...


def processes() -> list[Proc]:
    """Every process we can see (a process that ends while we look is skipped)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                raw = handle.read().decode(errors="replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()  # the command name may hold spaces and ')'
        if len(fields) >= 4:
            found.append(Proc(int(name), int(fields[1]), int(fields[2]), int(fields[3]), fields[0]))
    return found


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    return [p.pid for p in processes() if p.sid == sid and p.state != "Z"]


def live_pids(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` that run (zombies count as gone)."""
    live = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        if raw[raw.rfind(b")") + 2 :][:1] != b"Z":
            live.append(pid)
    return live


def descendants(*roots: int) -> list[int]:
    """The live children of ``roots``, their children and so on, each once (by parent links;
    daemons that re-parented themselves to init are not found this way)."""
    children: dict[int, list[int]] = {}
    for proc in processes():
        if proc.state != "Z":
            children.setdefault(proc.ppid, []).append(proc.pid)
    found: dict[int, None] = {}
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = None
                todo.append(child)
    return list(found)


def environ_has(pid: int, entry: str) -> bool:
    """Whether process ``pid`` was started with ``entry`` ("NAME=value") in its environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return entry.encode() in handle.read().split(b"\0")
    except OSError:
        return False


def command_has(pid: object, text: bytes) -> bool:
    """Whether process ``pid``'s command line holds ``text`` (not just any process that reused the pid)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return text in handle.read()
    except OSError:
        return False


def is_loop_process(pid: object) -> bool:
    """Whether ``pid`` is a running ``tui.node.loop``."""
    return command_has(pid, b"tui.node.loop")


@dataclass(frozen=True)
class TcpSocket:
    address: str  # local address, e.g. "127.0.0.1" or "::1"
    port: int  # local port
    state: str  # "LISTEN", "ESTABLISHED" or the kernel's hex code for other states
    uid: int
    inode: int


_TCP_STATES = {"01": "ESTABLISHED", "0A": "LISTEN"}


def _decode_address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc prints each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def tcp_sockets() -> list[TcpSocket]:
    """All TCP sockets of this network namespace, from /proc/net/tcp and tcp6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            local_address, local_port = fields[1].split(":")
            found.append(
                TcpSocket(
                    _decode_address(local_address),
                    int(local_port, 16),
                    _TCP_STATES.get(fields[3], fields[3]),
                    int(fields[7]),
                    int(fields[9]),
                )
            )
    return found


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open."""
    inodes: set[int] = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def socket_owners(inodes: set[int]) -> dict[int, int]:
    """pid -> one of ``inodes`` it holds, over every process we may look into."""
    owners = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            held = socket_inodes(int(name)) & inodes
            if held:
                owners[int(name)] = min(held)
    return owners


def listening_sockets(pids: Iterable[int]) -> list[tuple[int, TcpSocket]]:
    """(pid, socket) for every TCP socket in LISTEN state held by one of ``pids``."""
    listening = {s.inode: s for s in tcp_sockets() if s.state == "LISTEN"}
    return [(pid, listening[inode]) for pid in pids for inode in sorted(socket_inodes(pid)) if inode in listening]


# ---------------------------------------------------------------------------- agent capability


class _Agent(Protocol):
    """What the loop's ops need of the agent: ``tui.node.agent.Agent`` (not imported: the agent's
    own imports come back here)."""

    running: bool

    def register(self, op: str, handler: Callable[[RequestT], Message | None]) -> None: ...

    def spawn(self, name: str, target: Callable[[], object]) -> None: ...

    def send(self, message: Message) -> None: ...


class LoopCapability:
    """The agent's side of the loop: read its state, send it commands, report state changes."""

    def __init__(self, agent: _Agent) -> None:
        self.agent = agent
        self.watched: dict[str, float] = {}  # state path -> poll interval
        self._lock = threading.Lock()

    @staticmethod
    def _state(message: LoopRequest) -> str:
        state = message.get("state")
        if not isinstance(state, str) or not state:
            raise LoopError("give the loop's state file as 'state'")
        return state

    def status(self, message: LoopStatusRequest) -> LoopStatusReply:
        path = self._state(message)
        lines = int(message.get("tail", 0))
        return {
            "op": STATE_EVENT,
            "state_path": path,
            "state": read_state(path),
            "tail": read_tail(path)[-lines:] if lines > 0 else [],
        }

    def control(self, message: LoopControlRequest) -> LoopControlReply:
        path = self._state(message)
        return {"op": CONTROL.name, "state_path": path, "reply": send_control(path, str(message.get("command")))}

    def watch(self, message: LoopWatchRequest) -> Ok:
        path = self._state(message)
        with self._lock:
            known = path in self.watched
            self.watched[path] = max(0.1, float(message.get("interval", 0.5)))
        if not known:
            self.agent.spawn(f"loop-watch {path}", lambda: self._watch(path))
        return {"op": "ok"}

    def _watch(self, path: str) -> None:
        seen: tuple[int, ...] | None = None
        pause = threading.Event()
        while self.agent.running:
            try:
                stat = os.stat(path)
                key: tuple[int, ...] = (stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                key = ()
            state = read_state(path) if key else None
            key += (bool(state and state.get("loop_alive")),)
            if key != seen:
                seen = key
                event: LoopStateEvent = {"op": STATE_EVENT, "state_path": path, "state": state}
                self.agent.send(event)
            pause.wait(self.watched[path])


def register(agent: _Agent) -> None:
    loop = LoopCapability(agent)
    agent.register(STATUS.name, loop.status)
    agent.register(CONTROL.name, loop.control)
    agent.register(WATCH.name, loop.watch)
