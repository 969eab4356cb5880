"""The rules for single values of tether.toml: host specs, the remote root, durations.

Pure functions that either return the parsed value or raise :class:`RuleError` with a message and a
hint; tui/config.py turns a RuleError into a Problem at the key's line, and `tether init` uses the
same rules to re-ask a question. Stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tui.node.protocol_files import root_refusal


class RuleError(ValueError):
    """A value breaks a rule: ``message`` says what is wrong, ``hint`` what to write instead."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# -- the workspace name ------------------------------------------------------------------------

_WORKSPACE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def default_workspace_name(folder_name: str) -> str:
    """The folder's name made safe for tmux session names and remote paths ("my project" -> "my-project")."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", folder_name).strip("-") or "workspace"


def check_workspace_name(text: str) -> str:
    """Letters, digits, "_" and "-" only: the name goes into tmux session names and remote paths."""
    if not _WORKSPACE_NAME.fullmatch(text):
        raise RuleError(f"{text!r} is not a usable name", 'use letters, digits, "_" and "-", e.g. name = "mnist"')
    return text


# -- hosts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostSpec:
    """A host as written in tether.toml: an ssh_config alias, ``user@host``, ``host:port``..."""

    text: str
    user: str | None
    host: str
    port: int | None

    @property
    def destination(self) -> str:
        """``user@host`` or ``host``: what ssh takes as its destination (the port goes in ``-p``)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return self.text


_HOST_EXAMPLE = "write an ssh_config alias, user@host or user@host:port, e.g. 'me@login.cluster.org:2222'"


def parse_host_spec(text: str) -> HostSpec:
    """``[user@]host[:port]``; ``[v6::addr]:port`` for IPv6 with a port."""
    if not text.strip():
        raise RuleError("is empty", _HOST_EXAMPLE)
    if any(char.isspace() for char in text):
        raise RuleError(f"{text!r} contains spaces", _HOST_EXAMPLE)
    if "://" in text:
        raise RuleError(f"{text!r} is a URL", "drop the scheme: " + _HOST_EXAMPLE)
    user, at, rest = text.rpartition("@")
    if at and not user:
        raise RuleError(f"{text!r} has nothing before '@'", _HOST_EXAMPLE)
    host, port_text = _split_port(text, rest)
    if not host:
        raise RuleError(f"{text!r} has no host name", _HOST_EXAMPLE)
    port = None if port_text is None else parse_port_text(port_text, f"in {text!r}")
    return HostSpec(text=text, user=user or None, host=host, port=port)


def _split_port(text: str, rest: str) -> tuple[str, str | None]:
    if rest.startswith("["):
        host, bracket, after = rest[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise RuleError(f"{text!r} has an unclosed '['", "write IPv6 addresses as [::1]:2222")
        return host, after[1:] if after else None
    if rest.count(":") == 1:
        host, _, port = rest.partition(":")
        return host, port
    return rest, None  # no port, or a bare IPv6 address


def parse_port_text(text: str, where: str = "") -> int:
    """A port written inside a string (``host:PORT``): an integer 1..65535."""
    suffix = f" {where}" if where else ""
    if not text.isdigit():
        raise RuleError(f"port {text!r}{suffix} is not a number", "use a port between 1 and 65535, e.g. host:2222")
    return check_port(int(text), suffix)


def check_port(port: int, suffix: str = "", *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise RuleError(f"port {port}{suffix} is out of range", f"use a port between {low} and 65535")
    return port


# -- the remote root ---------------------------------------------------------------------------

# Folders that hold home directories, or are one: syncing with --delete there could wipe a home.
_HOME_LIKE = (
    re.compile(r"/home(/[^/]+)?"),
    re.compile(r"/Users(/[^/]+)?"),
    re.compile(r"/root"),
)


def check_remote_root(text: str, workspace_name: str) -> str:
    """The remote root, normalised (no trailing or doubled slashes), or RuleError.

    Tether deletes remote files that are not on the laptop (rsync --delete) inside this folder,
    so it refuses anything that could be, or hold, a home directory.
    """
    safe_example = f"pick a folder inside your home such as ~/work/{workspace_name or 'project'}"
    if not text.strip():
        raise RuleError("is empty", safe_example)
    if text.startswith("~") and text != "~" and not text.startswith("~/"):
        raise RuleError(f"{text!r}: '~user' paths are not supported", "use '~/...' or an absolute path")
    if not text.startswith(("/", "~")):
        raise RuleError(
            f"{text!r} is a relative path; the remote root must be absolute or start with '~/'",
            f"write ~/work/{workspace_name or 'project'} or an absolute path like /scratch/<you>/{workspace_name or 'project'}",
        )
    parts = text.split("/")
    if ".." in parts:
        raise RuleError(f"{text!r} contains '..'", "write the folder without '..' components")
    kept = [part for part in parts[1:] if part not in ("", ".")]
    normal = "/".join([parts[0], *kept]) if parts[0] == "~" else "/" + "/".join(kept)
    if normal == "/":
        raise RuleError(
            "'/' is the whole filesystem; tether deletes remote files that are not on the laptop",
            safe_example,
        )
    if normal == "~":
        raise RuleError(
            f"{text!r} is your home directory; tether deletes remote files that are not on the laptop",
            safe_example,
        )
    if any(pattern.fullmatch(normal) for pattern in _HOME_LIKE):
        raise RuleError(
            f"{text!r} is a home directory or holds them; tether deletes remote files that are not on the laptop",
            safe_example,
        )
    # The node judges its resolved path by the same rule (a ~/work that links to ~ is the home).
    home = "~" if normal.startswith("~/") else _home_of(normal)
    reason = root_refusal(normal, home)
    if reason is not None:
        raise RuleError(f"{text!r} {reason}; tether deletes remote files that are not on the laptop", safe_example)
    return normal


_HOME_OF = re.compile(r"/home/[^/]+|/Users/[^/]+|/root")


def _home_of(path: str) -> str:
    """The home an absolute path lies in, as far as its text shows ("/" when it shows none)."""
    found = _HOME_OF.match(path)
    return found.group(0) if found and (path == found.group(0) or path.startswith(found.group(0) + "/")) else "/"


# -- durations and scheduler formats -----------------------------------------------------------

_DURATION = re.compile(r"(?:\d+[smhd])+|\d+")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_HINT = 'write seconds (600) or a string like "90s", "10m", "1h" or "1h30m"'


def parse_duration(value: object) -> int:
    """Seconds from an integer or a string like ``"90s"``, ``"10m"``, ``"1h30m"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise RuleError(f"{value} is negative", DURATION_HINT)
        return value
    if not isinstance(value, str):
        raise RuleError("expected a duration", DURATION_HINT)
    text = value.strip()
    if not _DURATION.fullmatch(text):
        raise RuleError(f"{value!r} is not a duration", DURATION_HINT)
    if text.isdigit():
        return int(text)
    return sum(int(amount) * _UNIT_SECONDS[unit] for amount, unit in _DURATION_PART.findall(text))


# Slurm's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (and UNLIMITED).
_SLURM_TIME = re.compile(r"\d+(:\d{1,2}){0,2}|\d+-\d+(:\d{1,2}){0,2}|unlimited|infinite", re.IGNORECASE)
# PBS walltime: S, M:S or H:M:S.
_PBS_WALLTIME = re.compile(r"\d+(:\d{1,2}){0,2}")
# Memory sizes as Slurm takes them: a number with an optional K, M, G or T unit.
_MEMORY = re.compile(r"\d+[KMGTkmgt]?")


def check_slurm_time(text: str) -> str:
    if not _SLURM_TIME.fullmatch(text):
        raise RuleError(
            f"{text!r} is not a Slurm time",
            'write hours:minutes:seconds like "04:00:00" or days-hours like "1-12"',
        )
    return text


def check_pbs_walltime(text: str) -> str:
    if not _PBS_WALLTIME.fullmatch(text):
        raise RuleError(f"{text!r} is not a PBS walltime", 'write hours:minutes:seconds like "04:00:00"')
    return text


def check_memory(text: str) -> str:
    if not _MEMORY.fullmatch(text):
        raise RuleError(f"{text!r} is not a memory size", 'write a number with a unit, like "32G" or "500M"')
    return text
