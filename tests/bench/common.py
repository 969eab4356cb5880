"""What the benchmarks in tests/bench share: a relay that makes the ssh link slow (and counts what
crosses it), small statistics, and the frame around a run (private state, the testbed, the report).

The benchmarks run as scripts (`sudo python3 tests/bench/sync.py`; the smoke tests start them the
same way, in a subprocess), so their own folder is on sys.path and `from common import ...` works.
Importing this module puts tests/ and the repository root on sys.path too, for `testbed`, the
helpers beside it and `tui`: import it before them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from testbed import Testbed, build_testbed


class DelayRelay:
    """A TCP relay in front of the login sshd that holds every chunk ``delay`` seconds, each way.

    It stands in for a slow link (50 ms each way is a 100 ms round trip) with no tc/netem and no
    extra privilege, and ``bytes`` counts what crosses it in both directions: the cost on the link.
    It serves from its own thread, so the benchmark's event loop (or a blocking one) can use it.
    """

    def __init__(self, target_port: int, delay: float = 0.0) -> None:
        self.target_port, self.delay = target_port, delay
        self.bytes = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one direction; each chunk leaves ``delay`` after it came, in order (a queue, not a sleep per read)."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def release() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.create_task(release())
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                self.bytes += len(data)
                queue.put_nowait((time.monotonic() + self.delay, data))
        queue.put_nowait((0.0, b""))
        with contextlib.suppress(OSError):
            await sender

    def close(self) -> None:
        async def cancel_pipes() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_pipes(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)


def relay_ssh_config(testbed: Testbed, relay: DelayRelay, folder: Path, compression: bool | None = None) -> Path:
    """The testbed's ssh config with the login host behind ``relay`` (written into ``folder``).

    ``compression`` sets ssh's Compression for every host; None leaves the config's own choice.
    """
    text = testbed.ssh_config.read_text()
    text = re.sub(r"(Host login\n(?:    .*\n)*?    Port )\d+", rf"\g<1>{relay.port}", text)
    if compression is not None:
        text = text.replace("Host *\n", f"Host *\n    Compression {'yes' if compression else 'no'}\n", 1)
    path = folder / f"ssh_config-{relay.port}"
    path.write_text(text)
    return path


def bench_workspace(
    folder: Path, testbed: Testbed, ssh_config: Path, *, name: str, remote_root: str, run: tuple[str, ...] = ()
) -> Path:
    """A tether.toml in ``folder`` for the testbed through ``ssh_config``: its [run] with the node's
    python and then ``run``'s lines (which may open further sections)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tether.toml"
    lines = [
        "[workspace]",
        f'name = "{name}"',
        f'remote_root = "{remote_root}"',
        "[connection]",
        f'login = "{testbed.login_alias}"',
        f'node = "{testbed.node_alias}"',
        f'ssh_config = "{ssh_config}"',
        "connect_timeout = 10",
        "[run]",
        f'interpreter = "{testbed.node_python}"',
        *run,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll ``condition`` every 5 ms until it holds; TimeoutError after ``timeout`` (no bare sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark: still waiting for {condition}")
        await asyncio.sleep(0.005)


def percentile(values: list[float], q: float) -> float:
    """The sample at fraction ``q`` of the sorted values (nearest rank: a measured time, not a blend)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ratio(measured: float, floor: float, ndigits: int | None = None) -> float:
    """``measured`` over ``floor``, the way every benchmark states its result; rounded to ``ndigits`` if given."""
    value = measured / floor
    return value if ndigits is None else round(value, ndigits)


def bench_parser(doc: str, smoke_help: str) -> argparse.ArgumentParser:
    """The command line every benchmark has: its docstring's first paragraph, and ``--smoke``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help=smoke_help)
    return parser


def private_state_dirs() -> Path:
    """A new folder in /tmp holding the XDG state, cache and runtime dirs, pointed at by the environment.

    Tether keeps its sockets, masters and caches there: a benchmark must not meet the user's own
    sessions, nor leave its own among them. Directly under /tmp, so that socket paths stay short.
    """
    scratch = Path(tempfile.mkdtemp(prefix="tt-", dir="/tmp"))
    for variable, name in (("XDG_STATE_HOME", "state"), ("XDG_CACHE_HOME", "cache"), ("XDG_RUNTIME_DIR", "run")):
        (scratch / name).mkdir(mode=0o700)
        os.environ[variable] = str(scratch / name)
    return scratch


def print_report(benchmark: str, table: str, result: dict, **head: object) -> None:
    """The table for people, then one JSON line for tools (the smoke tests read the last line)."""
    print(table)
    print(json.dumps({"benchmark": benchmark, **head, **result}))


def run_benchmark(
    benchmark: str,
    measure: Callable[[Testbed, Path], Coroutine[Any, Any, dict]],
    table: Callable[[dict], str],
    *,
    who: str | None = None,
    head: dict[str, object] | None = None,
    remove_scratch: bool = False,
) -> int:
    """Run ``measure(testbed, scratch)`` on the network-namespace testbed and print its report.

    ``scratch`` is the folder of private_state_dirs() (removed afterwards if ``remove_scratch``).
    Returns the exit status: 2, with a line on stderr naming ``who``, where the testbed has no
    network namespace (it needs root).
    """
    scratch = private_state_dirs()
    testbed = build_testbed()
    try:
        if not testbed.has_netns:
            print(
                f"{who or benchmark} needs the network-namespace testbed (root): {testbed.unavailable_reason}",
                file=sys.stderr,
            )
            return 2
        result = asyncio.run(measure(testbed, scratch))
    finally:
        testbed.close()
        if remove_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    print_report(benchmark, table(result), result, **(head or {}))
    return 0
