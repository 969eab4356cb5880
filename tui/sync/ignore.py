"""Ignore and protect rules in gitignore syntax, as pure functions.

Three layers decide whether a path stays local, lowest precedence first: built-in defaults (.git,
__pycache__, editor temp files ...), ``[sync] ignore`` from tether.toml, then every ``.gitignore``
from the root down to the path's folder (a deeper file wins, and within a file the last matching
line wins, as in git). A path below an ignored folder is ignored whatever later lines say: git
never looks inside an excluded folder, and neither does the watcher. Each line is read and matched
the way git's dir.c and wildmatch.c do it (trailing spaces, one trailing slash, brackets such as
``[]a]``, ``**`` only between slashes, a class that never closes matching nothing), and a test
checks the verdicts against `git status --ignored` on random trees and lines.

``protect`` patterns use the same syntax. A protected path is neither pushed nor deleted; the
node's side enforces it too (the patterns travel there as regular expressions, see
``compile_for_node``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tui.node.protocol_files import PatternRow

BUILTIN_IGNORES: tuple[str, ...] = (
    ".git/",
    ".hg/",
    ".svn/",
    ".jj/",
    "__pycache__/",
    "*.pyc",
    "*.pyo",
    ".venv/",
    "node_modules/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".tox/",
    ".nox/",
    ".ipynb_checkpoints/",
    ".DS_Store",
    ".idea/",
    # Editor settings stay on the laptop; Tether writes .vscode/launch.json itself, and syncing it
    # would count as a change (and restart a run with restart_on_sync).
    ".vscode/",
    # Editor temporaries: vim's swap and write-test files, emacs locks and backups.
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "4913",
    # Our own temporary files on the node (an agent killed mid-write leaves one), and the backups of
    # the node's own files that "keep theirs" made (tui/node/files.py BACKUP_DIR).
    ".tether-tmp-*",
    "/.tether-backup/",
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


_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t-\\r ",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}
NEVER = "(?!)"  # a regex that matches nothing


def _class_char(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


def _bracket(glob: str, i: int) -> tuple[str, int] | None:
    """The class starting at ``glob[i] == "["``, as git's wildmatch reads it -> (regex, index
    after it); None when it never ends (git then matches nothing with the whole pattern)."""
    n = len(glob)
    i += 1
    negated = i < n and glob[i] in "!^"
    if negated:
        i += 1
    items: list[str] = []
    prev = ""  # the last single character, for ranges ("" after a range or a class)
    first = True
    while True:
        if i >= n:
            return None
        c = glob[i]
        if c == "]" and not first:
            break
        first = False
        if c == "\\":
            i += 1
            if i >= n:
                return None
            items.append(_class_char(glob[i]))
            prev = glob[i]
        elif c == "-" and prev and i + 1 < n and glob[i + 1] != "]":
            i += 1
            end = glob[i]
            if end == "\\":
                i += 1
                if i >= n:
                    return None
                end = glob[i]
            items.pop()  # the range's start was added as a single character
            if prev <= end:
                items.append(f"{_class_char(prev)}-{_class_char(end)}")
            prev = ""
        elif c == "[" and i + 1 < n and glob[i + 1] == ":":
            close = glob.find("]", i + 2)
            if close == -1:
                return None
            name = glob[i + 2 : close - 1] if glob[close - 1] == ":" and close - 1 >= i + 2 else None
            if name is None:  # no ":]": a plain "["
                items.append(_class_char("["))
                prev = "["
            else:
                if name not in _CLASSES:
                    return None  # git aborts on an unknown [:class:]
                items.append(_CLASSES[name])
                prev = ""
                i = close
        else:
            items.append(_class_char(c))
            prev = c
        i += 1
    body = "".join(items)
    # A class never matches "/" (with WM_PATHNAME git refuses it; a basename holds none).
    if negated:
        return f"[^/{body}]", i + 1
    return (f"(?!/)[{body}]" if body else NEVER), i + 1


def _wild(glob: str, pathname: bool) -> str:
    """git's wildmatch as a regex; ``glob`` is what git hands to wildmatch (its start matters for ``**``)."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            j = i
            while j < n and glob[j] == "*":
                j += 1
            double = (
                j - i >= 2
                and (i == 0 or glob[i - 1] == "/")
                and (j == n or glob[j] == "/" or glob.startswith("\\/", j))
            )
            if pathname and double and j < n and glob[j] == "/":
                out.append("(?:.*/)?")  # "**/": any number of folders, none included
                i = j + 1
                continue
            out.append(".*" if pathname and double else "[^/]*")
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            found = _bracket(glob, i)
            if found is None:
                return NEVER
            out.append(found[0])
            i = found[1]
        elif c == "\\":
            if i + 1 >= n:
                return NEVER  # a trailing backslash matches nothing
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _trim_trailing_spaces(line: str) -> str:
    """git's trim_trailing_spaces: unescaped trailing spaces go (tabs stay)."""
    last_space = None
    i = 0
    while i < len(line):
        c = line[i]
        if c == " ":
            if last_space is None:
                last_space = i
        elif c == "\\":
            i += 1
            if i >= len(line):
                return line
            last_space = None
        else:
            last_space = None
        i += 1
    return line[:last_space] if last_space is not None else line


def _simple_length(text: str) -> int:
    for i, c in enumerate(text):
        if c in "*?[\\":
            return i
    return len(text)


def parse_line(line: str, base: str = "") -> Pattern | None:
    """One line of a .gitignore (or one config entry), read as git reads it; None for blanks and comments."""
    source = line
    line = line.rstrip("\n")
    if line.endswith("\r"):
        line = line[:-1]
    if not line or line.startswith("#"):
        return None
    line = _trim_trailing_spaces(line)
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    dir_only = line.endswith("/")
    if dir_only:
        line = line[:-1]  # one slash only, as git
    if not line:
        return None  # matches nothing
    if "/" not in line:  # matched against the name alone, at any depth
        body = "(?:.*/)?" + _wild(line, pathname=False)
    else:
        if line.startswith("/"):
            line = line[1:]
        prefix = _simple_length(line)
        # git compares the literal prefix first and hands only the rest to wildmatch, so a "**"
        # right after the prefix counts as at the start of the pattern.
        body = re.escape(line[:prefix]) + _wild(line[prefix:], pathname=True)
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
                text = (root / folder / ".gitignore").read_text(errors="replace")
            except OSError:
                return None
            return text.removeprefix("\ufeff").split("\n")  # lines end at "\n" only, as git reads them

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


def compile_for_node(patterns: Iterable[str]) -> list[PatternRow]:
    """Root-level patterns as [regex, negate, dir_only] for the node agent (stdlib ``re``)."""
    return [(p.regex.pattern, p.negate, p.dir_only) for p in parse_lines(patterns)]
