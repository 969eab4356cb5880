"""The sync capability's messages: the agent's ``files.*`` ops as both ends see them, and what both
ends know about a remote root (where no root may be, where "keep theirs" puts the node's files).

Types, constants and one pure function, stdlib only: shipped to the node and imported by the laptop.
The keys are the JSON's; total=False where a key may be absent. Every request also carries the
channel's ``id`` and ``op``, every reply the request's ``id`` (tui/node/protocol.py). Lists on the
wire are typed as tuples here: JSON writes a tuple as a list, and both read the same by index.
``tui.node.files`` says what each op does.
"""

from __future__ import annotations

from typing import TypedDict

from tui.node.protocol import Op

BACKUP_DIR = ".tether-backup"  # in the remote root; "keep theirs" moves the node's own files here

# One root-level ignore or protect pattern, compiled on the laptop (tui/sync/ignore.py) for the
# node's stdlib ``re``: [regex, negate (a "!" pattern), dir_only (a pattern ending in "/")].
PatternRow = tuple[str, bool, bool]
# One ``files.manifest`` row: [path, kind ("f" file, "d" folder, "l" symlink), size, mtime_ns,
# mode (permission bits; 0 for a symlink), target (a symlink's, as written; else None)].
ManifestRow = tuple[str, str, int, int, int, "str | None"]
# What rsync is about to write: [path, size, mtime_ns] (``files.prepare``'s ``expect``).
Expected = tuple[str, int, int]


class _FileOpBase(TypedDict):
    k: str  # the kind: "del", "mkdir", "put" or "link"
    p: str  # the path, relative to the root


class FileOp(_FileOpBase, total=False):
    """One op of ``files.apply``, in single-letter keys (a change set may hold thousands)."""

    d: str  # put: the file's bytes, base64
    m: int  # put, mkdir: the permission bits (a put without one gets 0o644)
    t: int  # put: the mtime to set, in ns
    l: str  # noqa: E741  # link: the symlink's target, as written


class Conflict(TypedDict):
    """A node-edited file (or the node's own) kept beside the new version."""

    path: str
    copy: str  # the conflict copy's path, relative to the root: NAME.conflict-node-TIMESTAMP.EXT


class FileError(TypedDict):
    path: str  # relative to the root; "" for an error of rsync's as a whole
    error: str


# -- requests: each names the root it works in ------------------------------------------------
class RootRequest(TypedDict):
    """The fields of every ``files.*`` request."""

    root: str  # the remote root as the workspace's config writes it ("~/work/p"): opened under that name


class OpenRequest(RootRequest, total=False):
    """``files.open``: opens (and, unless ``claim`` is false, takes over) a root; the first op."""

    protect: list[PatternRow]  # paths never deleted or overwritten
    claim: bool  # default true; false: a reader (`tether pull`) wants the real path only
    create: bool  # default true; false: a missing root is reported (``missing``), not made


class ManifestRequest(RootRequest, total=False):
    exclude: list[PatternRow]  # what sync ignores: not listed


class PathsRequest(RootRequest, total=False):
    """``files.record``, ``files.hash`` and ``files.backup``: the paths, relative to the root."""

    paths: list[str]


class ApplyRequest(RootRequest, total=False):
    ops: list[FileOp]  # in order
    delete_theirs: bool  # the user allowed the node's own files to be deleted and replaced


class PrepareRequest(RootRequest, total=False):
    paths: list[str]  # the files the node may hold that rsync will write
    expect: list[Expected]
    theirs_aside: bool  # move the node's own files aside too, not only node-edited ones


class ReadRequest(RootRequest):
    path: str


# -- replies ------------------------------------------------------------------------------------
REFUSED = "files.refused"  # files.open's reply op when no root may be there


class _OpenReplyBase(TypedDict):
    op: str  # "files.open", or REFUSED with ``reason``
    root: str  # the node's real path for the root
    home: str  # the node's real $HOME


class OpenReply(_OpenReplyBase, total=False):
    created: bool
    missing: bool  # only for a reader or with create false: the root is not there
    reason: str  # files.refused: why no root may be there (``root_refusal``)


class ManifestReply(TypedDict):
    op: str
    entries: list[ManifestRow]
    unknown: list[str]  # regular files Tether has no record of writing: the node's own


class ApplyResult(TypedDict):
    done: int
    conflicts: list[Conflict]
    skipped: list[str]  # protected paths, left alone
    errors: list[FileError]
    kept: list[str]  # the node's own files a delete left in place (unless delete_theirs)


class ApplyReply(ApplyResult):
    op: str


class PrepareReply(TypedDict):
    op: str
    conflicts: list[Conflict]


class RecordReply(TypedDict):
    op: str


class ReadReply(TypedDict):
    op: str
    data: str  # base64
    mode: int
    mtime_ns: int


class HashReply(TypedDict):
    op: str
    hashes: dict[str, str]  # path -> sha256 hex, of the regular files among the paths


class BackupResult(TypedDict):
    folder: str  # BACKUP_DIR/<date>, relative to the root
    moved: list[str]
    errors: list[FileError]


class BackupReply(BackupResult):
    op: str


OPEN: Op[OpenRequest, OpenReply] = Op("files.open")
MANIFEST: Op[ManifestRequest, ManifestReply] = Op("files.manifest")
APPLY: Op[ApplyRequest, ApplyReply] = Op("files.apply")
PREPARE: Op[PrepareRequest, PrepareReply] = Op("files.prepare")
RECORD: Op[PathsRequest, RecordReply] = Op("files.record")  # remember what Tether just wrote (rsync)
READ: Op[ReadRequest, ReadReply] = Op("files.read")
HASH: Op[PathsRequest, HashReply] = Op("files.hash")
BACKUP: Op[PathsRequest, BackupReply] = Op("files.backup")  # moved (not copied) to BACKUP_DIR/<date>/


# -- where no remote root may be ----------------------------------------------------------------
# System folders: never a remote root themselves (a project below most of them is fine: /tmp/me/p).
SYSTEM_FOLDERS = frozenset(
    (
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/snap",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
        "/Users",
        "/Volumes",
        "/Applications",
        "/Library",
        "/System",
        "/private",
        "/private/tmp",
        "/private/var",
        "/private/etc",
        "/usr/local",
        "/var/tmp",
        "/var/lib",
        "/var/log",
        "/var/cache",
        "/var/spool",
        "/var/mail",
        "/var/opt",
        "/var/run",
        "/run/user",
        "/dev/shm",
        "/nix",
        "/nix/store",
    )
)
# System trees: nothing inside them either.
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/sbin",
    "/sys",
    "/usr",
    "/System",
    "/private/etc",
    "/nix/store",
)
# Dot-folders of the home whose insides are never a project either (keys, Tether's own journal).
HOME_TREES = (".ssh", ".gnupg", ".cache/tether")


def root_refusal(root: str, home: str) -> str | None:
    """Why ``root`` (an absolute path, or one under ``home`` written "~/...") must not be synced
    into, or None when it is fine. Sync deletes what the laptop does not have inside the root, so:
    not /, not a system folder, not the home or anything holding it, not one of its dot-folders."""
    root = root.rstrip("/") or "/"
    home = home.rstrip("/") or "/"
    if root == "/":
        return "is the whole filesystem '/'"
    if root == home:
        return f"is your home directory on the node ({home})"
    if home.startswith(root + "/"):
        return f"holds your home directory on the node ({home})"
    if root.startswith(home + "/"):  # inside the home: only its dot-folders are off limits
        rel = root[len(home) + 1 :]
        shown = "~/" + rel if home == "~" else f"{home}/{rel}"
        if rel.startswith(".") and "/" not in rel:
            return f"is a dot-folder of your home ({shown}), where programs keep their settings"
        for tree in HOME_TREES:
            if rel.startswith(tree + "/"):
                return f"lies inside {'~' if home == '~' else home}/{tree}"
        return None
    if root in SYSTEM_FOLDERS:
        return f"is the system folder {root}"
    for tree in SYSTEM_TREES:
        if root.startswith(tree + "/"):
            return f"lies inside the system folder {tree}"
    return None
