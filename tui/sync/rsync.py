"""rsync runs through the node's ControlMaster: argv builders and the progress parser are pure.

Only the changed paths travel (``--files-from`` on stdin, NUL-separated), large files as rsync
deltas. Deletes are never left to rsync (no ``--delete``): the node agent does them, so the
protect rules and the root check hold for every one.
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tui.remote.ssh import ControlMaster, Hop, RsyncTransport, SshSettings, rsync_transport


@dataclass(frozen=True)
class Remote:
    """Where rsync writes: ``host`` through ``shell`` (the master), into ``root`` (absolute)."""

    shell: str
    host: str
    root: str
    options: tuple[str, ...] = ()  # what the transport needs, e.g. --rsync-path for a Slurm step

    def spec(self, rel: str = "") -> str:
        return f"{self.host}:{self.root.rstrip('/')}/{rel}"

    def args(self) -> list[str]:
        """``-e SHELL`` and the transport's own options."""
        return ["-e", self.shell, *self.options]


def remote_over(transport: RsyncTransport, root: str) -> Remote:
    return Remote(transport.shell, transport.host, root, transport.options)


def remote_for(settings: SshSettings, hop: Hop, root: str) -> Remote:
    """The rsync view of a hop: user and port go where rsync expects them."""
    return remote_over(rsync_transport(settings, hop), root)


def remote_of(master: ControlMaster, root: str) -> Remote:
    """rsync into ``root`` on the node however ``master`` reaches it (ssh, Slurm steps)."""
    return remote_over(master.rsync_transport(), root)


def push_argv(
    local_root: str,
    remote: Remote,
    *,
    progress: bool = True,
    compress: bool = True,
    whole_tree: bool = False,
    excludes: Iterable[str] = (),
) -> list[str]:
    """Send the paths listed on stdin (NUL-separated, relative to ``local_root``), no deletes.

    ``--ignore-times``: every listed path is known to have changed, and a file rewritten within
    one clock tick keeps its size and mtime, which rsync's quick check would take for "unchanged".
    The delta algorithm still sends only the changed blocks. ``whole_tree``: no list, the whole
    root except ``excludes`` (exact paths, anchored at the root): a first sync or full comparison.
    """
    argv = ["rsync", "-a", "--no-devices", "--no-specials", "--stats"]
    if whole_tree:
        # The whole root, recursively, like a hand-run rsync (and as fast: rsync scans and sends at
        # once); the quick check skips what is already equal.
        argv.append("-r")
    else:
        argv += ["--ignore-times", "--files-from=-", "--from0"]
    argv += [f"--exclude=/{_glob_escape(path)}" for path in excludes]
    if compress:
        argv.append("-z")
    if progress:
        argv.append("--info=progress2")
    return argv + remote.args() + [local_root.rstrip("/") + "/", remote.spec()]


def _glob_escape(path: str) -> str:
    """An rsync pattern that matches exactly ``path`` (wildcards and brackets escaped)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


def pull_argv(local_root: str, remote: Remote, rel: str) -> list[str]:
    """Bring ``rel`` (a file or a folder) from the node to the same place under ``local_root``.

    ``--no-owner --no-group``: the files are the laptop user's, never the node's uid (``-a`` run as
    root on the laptop would keep it, and the user could not edit or delete them).
    """
    return [
        "rsync",
        "-a",
        "--no-owner",
        "--no-group",
        "--relative",
        "--stats",
        *remote.args(),
        f"{remote.host}:{remote.root.rstrip('/')}/./{rel.strip('/')}",
        local_root.rstrip("/") + "/",
    ]


def files_from(paths: Iterable[str]) -> bytes:
    return b"".join(p.encode() + b"\0" for p in paths)


@dataclass(frozen=True)
class RsyncProgress:
    """One --info=progress2 line: totals for the whole run so far."""

    bytes_done: int
    percent: int
    rate: str  # as rsync prints it, e.g. "31.25MB/s"
    eta: str  # "0:00:12"
    files_done: int | None = None
    files_total: int | None = None


_PROGRESS = re.compile(
    r"^\s*([\d,.]+)\s+(\d+)%\s+(\S+/s)\s+(\d+:\d\d:\d\d)"
    r"(?:\s+\(xfr#(\d+),\s+(?:ir|to)-chk=(\d+)/(\d+)\))?"
)


def parse_progress(line: str) -> RsyncProgress | None:
    match = _PROGRESS.match(line)
    if match is None:
        return None
    done_bytes = int(re.sub(r"[,.]", "", match.group(1)))
    files_done = files_total = None
    if match.group(5) is not None:
        files_done = int(match.group(5))  # files sent so far
        files_total = int(match.group(7))  # entries rsync knows of (grows while it scans)
    return RsyncProgress(done_bytes, int(match.group(2)), match.group(3), match.group(4), files_done, files_total)


_STAT = re.compile(
    r"^(Total bytes sent|Total bytes received|Number of regular files transferred|Total file size): ([\d,.]+)"
)


def parse_stats(text: str) -> dict[str, int]:
    """rsync --stats lines we use: bytes sent and received, files transferred."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        match = _STAT.match(line.strip())
        if match:
            out[match.group(1)] = int(re.sub(r"[,.]", "", match.group(2)))
    return out


@dataclass(frozen=True)
class RsyncResult:
    returncode: int
    stderr: str
    stats: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.returncode == 0


async def run_rsync(
    argv: list[str],
    *,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    on_progress: Callable[[RsyncProgress], None] = lambda p: None,
    timeout: float | None = None,
) -> RsyncResult:
    """Run rsync, passing each progress line to ``on_progress``; killed on timeout or cancel."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    text: list[str] = []

    async def feed() -> None:
        try:
            proc.stdin.write(stdin)  # type: ignore[union-attr]
            await proc.stdin.drain()  # type: ignore[union-attr]
        except (ConnectionError, RuntimeError):
            pass
        finally:
            proc.stdin.close()  # type: ignore[union-attr]

    async def read_out() -> None:
        buffer = b""
        while chunk := await proc.stdout.read(4096):  # type: ignore[union-attr]
            buffer += chunk
            *lines, buffer = re.split(rb"[\r\n]", buffer)
            for raw in lines:
                line = raw.decode(errors="replace")
                progress = parse_progress(line)
                if progress is not None:
                    on_progress(progress)
                elif line.strip():
                    text.append(line)

    try:
        _, _, err = await asyncio.wait_for(asyncio.gather(feed(), read_out(), proc.stderr.read()), timeout)
        await proc.wait()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return RsyncResult(proc.returncode or 0, err.decode(errors="replace"), parse_stats("\n".join(text)))


def describe(argv: list[str]) -> str:
    return shlex.join(argv)
