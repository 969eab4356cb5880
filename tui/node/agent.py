"""The node agent: runs on the compute node, speaks JSON lines on stdin/stdout.

Started by Tether over one ssh channel (``python -m tui.node.agent``) and ended when that channel
closes. Stdlib only: it runs on whatever interpreter the node offers (>= 3.10), with nothing
installed there. It keeps no state that must outlive it: what survives a disconnect lives on the
node (the tmux session, files), so a new agent finds everything again.

Capabilities (sync, tmux and stats, the debug loop) live in their own modules under ``tui.node``,
each with a ``register(agent)`` that adds handlers with ``Agent.register`` and may start background
work with ``Agent.spawn``. A capability that cannot load on this node (a missing library) is logged
and left out; the agent still answers. An unknown or malformed message is logged to stderr (the
agent's log file) and answered with an error, never fatal.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import BinaryIO, cast

from tui.node import protocol
from tui.node.layoutstate import RunPane
from tui.node.protocol import USER_PYTHONPATH_ENV, Message, NoFields, RequestT

# The registry's one type for every op's handler: each takes its own op's request type, which the
# message has once dispatched by its op.
Handler = Callable[[Message], "Message | None"]

# Modules with a ``register(agent)`` function, loaded at start. Each capability adds its own here.
CAPABILITIES: tuple[str, ...] = (
    "tui.node.files",
    "tui.node.layout",
    "tui.node.stats",
    "tui.node.loopstate",
    "tui.node.relay",
)


class Agent:
    """Reads requests, dispatches them by ``op``, writes replies."""

    def __init__(self, reader: BinaryIO, writer: BinaryIO, log: Callable[[str], None], version: str) -> None:
        self._reader = reader
        self._writer = writer
        self._log = log
        self.version = version
        self.running = True
        self.handlers: dict[str, Handler] = {}
        self.register(protocol.PING.name, self._ping)
        self.register(protocol.BYE.name, self._bye)
        self.capabilities: list[str] = []
        self.run_pane = RunPane()  # found by tui.node.layout, sampled by tui.node.stats
        self._after_hello: list[Callable[[], None]] = []
        self._write_lock = threading.Lock()  # background threads send events too

    def register(self, op: str, handler: Callable[[RequestT], Message | None]) -> None:
        """Answer requests named ``op`` with ``handler(message)`` (its dict is the reply)."""
        self.handlers[op] = cast(Handler, handler)

    def spawn(self, name: str, target: Callable[[], object]) -> None:
        """Run background work (polling stats, watching panes) that sends events with ``send``."""

        def guarded() -> None:
            try:
                target()
            except Exception as exc:  # a capability's bug must not take the agent down
                self.log(f"{name} stopped: {exc!r}")

        threading.Thread(target=guarded, name=name, daemon=True).start()

    def on_hello(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` right after the hello line (events must not come before it)."""
        self._after_hello.append(callback)

    def log(self, text: str) -> None:
        self._log(text)

    def load_capabilities(self, names: tuple[str, ...] = CAPABILITIES) -> None:
        for name in names:
            try:
                importlib.import_module(name).register(self)
            except Exception as exc:  # e.g. libtmux missing on this node: the rest still works
                self.log(f"capability {name} not loaded: {exc!r}")
            else:
                self.capabilities.append(name.rsplit(".", 1)[-1])

    def send(self, message: Message) -> None:
        data = protocol.encode(message)
        with self._write_lock:
            self._writer.write(data)
            self._writer.flush()

    def hello(self) -> None:
        hello: protocol.Hello = {
            "op": "hello",
            "protocol": protocol.PROTOCOL_VERSION,
            "version": self.version,
            "python": ".".join(map(str, sys.version_info[:3])),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "capabilities": self.capabilities,
        }
        self.send(hello)
        for callback in self._after_hello:
            callback()

    def serve(self) -> None:
        """Handle lines until stdin closes or a ``bye`` arrives."""
        self.hello()
        while self.running:
            line = self._reader.readline(protocol.MAX_LINE_BYTES + 1)
            if not line:
                return
            if not line.strip():
                continue
            self.handle_line(line)

    def handle_line(self, line: bytes) -> None:
        try:
            message = protocol.decode(line)
        except protocol.MalformedMessage as exc:
            self._log(f"skipped malformed message ({exc}): {line[:200]!r}")
            self.send(protocol.ErrorReply(op="error", error=f"malformed message: {exc}"))
            return
        request_id = message.get("id")
        op = str(message["op"])  # decode saw to it that it is one
        handler = self.handlers.get(op)
        if handler is None:
            self._log(f"skipped unknown op {op!r}")
            self.send({"op": "error", "id": request_id, "error": f"unknown op {op!r}"})
            return
        reply: Message | None
        try:
            reply = handler(message)
        except Exception as exc:  # a capability's bug must not end the channel
            self._log(f"op {op!r} failed: {exc!r}")
            reply = protocol.ErrorReply(op="error", error=f"{op} failed: {exc}")
        if reply is not None:
            if request_id is not None:
                reply = {**reply, "id": request_id}
            self.send(reply)

    def _ping(self, message: NoFields) -> protocol.Pong:
        return {"op": "pong", "time": time.time()}

    def _bye(self, message: NoFields) -> protocol.Bye:
        self.running = False
        return {"op": "bye"}


def _log_to_stderr(text: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} agent[{os.getpid()}]: {text}\n")
    sys.stderr.flush()


def hand_back_pythonpath(environ: MutableMapping[str, str] = os.environ) -> None:
    """Give the environment the agent passes on (tmux, so the panes and the run) the user's own
    PYTHONPATH again. The agent's own is its bundle and vendored libtmux: inherited by the run, they
    would shadow the user's own ``tui`` or ``libtmux``. The agent has read it into ``sys.path``
    already, and what it starts with ``-m tui.node...`` names its folder itself."""
    if USER_PYTHONPATH_ENV not in environ:
        return  # not started by the start script (by hand): whoever started it chose the path
    user = environ.pop(USER_PYTHONPATH_ENV)
    if user:
        environ["PYTHONPATH"] = user
    else:
        environ.pop("PYTHONPATH", None)


CACHE_HOME = "~/.cache/tether"  # the agent, the runs (logs, state, the loop's control socket), sync records


def private_cache() -> None:
    """Make ``~/.cache/tether`` the owner's alone (0700): no other user of the node can look into
    the runs' logs and state or reach the loops' control sockets there, whatever the modes inside."""
    path = os.path.expanduser(CACHE_HOME)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError as exc:
        _log_to_stderr(f"cannot make {path} private (0700): {exc}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    private_cache()
    hand_back_pythonpath()
    version = args[0] if args else "unknown"
    agent = Agent(sys.stdin.buffer, sys.stdout.buffer, _log_to_stderr, version)
    agent.load_capabilities()
    try:
        agent.serve()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
