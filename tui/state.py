"""What must survive the console on the laptop: which node and job a workspace uses.

One small JSON file per workspace under ``$XDG_STATE_HOME/tether`` (and ``ui.json``: the console
preferences the user picked, for every workspace). Writes are atomic (temporary
file, fsync, rename), so a crash never leaves half a file. Nothing secret is ever stored here.
Control sockets live in a private runtime directory with short paths (Unix sockets allow ~100
bytes). One console per workspace: ``ConsoleLock`` (an flock that ends with its process).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, cast

from tui.errors import TetherError


def workspace_id(config_path: Path) -> str:
    """A short stable id for the workspace defined by this tether.toml."""
    return hashlib.sha256(str(config_path.resolve()).encode()).hexdigest()[:10]


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else Path.home() / fallback


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "tether"


def runtime_dir() -> Path:
    """Private directory for control sockets and the askpass socket."""
    value = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(value) / "tether" if value else Path.home() / ".cache" / "tether" / "run"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


class RecordExtra(TypedDict, total=False):
    """What a session record keeps beyond its fields."""

    ports: dict[str, list[int]]  # forward name -> [laptop port, node port], taken again by `tether attach`


class UiPrefsFile(TypedDict, total=False):
    """``ui.json``."""

    theme: str


@dataclass(frozen=True)
class SessionRecord:
    """The workspace's live session: enough for `attach` and `down` from a new process."""

    workspace: str
    config_path: str
    login: str
    node: str = ""  # the node's ssh destination; "" while unknown or when it is the login host
    scheduler: str = "direct"
    job_id: str | None = None
    node_access: str = "ssh"  # "srun": the node takes no ssh; commands run as steps of the job
    started_at: float = field(default_factory=time.time)
    extra: RecordExtra = field(default_factory=RecordExtra)


class StateError(TetherError):
    pass


def write_json_atomic(path: Path, data: object) -> None:
    """``data`` as JSON at ``path``, whole or not at all (temporary file, fsync, rename); the
    folder is made 0700 when missing."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class UiPrefs:
    """What the user picked in a console and gets again in the next one, in every workspace (the
    theme), in ``ui.json`` beside the session records. A preference is not worth a failure: an
    unreadable file reads as none and is replaced at the next pick."""

    def __init__(self, root: Path | None = None) -> None:
        self.path = (root or state_dir()) / "ui.json"

    def _read(self) -> UiPrefsFile:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return cast(UiPrefsFile, data) if isinstance(data, dict) else {}

    def theme(self) -> str | None:
        name = self._read().get("theme")
        return name if isinstance(name, str) and name else None

    def remember_theme(self, name: str) -> None:
        write_json_atomic(self.path, {**self._read(), "theme": name})


class StateStore:
    """Session records by workspace id."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or state_dir()

    def path(self, ws_id: str) -> Path:
        return self.root / f"{ws_id}.json"

    def load(self, ws_id: str) -> SessionRecord | None:
        path = self.path(ws_id)
        try:
            data = json.loads(path.read_text())
            return SessionRecord(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise StateError(
                f"{path}: unreadable session record ({exc})",
                fix=f"delete {path} (the run on the node is not affected), then `tether up`",
            ) from None

    def save(self, record: SessionRecord) -> None:
        write_json_atomic(self.path(workspace_id(Path(record.config_path))), dataclasses.asdict(record))

    def delete(self, ws_id: str) -> None:
        self.path(ws_id).unlink(missing_ok=True)


class ConsoleBusy(TetherError):
    """Another console of this workspace is open on this laptop."""


class ConsoleLock:
    """One console per workspace on this laptop: an flock on ``<state>/<ws_id>.console``.

    The kernel drops an flock when its process ends, however it ends (SIGKILL, a crash), so a lock
    never outlives its console and never blocks the next one. The descriptor is not inherited
    (Python's default), so ssh masters the console leaves running (ControlPersist) do not hold it
    either. The pid in the file only names the holder in the refusal.
    """

    def __init__(self, ws_id: str, root: Path | None = None) -> None:
        self.path = (root or state_dir()) / f"{ws_id}.console"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ConsoleBusy naming the console that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            pid = f"pid {holder}" if holder.isdigit() else "its pid not written yet"
            raise ConsoleBusy(
                f"another Tether console is open on this workspace ({pid}): a second one would fight it over "
                "the sync, the run and the forwards",
                fix="use that console, or quit it there with q (everything keeps running) and `tether attach` here",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock; the file may stay
            self._fd = None

    def __enter__(self) -> ConsoleLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
