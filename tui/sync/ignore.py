"""Ignore and protect rules in gitignore syntax, as pure functions.

Three layers decide whether a path stays local, lowest precedence first: built-in defaults (.git,
__pycache__, editor temp files ...), ``[sync] ignore`` from tether.toml, then every ``.gitignore``
from the root down to the path's folder (a deeper file wins, and within a file the last matching
line wins, as in git). A path below an ignored folder is ignored whatever later lines say: git
never looks inside an excluded folder, and neither does the watcher.

``protect`` patterns use the same syntax. A protected path is neither pushed nor deleted; the
node's side enforces it too (the patterns travel there as regular expressions, see
``compile_for_node``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

BUILTIN_IGNORES: tuple[str, ...] = (
    ".git/", ".hg/", ".svn/", ".jj/",
    "__pycache__/", "*.pyc", "*.pyo",
    ".venv/", "node_modules/", ".mypy_cache/", ".pytest_cache/", ".ruff_cache/", ".tox/", ".nox/",
    ".ipynb_checkpoints/", ".DS_Store", ".idea/",
    # Editor settings stay on the laptop; Tether writes .vscode/launch.json itself, and syncing it
    # would count as a change (and restart a run with restart_on_sync).
    ".vscode/",
    # Editor temporaries: vim's swap and write-test files, emacs locks and backups.
    "*.swp", "*.swx", "*~", ".#*", "4913",
    # Our own temporary files on the node (an agent killed mid-write leaves one).
    ".tether-tmp-*",
)


@dataclass(frozen=True)
class Pattern:
    """One gitignore line, compiled; ``regex`` matches a path relative to ``base``."""

    regex: re.Pattern[str]
    negate: bool
    dir_only: bool
    base: str  # the folder of the .gitignore that holds it, "" for the root
    source: str

    def matches(self, path: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not path.startswith(self.base + "/"):
                return False
            path = path[len(self.base) + 1 :]
        return self.regex.fullmatch(path) is not None


def _translate_glob(glob: str) -> str:
    """gitignore glob -> regex source, ``*`` and ``?`` never crossing a ``/``."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == n:
            out.append("/.*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 2 if glob.startswith("[!", i) or glob.startswith("[^", i) else i + 1)
            if end == -1:
                out.append(re.escape(c))
                i += 1
                continue
            body = glob[i + 1 : end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def parse_line(line: str, base: str = "") -> Pattern | None:
    """One line of a .gitignore (or one config entry); None for blanks and comments."""
    source = line
    line = line.rstrip("\n").rstrip("\r")
    if not line.strip() or line.startswith("#"):
        return None
    # Trailing spaces are ignored unless escaped.
    while line.endswith(" ") and not line.endswith("\\ "):
        line = line[:-1]
    negate = line.startswith("!")
    if negate or line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    body = _translate_glob(line)
    if not anchored and not line.startswith("**"):
        body = "(?:.*/)?" + body
    return Pattern(re.compile(body, re.DOTALL), negate, dir_only, base, source)


def parse_lines(lines: Iterable[str], base: str = "") -> tuple[Pattern, ...]:
    return tuple(p for p in (parse_line(line, base) for line in lines) if p is not None)


def last_match(patterns: Iterable[Pattern], path: str, is_dir: bool) -> bool | None:
    """True (ignored), False (re-included by ``!``) or None (no line matched)."""
    verdict: bool | None = None
    for pattern in patterns:
        if pattern.matches(path, is_dir):
            verdict = not pattern.negate
    return verdict


def parents(path: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b']."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


GitignoreReader = Callable[[str], "list[str] | None"]


class Rules:
    """Whether a workspace path is excluded from sync: ignored or protected.

    ``read_gitignore(folder)`` returns the lines of ``folder/.gitignore`` or None; it is called
    once per folder and cached until ``forget(folder)``.
    """

    def __init__(
        self,
        ignore: Iterable[str] = (),
        protect: Iterable[str] = (),
        read_gitignore: GitignoreReader | None = None,
        builtins: Iterable[str] = BUILTIN_IGNORES,
    ) -> None:
        self.global_ignore = parse_lines(list(builtins) + list(ignore))
        self.protect = parse_lines(protect)
        self._read = read_gitignore or (lambda folder: None)
        self._gitignores: dict[str, tuple[Pattern, ...]] = {}
        self._dir_cache: dict[str, bool] = {}

    @classmethod
    def for_root(cls, root: Path, ignore: Iterable[str] = (), protect: Iterable[str] = ()) -> Rules:
        def read(folder: str) -> list[str] | None:
            try:
                return (root / folder / ".gitignore").read_text(errors="replace").splitlines()
            except OSError:
                return None

        return cls(ignore, protect, read)

    def forget(self, folder: str) -> None:
        """A .gitignore in ``folder`` changed: read it again, recompute every cached verdict."""
        self._gitignores.pop(folder, None)
        self._dir_cache.clear()

    def _gitignore(self, folder: str) -> tuple[Pattern, ...]:
        if folder not in self._gitignores:
            lines = self._read(folder)
            self._gitignores[folder] = parse_lines(lines, folder) if lines else ()
        return self._gitignores[folder]

    def is_protected(self, path: str, is_dir: bool = False) -> bool:
        if last_match(self.protect, path, is_dir):
            return True
        return any(last_match(self.protect, parent, True) for parent in parents(path))

    def _self_ignored(self, path: str, is_dir: bool) -> bool:
        """Ignored by its own name, given that no parent folder is."""
        verdict = last_match(self.global_ignore, path, is_dir)
        folders = [""] + parents(path)
        for folder in folders:
            found = last_match(self._gitignore(folder), path, is_dir)
            if found is not None:
                verdict = found
        return bool(verdict)

    def is_ignored(self, path: str, is_dir: bool = False) -> bool:
        for parent in parents(path):
            cached = self._dir_cache.get(parent)
            if cached is None:
                cached = self._dir_cache[parent] = self._self_ignored(parent, True)
            if cached:
                return True
        return self._self_ignored(path, is_dir)

    def excluded(self, path: str, is_dir: bool = False) -> bool:
        """Stays out of sync: ignored, or protected (the node's copy is never touched)."""
        return self.is_ignored(path, is_dir) or self.is_protected(path, is_dir)

    def excluded_child(self, path: str, is_dir: bool) -> bool:
        """``excluded`` for a walk that already knows every parent folder is not excluded."""
        if last_match(self.protect, path, is_dir):
            return True
        return self._self_ignored(path, is_dir)


def compile_for_node(patterns: Iterable[str]) -> list[list[object]]:
    """Root-level patterns as [regex, negate, dir_only] for the node agent (stdlib ``re``)."""
    return [[p.regex.pattern, p.negate, p.dir_only] for p in parse_lines(patterns)]
