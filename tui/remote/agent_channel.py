"""The laptop side of the node agent: ship it when its version changed, start it, talk to it.

The agent travels as a small tar of ``tui/node`` to ``~/.cache/tether/agent/<version>/`` on the
node. Starting it and checking that the right version is there is ONE remote command: on a slow
link an unchanged agent costs no extra round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import importlib.util
import io
import itertools
import shlex
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

import tui
from tui.errors import TetherError
from tui.node import protocol
from tui.node.protocol import USER_PYTHONPATH_ENV, Message, ReplyT, RequestT
from tui.remote.ssh import ControlMaster, describe_failure

AGENT_HOME = "$HOME/.cache/tether/agent"
# Pure-Python packages from Tether's own environment that travel with the agent (under vendor/),
# because compute nodes often have no internet to install them from.
VENDORED_PACKAGES: tuple[str, ...] = ("libtmux",)  # no runtime dependencies of its own
MIN_PYTHON = (3, 10)
# Tried in this order after the run's own interpreter: the first new enough runs the agent.
FALLBACK_PYTHONS = ("python3", "python3.13", "python3.12", "python3.11", "python3.10")


class StartRefusal(TypedDict, total=False):
    """What the start script prints instead of starting the agent (``start_script``)."""

    op: str  # "need_ship" or "no_python"
    error: str  # no_python's


class AgentError(TetherError):
    """The agent could not be started or stopped answering."""


def _package_files(name: str) -> list[tuple[str, Path]]:
    """Every .py file of an installed package, as (path under vendor/, local file).

    Found without importing it: importing libtmux while the console holds stdout would fail.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise AgentError(f"{name} is not installed next to Tether", fix=f"pip install {name}")
    root = Path(next(iter(spec.submodule_search_locations)))
    return [(f"vendor/{name}/{p.relative_to(root)}", p) for p in sorted(root.rglob("*.py"))]


def _agent_sources() -> list[tuple[str, Path]]:
    """(path inside the bundle, local file) for everything the agent needs on the node."""
    package = Path(tui.__file__).parent
    files = [("tui/__init__.py", package / "__init__.py")]
    files += [(f"tui/node/{p.name}", p) for p in sorted((package / "node").glob("*.py"))]
    for name in VENDORED_PACKAGES:
        files += _package_files(name)
    return files


def agent_version() -> str:
    """Tether's version plus a hash of the agent's sources: any change ships a new copy."""
    digest = hashlib.sha256()
    for name, path in _agent_sources():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{tui.__version__}-{digest.hexdigest()[:10]}"


def agent_bundle() -> bytes:
    """A gzipped tar of the agent's sources, with fixed metadata so equal sources give equal bytes."""
    buffer = io.BytesIO()
    # mtime=0: gzip's header would otherwise carry the current second, and equal sources must give
    # equal bytes.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, path in _agent_sources():
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def interpreter_probe(interpreter: str) -> str:
    """Shell that sets ``py`` to the first interpreter >= 3.10, preferring the run's own."""
    candidates = " ".join(shlex.quote(c) for c in dict.fromkeys((interpreter, *FALLBACK_PYTHONS)))
    check = shlex.quote(f"import sys; sys.exit(sys.version_info < {MIN_PYTHON!r})")
    return (
        f'py=""; for c in {candidates}; do '
        f'if command -v "$c" >/dev/null 2>&1 && "$c" -c {check} 2>/dev/null; then py="$c"; break; fi; done'
    )


def environment_prelude(env_lines: tuple[str, ...]) -> str:
    """The run's environment lines (module load, conda activate), silenced: stdout is the protocol."""
    if not env_lines:
        return ":"
    return "{ " + "; ".join(env_lines) + "; } </dev/null >/dev/null 2>&1"


def start_script(
    version: str, interpreter: str, env_lines: tuple[str, ...], environment: tuple[tuple[str, str], ...] = ()
) -> str:
    """Remote shell that execs the agent, or says why it cannot (need_ship, no_python)."""
    refusal = StartRefusal(op="no_python", error=f"no Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]} on the node")
    no_python = protocol.encode(refusal).decode().strip()
    need_ship = protocol.encode(StartRefusal(op="need_ship")).decode().strip()
    home = f"{AGENT_HOME}/{version}"
    return "; ".join(
        [
            f'd="{home}"',
            f'if [ ! -f "$d/.complete" ]; then echo {shlex.quote(need_ship)}; exit 0; fi',
            environment_prelude(env_lines),
            interpreter_probe(interpreter),
            f'if [ -z "$py" ]; then echo {shlex.quote(no_python)}; exit 0; fi',
            *(f"export {name}={shlex.quote(value)}" for name, value in environment),
            f'(umask 077; : >>"{AGENT_HOME}/agent.log")',  # 0600; the agent keeps the user's umask for the run
            # The user's PYTHONPATH is kept aside for the panes (tui.node.agent hands it back): the
            # agent's own folders must not shadow the run's packages.
            f'cd "$d" && {USER_PYTHONPATH_ENV}="${{PYTHONPATH-}}" PYTHONPATH="$d:$d/vendor" exec "$py" -u -m tui.node.agent '
            f'{shlex.quote(version)} 2>>"{AGENT_HOME}/agent.log"',
        ]
    )


def ship_script(version: str) -> str:
    """Remote shell that unpacks the bundle from stdin and moves it into place atomically."""
    return "; ".join(
        [
            "set -e",
            "umask 077",  # ~/.cache/tether and the bundle: the owner's alone (this shell only ships)
            f'base="{AGENT_HOME}"',
            'mkdir -p "$base"',
            't=$(mktemp -d "$base/.incoming.XXXXXX")',
            'tar -xzf - -C "$t"',
            'touch "$t/.complete"',
            f'rm -rf "$base/{version}"',
            # Two consoles may ship at once: the loser's copy is simply dropped.
            f'mv -T "$t" "$base/{version}" 2>/dev/null || rm -rf "$t"',
        ]
    )


class AgentGone(AgentError):
    """The channel closed (the link dropped or the agent exited)."""


class AgentChannel:
    """One running agent: requests with replies matched by id, events passed to ``on_event``."""

    def __init__(
        self, process: asyncio.subprocess.Process, hello: protocol.Hello, on_event: Callable[[Message], None]
    ) -> None:
        self._process = process
        self.hello = hello
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._busy: set[int] = set()  # requests other than pings awaiting their reply
        self.last_heard = time.monotonic()  # any line from the agent proves the link is alive
        self._reader = asyncio.create_task(self._read_replies())

    @property
    def pid(self) -> int:
        """The pid of the local ssh process carrying the channel."""
        return self._process.pid

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._reader)

    async def call(self, op: protocol.Op[RequestT, ReplyT], request: RequestT, *, timeout: float = 15) -> ReplyT:
        """``request`` with the types ``op`` declares for its request and reply."""
        # The agent answers op's request with op's reply: here the decoded message gets its type.
        return cast(ReplyT, await self.request(op.name, timeout=timeout, **request))

    async def request(self, op: str, *, timeout: float = 15, **fields: object) -> Message:
        """Send one request and wait for its reply; errors from the agent raise AgentError."""
        if self.closed:
            raise AgentGone("the agent channel is closed")
        request_id = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        if op != "ping":
            self._busy.add(request_id)
        try:
            await self.send_raw(protocol.encode({"id": request_id, "op": op, **fields}))
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)
            self._busy.discard(request_id)
            # A send that failed leaves the future unawaited; the reader may have failed it too.
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # seen: the error raised here is the one that counts
        if reply.get("op") == "error":
            raise AgentError(f"agent: {reply.get('error')}")
        return reply

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests use it to send a malformed line)."""
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(data)
            await self._process.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise AgentGone(f"the agent channel is closed: {exc}") from None

    @property
    def busy(self) -> bool:
        """A request other than a ping awaits its reply: the agent answers in order, so a ping sent
        after it waits behind it (a long tmux rebuild, say) and silence proves less."""
        return bool(self._busy)

    async def ping(self, timeout: float = 10) -> float:
        """Round-trip time of one ping, in milliseconds."""
        started = time.perf_counter()
        await self.call(protocol.PING, protocol.NoFields(), timeout=timeout)
        return (time.perf_counter() - started) * 1000

    async def close(self, timeout: float = 3) -> None:
        """Ask the agent to exit, then make sure the channel's ssh process is gone."""
        if not self.closed:
            with contextlib.suppress(AgentError, asyncio.TimeoutError):
                await self.call(protocol.BYE, protocol.NoFields(), timeout=timeout)
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), timeout)
            except asyncio.TimeoutError:
                self._process.kill()
                await self._process.wait()
        await self.wait_closed()

    async def _read_replies(self) -> None:
        assert self._process.stdout is not None
        try:
            while line := await self._process.stdout.readline():
                self.last_heard = time.monotonic()
                try:
                    message = protocol.decode(line)
                except protocol.MalformedMessage:
                    continue  # noise on stdout (a chatty .bashrc) is not ours to fail on
                request_id = message.get("id")
                future = self._pending.get(request_id) if isinstance(request_id, int) else None
                if future is not None and not future.done():
                    future.set_result(message)
                elif message.get("id") is None:
                    self._on_event(message)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(AgentGone("the agent channel closed"))


@dataclass(frozen=True)
class AgentLaunch:
    channel: AgentChannel
    shipped: bool


async def _spawn(master: ControlMaster, script: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *master.exec_argv(script),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=protocol.MAX_LINE_BYTES,
    )


async def _first_message(process: asyncio.subprocess.Process, timeout: float) -> Message | None:
    """The first protocol line the remote side prints (skipping shell noise), or None at EOF."""
    assert process.stdout is not None
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
        if not line:
            return None
        with contextlib.suppress(protocol.MalformedMessage):
            return protocol.decode(line)


async def ship_agent(master: ControlMaster, version: str) -> None:
    result = await master.run(ship_script(version), input_bytes=agent_bundle(), timeout=120)
    if not result.ok:
        raise AgentError(f"could not copy the agent to {master.name}: {result.stderr.strip()}")


async def launch_agent(
    master: ControlMaster,
    *,
    interpreter: str = "python3",
    env_lines: tuple[str, ...] = (),
    environment: tuple[tuple[str, str], ...] = (),
    on_event: Callable[[Message], None] = lambda message: None,
    timeout: float = 30,
) -> AgentLaunch:
    """Start the agent on the node, shipping it first if this version is not there yet.

    ``environment`` is set for the agent alone (not for the run), e.g. which workspace it serves.
    """
    version = agent_version()
    script = start_script(version, interpreter, env_lines, environment)
    shipped = False
    for _ in range(2):
        process = await _spawn(master, script)
        first = await _first_message(process, timeout)
        if first is not None and first["op"] == "hello":
            return AgentLaunch(AgentChannel(process, cast(protocol.Hello, first), on_event), shipped)
        await process.wait()
        if first is not None and first["op"] == "need_ship" and not shipped:
            await ship_agent(master, version)
            shipped = True
            continue
        if first is not None and first["op"] == "no_python":
            raise AgentError(
                f"{master.name}: {first['error']}",
                fix="set [run] interpreter to a Python >= 3.10 on the node (a conda env's python, say)",
            )
        stderr = (await process.stderr.read()).decode(errors="replace") if process.stderr else ""
        raise AgentError(describe_failure(master.name, stderr or "the agent exited before saying hello"))
    raise AgentError(f"{master.name}: the agent was shipped but still is not there")
