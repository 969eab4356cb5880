"""Ignore and protect rules: gitignore semantics as pure functions."""

from __future__ import annotations

import re

import pytest

from tui.node.files import Matcher
from tui.sync.ignore import Rules, compile_for_node, parse_line


def rules(gitignores: dict[str, str] | None = None, ignore=(), protect=()) -> Rules:
    files = gitignores or {}
    return Rules(ignore, protect, lambda folder: files[folder].splitlines() if folder in files else None)


@pytest.mark.parametrize(
    "pattern, path, is_dir, expected",
    [
        ("*.pyc", "a/b/c.pyc", False, True),
        ("*.pyc", "c.pyc.txt", False, False),
        ("build/", "build", True, True),
        ("build/", "build", False, False),  # a file named build is not the folder
        ("build/", "src/build", True, True),  # no slash inside: any depth
        ("/build", "src/build", True, False),  # anchored
        ("docs/*.md", "docs/a.md", False, True),
        ("docs/*.md", "docs/sub/a.md", False, False),  # * never crosses /
        ("docs/**/*.md", "docs/sub/deep/a.md", False, True),
        ("**/logs", "x/y/logs", True, True),
        ("logs/**", "logs/a/b", False, True),
        ("a?c", "abc", False, True),
        ("[ab]x", "bx", False, True),
        ("[!ab]x", "cx", False, True),
        ("\\#notcomment", "#notcomment", False, True),
    ],
)
def test_gitignore_patterns(pattern, path, is_dir, expected):
    parsed = parse_line(pattern)
    assert parsed is not None
    assert parsed.matches(path, is_dir) is expected


def test_comments_and_blanks_are_not_patterns():
    assert parse_line("# comment") is None
    assert parse_line("   ") is None


def test_builtins_config_and_nested_gitignores_in_order():
    r = rules(
        {"": "*.log\n!keep.log\n", "sub": "*.txt\n!important.txt\n", "sub/deeper": "!*.log\n"},
        ignore=["data/", "*.ckpt"],
    )
    assert r.is_ignored(".git", True) and r.is_ignored("pkg/__pycache__", True) and r.is_ignored("x.pyc")
    assert r.is_ignored(".venv/lib/site.py")  # inside an ignored folder
    assert r.is_ignored("data/train.csv") and r.is_ignored("model.ckpt")
    assert r.is_ignored("run.log") and not r.is_ignored("keep.log")
    assert r.is_ignored("sub/notes.txt") and not r.is_ignored("sub/important.txt")
    assert not r.is_ignored("notes.txt")  # sub's .gitignore does not reach up
    assert not r.is_ignored("sub/deeper/x.log")  # the deeper file wins
    assert not r.is_ignored("src/main.py")


def test_a_file_inside_an_ignored_folder_cannot_be_reincluded():
    r = rules({"": "build/\n!build/keep.txt\n"})
    assert r.is_ignored("build/keep.txt")


def test_forget_reloads_a_changed_gitignore():
    files = {"": "*.tmp\n"}
    r = Rules((), (), lambda folder: files.get(folder, "").splitlines())
    assert r.is_ignored("a.tmp")
    files[""] = ""
    assert r.is_ignored("a.tmp")  # cached
    r.forget("")
    assert not r.is_ignored("a.tmp")


def test_protected_paths_are_excluded_at_any_depth():
    r = rules(protect=["outputs/", "*.log", "/checkpoints/"])
    assert r.is_protected("outputs", True) and r.is_protected("outputs/model.pt")
    assert r.is_protected("exp/outputs/x") and r.is_protected("a/train.log")
    assert r.is_protected("checkpoints/c.pt") and not r.is_protected("exp/checkpoints/c.pt")
    assert r.excluded("a/train.log") and not r.excluded("a/train.py")


def test_the_node_matcher_agrees_with_the_laptop():
    patterns = ["outputs/", "*.log", "/checkpoints/", "wandb/", "!keep.log"]
    laptop = rules(protect=patterns)
    node = Matcher(compile_for_node(patterns))
    for path, is_dir in [
        ("outputs", True),
        ("outputs/m.pt", False),
        ("x/outputs/y", False),
        ("a.log", False),
        ("keep.log", False),
        ("checkpoints/c", False),
        ("src/checkpoints/c", False),
        ("a.py", False),
    ]:
        assert node(path, is_dir) == laptop.is_protected(path, is_dir), path
    assert all(isinstance(re.compile(rx), re.Pattern) for rx, _, _ in compile_for_node(patterns))
