"""launch.json merging: the user's comments, formatting and configurations survive byte for byte."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tui.debug.vscode import LaunchJsonError, write_launch_json
from tui.errors import TetherError

REMOTE = "/scratch/alice/proj"

USER_FILE = """\
{
    // Use IntelliSense to learn about possible attributes.
    "version": "0.2.0",
    "configurations": [
        {
            "name": "Python: current file", // run what is open
            "type": "debugpy",
            "request": "launch",
            "program": "${file}",
            "args": ["--url", "http://example.org/*/x", "say \\"hi\\" // not a comment"],
            /* keep the console */
            "console": "integratedTerminal",
        },
        {
            "name": "Tether: other", // another workspace's: not ours
            "type": "debugpy",
            "request": "attach",
            "connect": {"host": "localhost", "port": 7000},
        },
    ],
    "compounds": [],
}
"""

_STRING_OR_COMMENT = re.compile(r'("(?:[^"\\]|\\.)*")|//[^\n]*|/\*.*?\*/', re.DOTALL)
_STRING_OR_TRAILING_COMMA = re.compile(r'("(?:[^"\\]|\\.)*")|,(\s*[\]}])')


def jsonc_loads(text: str) -> Any:
    """An independent JSONC reader for the tests: drop comments, then trailing commas."""
    text = _STRING_OR_COMMENT.sub(lambda m: m.group(1) or "", text)
    return json.loads(_STRING_OR_TRAILING_COMMA.sub(lambda m: m.group(1) or m.group(2), text))


def names(path: Path) -> list[str]:
    return [c["name"] for c in jsonc_loads(path.read_text())["configurations"]]


def ours(path: Path, prefix: str = "Tether: ws") -> list[dict[str, Any]]:
    return [c for c in jsonc_loads(path.read_text())["configurations"] if c["name"].startswith(prefix)]


def inserted_only(before: str, after: str) -> str:
    """The text ``after`` adds to ``before``, asserting nothing of ``before`` changed or went away."""
    prefix = len(os.path.commonprefix([before, after]))
    suffix = len(os.path.commonprefix([before[prefix:][::-1], after[prefix:][::-1]]))
    assert prefix + suffix == len(before), "text outside the inserted part changed"
    return after[prefix : len(after) - suffix]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / ".vscode").mkdir()
    return tmp_path


def test_merge_keeps_the_users_file_and_adds_ours(folder: Path) -> None:
    launch = folder / ".vscode" / "launch.json"
    launch.write_text(USER_FILE)
    assert write_launch_json(folder, "ws", folder, REMOTE, [5678]) == launch
    text = launch.read_text()
    added = inserted_only(USER_FILE, text)
    assert '"Tether: ws"' in added and "Python: current file" not in added
    assert names(launch) == ["Python: current file", "Tether: other", "Tether: ws"]
    assert jsonc_loads(text)["configurations"][0]["args"][2] == 'say "hi" // not a comment'
    assert ours(launch) == [
        {
            "name": "Tether: ws",
            "type": "debugpy",
            "request": "attach",
            "connect": {"host": "localhost", "port": 5678},
            "pathMappings": [{"localRoot": "${workspaceFolder}", "remoteRoot": REMOTE}],
            "justMyCode": False,
        }
    ]
    assert [p.name for p in launch.parent.iterdir()] == ["launch.json"]  # no temporary file left


def test_merging_twice_is_idempotent(folder: Path) -> None:
    launch = folder / ".vscode" / "launch.json"
    launch.write_text(USER_FILE)
    write_launch_json(folder, "ws", folder, REMOTE, [5678, 5679])
    first = launch.read_bytes()
    write_launch_json(folder, "ws", folder, REMOTE, [5678, 5679])
    assert launch.read_bytes() == first
    assert names(launch).count("Tether: ws (rank 0)") == 1


def test_two_ranks_get_two_ports(folder: Path) -> None:
    write_launch_json(folder, "ws", folder, REMOTE, [6100, 6101])
    configurations = ours(folder / ".vscode" / "launch.json")
    assert [(c["name"], c["connect"]["port"]) for c in configurations] == [
        ("Tether: ws (rank 0)", 6100),
        ("Tether: ws (rank 1)", 6101),
    ]


def test_ours_are_replaced_in_place_and_extra_ranks_removed(folder: Path) -> None:
    launch = folder / ".vscode" / "launch.json"
    launch.write_text(USER_FILE)
    write_launch_json(folder, "ws", folder, REMOTE, [5678, 5679])
    # The user adds a configuration after ours; ours must stay where they are.
    end_of_list = '    ],\n    "compounds"'
    text = launch.read_text().replace(end_of_list, '    {"name": "Mine", "type": "node"},\n' + end_of_list)
    launch.write_text(text)
    write_launch_json(folder, "ws", folder, "/scratch/alice/other", [7001])
    assert names(launch) == ["Python: current file", "Tether: other", "Tether: ws", "Mine"]
    assert ours(launch)[0]["connect"]["port"] == 7001
    assert ours(launch)[0]["pathMappings"][0]["remoteRoot"] == "/scratch/alice/other"
    again = launch.read_text()
    write_launch_json(folder, "ws", folder, REMOTE, [7001, 7002])  # grows back
    assert names(launch) == [
        "Python: current file",
        "Tether: other",
        "Tether: ws (rank 0)",
        "Tether: ws (rank 1)",
        "Mine",
    ]
    write_launch_json(folder, "ws", folder, "/scratch/alice/other", [7001])
    assert launch.read_text() == again


def test_only_this_workspaces_names_are_ours(folder: Path) -> None:
    launch = folder / ".vscode" / "launch.json"
    others = ["Tether: wsx", "Tether: ws (rank one)", "Tether: other"]
    launch.write_text(json.dumps({"configurations": [{"name": n} for n in [*others, "Tether: ws"]]}))
    write_launch_json(folder, "ws", folder, REMOTE, [5000, 5001])
    assert names(launch) == [*others, "Tether: ws (rank 0)", "Tether: ws (rank 1)"]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ('{\n  "configurations": [\n    {"name": "a"}\n    {"name": "b"}\n  ]\n}\n', 4, "expected ','"),
        ('{\n  /* never closed\n  "configurations": []\n}\n', 2, "comment is never closed"),
        ('{\n  "configurations": {"name": "a"}\n}\n', 2, '"configurations" must be a list'),
        ("[\n]\n", 1, "must hold an object"),
        ('{\n  "version": "0.2.0",\n  "configurations": [],\n}\n}\n', 5, "expected the end of the file"),
        ("{\n  \"name\": 'single'\n}\n", 2, "unexpected"),
    ],
)
def test_unparseable_file_is_left_alone(folder: Path, text: str, line: int, problem: str) -> None:
    launch = folder / ".vscode" / "launch.json"
    launch.write_text(text)
    before = launch.stat().st_mtime_ns
    with pytest.raises(LaunchJsonError) as info:
        write_launch_json(folder, "ws", folder, REMOTE, [5678])
    assert str(launch) in str(info.value) and f"launch.json:{line}:" in str(info.value)
    assert problem in str(info.value)
    assert info.value.line == line and info.value.fix
    assert launch.read_text() == text and launch.stat().st_mtime_ns == before
    assert [p.name for p in launch.parent.iterdir()] == ["launch.json"]


def test_missing_file_is_created(tmp_path: Path) -> None:
    launch = write_launch_json(tmp_path, "ws", tmp_path / "src", REMOTE, [5678])
    assert launch == tmp_path / ".vscode" / "launch.json"
    data = json.loads(launch.read_text())  # plain JSON
    assert data["version"] == "0.2.0"
    mapping = {"localRoot": str((tmp_path / "src").resolve()), "remoteRoot": REMOTE}
    assert data["configurations"][0]["pathMappings"] == [mapping]


@pytest.mark.parametrize(
    "text",
    [
        '{\n  "configurations": [\n    // nothing yet\n  ]\n}\n',
        '{"configurations": [ /* none */ ]}',
        '{\n  "version": "0.2.0" // no list\n}\n',
        '{\n  "version": "0.2.0", // no list, trailing comma\n}\n',
        "{\n  // empty\n}\n",
    ],
)
def test_empty_configurations_or_none_at_all(folder: Path, text: str) -> None:
    launch = folder / ".vscode" / "launch.json"
    launch.write_text(text)
    write_launch_json(folder, "ws", folder, REMOTE, [5678])
    assert names(launch) == ["Tether: ws"]
    after = iter(launch.read_text())
    assert all(char in after for char in text), "some of the user's text was removed or reordered"


def test_crlf_and_file_mode_are_kept(folder: Path) -> None:
    launch = folder / ".vscode" / "launch.json"
    launch.write_bytes(USER_FILE.replace("\n", "\r\n").encode())
    launch.chmod(0o600)
    write_launch_json(folder, "ws", folder, REMOTE, [5678])
    raw = launch.read_bytes()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert launch.stat().st_mode & 0o777 == 0o600
    assert names(launch)[-1] == "Tether: ws"


def test_bad_arguments_are_refused(folder: Path) -> None:
    with pytest.raises(TetherError, match="not an absolute path"):
        write_launch_json(folder, "ws", folder, "proj", [5678])
    with pytest.raises(TetherError, match="not a TCP port"):
        write_launch_json(folder, "ws", folder, REMOTE, [70000])
    with pytest.raises(TetherError, match="no debug ports"):
        write_launch_json(folder, "ws", folder, REMOTE, [])
    assert not (folder / ".vscode" / "launch.json").exists()
