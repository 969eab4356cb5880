"""The ignore rules agree with git: random small trees and random .gitignore lines, with real
`git status --ignored` as the oracle (and the lines that used to crash or disagree, by name)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tui.sync.ignore import Rules
from tui.sync.tree import FILE, scan_local

GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None, reason="git is not installed (.ci/setup installs it)")

# Names chosen to meet the tricky pieces below: brackets, stars, spaces, '#', '!', a backslash.
NAMES = ["a", "b", "ab", "ba", "a b", "a ", "x]", "[a]", "a*b", "#c", "!d", "a.txt", "b.md", "e\\f", "aXb", "a-b"]
FOLDERS = ["", "a", "d", "d/a", "a/b", "d/e/a"]

PIECES = [
    "a",
    "b",
    "d",
    "e",
    "x",
    ".",
    "*",
    "**",
    "?",
    "[ab]",
    "[!a]",
    "[]a]",
    "[^b]",
    "[a-c]",
    "[]",
    "[!]",
    "[[:alpha:]]",
    "[[:digit:]]",
    "\\",
    "\\*",
    "\\ ",
    " ",
    "/",
    "#",
    "!",
    "]",
    "-",
    "**/",
    "/**",
]
line = st.lists(st.sampled_from(PIECES), min_size=1, max_size=5).map("".join)
tree = st.lists(st.tuples(st.sampled_from(FOLDERS), st.sampled_from(NAMES)), min_size=1, max_size=10, unique=True)


def git_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "XDG_CONFIG_HOME": str(home),
    }


def git_ignored(repo: Path, env: dict[str, str]) -> set[str]:
    """Every file git calls ignored (each one, also inside ignored folders)."""
    out = subprocess.run(
        [GIT or "git", "status", "--porcelain=v1", "-z", "--ignored=traditional", "--untracked-files=all"],
        cwd=repo,
        env=env,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return {entry[3:] for entry in out.split("\0") if entry.startswith("!! ")}


def tether_ignored(repo: Path, files: set[str]) -> set[str]:
    def read(folder: str) -> list[str] | None:
        try:
            return (repo / folder / ".gitignore").read_text().split("\n")
        except OSError:
            return None

    rules = Rules((), (), read, builtins=())
    kept = {
        path for path, entry in scan_local(repo, rules).items() if entry.kind == FILE and not path.startswith(".git/")
    }
    return files - kept


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("gitoracle")
    env = git_env(base)
    work = base / "repo"
    work.mkdir()
    subprocess.run([GIT or "git", "init", "-q"], cwd=work, env=env, check=True)
    return work, env


def clear(repo: Path) -> None:
    for item in repo.iterdir():
        if item.name != ".git":
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()


def check(repo: tuple[Path, dict[str, str]], lines: list[str], nested: list[str], files: list[tuple[str, str]]) -> None:
    work, env = repo
    clear(work)
    paths: set[str] = set()
    for folder, name in files:
        path = f"{folder}/{name}" if folder else name
        if any(p == path or p.startswith(path + "/") or path.startswith(p + "/") for p in paths):
            continue  # a file where a folder is needed
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text("x")
        paths.add(path)
    (work / ".gitignore").write_text("\n".join(lines) + "\n")
    paths.add(".gitignore")
    if nested and (work / "d").is_dir():
        (work / "d" / ".gitignore").write_text("\n".join(nested) + "\n")
        paths.add("d/.gitignore")
    expected, got = git_ignored(work, env), tether_ignored(work, paths)
    assert got == expected, (
        f"lines {lines!r}, d/.gitignore {nested!r}: git ignores {sorted(expected)}, tether {sorted(got)}"
    )


@settings(
    max_examples=int(os.environ.get("IGNORE_EXAMPLES", "200")),
    deadline=None,
    derandomize=os.environ.get("IGNORE_RANDOM") is None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(line, min_size=1, max_size=4), nested=st.lists(line, max_size=2), files=tree)
@example(lines=["[]a]"], nested=[], files=[("", "x]"), ("", "a"), ("d", "b")])  # used to crash: re.error
@example(lines=["d/a**b"], nested=[], files=[("d", "aXb"), ("d/a", "b"), ("", "b")])  # ** inside a name is *
@example(lines=["a**b"], nested=[], files=[("a", "b"), ("", "aXb")])
@example(lines=["a\\ ", "!a*b"], nested=["*", "!e"], files=[("", "a "), ("", "a*b"), ("d", "a")])
@example(lines=["d/a**"], nested=[], files=[("d/a", "b"), ("d", "ab"), ("d/e/a", "x]")])  # git's literal-prefix quirk
def test_ignore_rules_agree_with_git_status(repo, lines, nested, files):
    check(repo, lines, nested, files)


def test_a_bracket_line_no_longer_crashes_a_sync_scan(tmp_path):
    (tmp_path / ".gitignore").write_text("[]a]\n[\n*.log\n")
    for name in ("a", "]", "keep.py", "x.log"):
        (tmp_path / name).write_text("x")
    kept = scan_local(tmp_path, Rules.for_root(tmp_path))
    assert set(kept) == {".gitignore", "keep.py"}
