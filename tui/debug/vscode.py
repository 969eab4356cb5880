"""``.vscode/launch.json``: Tether's attach configurations merged into the user's own file.

VS Code reads launch.json as JSON with comments (``//``, ``/* */``, trailing commas), and people
keep notes and other configurations there. A JSON round trip would drop the comments, so the merge
works on the text: a small JSONC scanner finds the ``configurations`` array and the span of each
element, and only Tether's own elements (named ``Tether: <workspace>`` or ``Tether: <workspace>
(rank N)``) are replaced in place, removed or appended. Every other byte stays as it was. A file
that does not parse is never rewritten: the error names the file and the line. Writes are atomic.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from tui.errors import TetherError
from tui.node.protocol_dap import PathMapping

NAME_PREFIX = "Tether: "
WORKSPACE_FOLDER = "${workspaceFolder}"
_BOM = "\ufeff"


class LaunchJsonError(TetherError):
    """launch.json cannot be parsed or has an unexpected shape; the file was left as it was."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(
            f"{path}:{line}: {problem}",
            fix="fix or remove that part of launch.json, then run tether again (nothing was changed)",
        )
        self.path = path
        self.line = line


# ---- the configurations we own -----------------------------------------------------------------


class Connect(TypedDict):
    host: str
    port: int


class AttachConfiguration(TypedDict):
    """One of launch.json's configurations: VS Code's debugpy attach, through the tunnel."""

    name: str
    type: str
    request: str
    connect: Connect
    pathMappings: list[PathMapping]
    justMyCode: bool


def configuration_name(workspace_name: str, rank: int | None) -> str:
    base = f"{NAME_PREFIX}{workspace_name}"
    return base if rank is None else f"{base} (rank {rank})"


def is_ours(name: object, workspace_name: str) -> bool:
    """True for this workspace's configurations; "Tether: other" or "Tether: webapp2" stay."""
    base = configuration_name(workspace_name, None)
    if not isinstance(name, str):
        return False
    return name == base or re.fullmatch(re.escape(base) + r" \(rank \d+\)", name) is not None


def attach_configurations(
    folder: Path, workspace_name: str, local_root: Path, remote_root: str, ports: list[int]
) -> list[AttachConfiguration]:
    """One debugpy attach configuration per rank (port), reaching the node through the tunnel."""
    if not ports:
        raise TetherError("no debug ports to write into launch.json", fix="give at least one port")
    for port in ports:
        if not isinstance(port, int) or not 0 < port < 65536:
            raise TetherError(f"debug port {port!r} is not a TCP port", fix="use a number from 1 to 65535")
    if not remote_root.startswith("/"):
        raise TetherError(
            f"remote root {remote_root!r} is not an absolute path",
            fix="use the node's absolute path in tether.toml",
        )
    local = WORKSPACE_FOLDER if local_root.resolve() == folder.resolve() else str(local_root.resolve())
    return [
        {
            "name": configuration_name(workspace_name, rank if len(ports) > 1 else None),
            "type": "debugpy",
            "request": "attach",
            "connect": {"host": "localhost", "port": port},
            "pathMappings": [{"localRoot": local, "remoteRoot": remote_root}],
            "justMyCode": False,
        }
        for rank, port in enumerate(ports)
    ]


# ---- a JSONC scanner that keeps positions ------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r\n]+)
      | (?P<line_comment>//[^\n]*)
      | (?P<block_comment>/\*.*?\*/)
      | (?P<string>"(?:[^"\\\x00-\x1f]|\\.)*")
      | (?P<punct>[{}\[\]:,])
      | (?P<literal>-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass
class _Token:
    kind: str  # "{", "}", "[", "]", ":", ",", "string", "literal", "end"
    start: int
    end: int


@dataclass
class _Node:
    """A parsed value with its span ``[start, end)`` in the text."""

    kind: str  # "object", "array", "value"
    start: int
    end: int
    value: Any = None  # for "value": the Python value
    items: list[_Node] = field(default_factory=list)  # array elements, object values
    keys: list[str] = field(default_factory=list)  # object keys, parallel to items
    key_starts: list[int] = field(default_factory=list)  # object: where each "key" starts
    commas: list[int | None] = field(default_factory=list)  # position of the comma after each item


class _Parser:
    def __init__(self, text: str, path: Path) -> None:
        self.text = text
        self.path = path
        self.tokens = self._tokenize()
        self.index = 0

    def error(self, position: int, problem: str) -> LaunchJsonError:
        return LaunchJsonError(self.path, self.text.count("\n", 0, position) + 1, problem)

    def _tokenize(self) -> list[_Token]:
        tokens, position, text = [], 0, self.text
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None:
                if text.startswith("/*", position):
                    raise self.error(position, "a /* comment is never closed")
                if text.startswith('"', position):
                    raise self.error(position, "a string is not closed on its line")
                raise self.error(position, f"unexpected {text[position]!r}")
            kind = match.lastgroup or ""
            if kind in ("punct", "string", "literal"):
                tokens.append(_Token(match.group() if kind == "punct" else kind, match.start(), match.end()))
            position = match.end()
        tokens.append(_Token("end", len(text), len(text)))
        return tokens

    def take(self, kind: str, what: str) -> _Token:
        token = self.tokens[self.index]
        if token.kind != kind:
            raise self.error(token.start, f"expected {what}, found {self.describe(token)}")
        self.index += 1
        return token

    def peek(self) -> str:
        return self.tokens[self.index].kind

    def document(self) -> _Node:
        node = self.value()
        self.take("end", "the end of the file")
        return node

    def value(self) -> _Node:
        token = self.tokens[self.index]
        if token.kind in ("{", "["):
            return self.container(token.kind)
        if token.kind in ("string", "literal"):
            self.index += 1
            return _Node("value", token.start, token.end, self.decode(token))
        raise self.error(token.start, f"expected a value, found {self.describe(token)}")

    def describe(self, token: _Token) -> str:
        return "the end of the file" if token.kind == "end" else repr(self.text[token.start : token.end][:20])

    def decode(self, token: _Token) -> Any:
        try:
            return json.loads(self.text[token.start : token.end])
        except ValueError as exc:  # JSONDecodeError names the problem; int() past its digit limit does not
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise self.error(token.start, f"bad string or number ({detail})") from None

    def container(self, opening: str) -> _Node:
        closing = "}" if opening == "{" else "]"
        start = self.take(opening, opening).start
        node = _Node("object" if opening == "{" else "array", start, start)
        while self.peek() != closing:
            if opening == "{":
                key = self.take("string", "a quoted key or '}'")
                node.keys.append(self.decode(key))
                node.key_starts.append(key.start)
                self.take(":", "':'")
            node.items.append(self.value())
            if self.peek() != ",":
                node.commas.append(None)
                break
            node.commas.append(self.take(",", "','").start)  # a trailing comma is allowed
        node.end = self.take(closing, f"',' or '{closing}'").end
        return node


# ---- the text-level merge ----------------------------------------------------------------------


def _indent_unit(text: str) -> str:
    match = re.search(r"\n([ \t]+)\S", text)
    return match.group(1) if match else "    "


def _line_indent(text: str, position: int) -> str:
    line_start = text.rfind("\n", 0, position) + 1
    return re.match(r"[ \t]*", text[line_start:]).group()  # type: ignore[union-attr]


def _render(configurations: list[AttachConfiguration], indent: str, unit: str, newline: str) -> str:
    """Configurations as JSON text, each starting at ``indent``, separated by commas."""
    parts = []
    for configuration in configurations:
        dumped = json.dumps(configuration, indent=unit)
        parts.append(dumped.replace("\n", newline + indent))
    return ("," + newline + indent).join(parts)


def _removal_span(text: str, array: _Node, index: int) -> tuple[int, int]:
    """The text to delete to remove element ``index`` with its comma (and its line, if it is alone)."""
    item, comma = array.items[index], array.commas[index]
    if comma is not None:
        start, end = item.start, comma + 1
    else:  # the last element without a trailing comma: take the comma before it instead
        start, end = (array.commas[index - 1] or item.start), item.end
    before = text.rfind("\n", 0, start) + 1
    if comma is not None and not text[before:start].strip():
        start = before
        after = re.match(r"[ \t]*\r?\n", text[end:])
        if after:
            end += after.end()
    return start, end


def _append_edits(text: str, array: _Node, rendered: str, newline: str) -> list[tuple[int, int, str]]:
    """Add ``rendered`` after the last item of an array or object, after that item's own comment."""
    last, comma = array.items[-1], array.commas[-1]
    after = last.end if comma is None else comma + 1
    tail = re.match(r"[ \t]*(?://[^\r\n]*)?", text[after : array.end - 1])
    stop = after + tail.end() if tail and text.startswith(("\n", "\r"), after + tail.end()) else after
    if comma is None:
        return [(last.end, last.end, ","), (stop, stop, f"{newline}{rendered}")]
    return [(stop, stop, f"{newline}{rendered},")]


def _insert_edits(text: str, node: _Node, content: str, newline: str) -> list[tuple[int, int, str]]:
    """Put ``content`` (indented lines) into an empty array or object, keeping its comments."""
    close = node.end - 1
    line_start = text.rfind("\n", node.start, close) + 1
    if line_start > 0 and not text[line_start:close].strip():  # "]" alone on its line
        return [(line_start, line_start, f"{content}{newline}")]
    return [(close, close, f"{newline}{content}{newline}{_line_indent(text, node.start)}")]


def merge_launch_json(
    text: str, configurations: list[AttachConfiguration], workspace_name: str, path: Path = Path("launch.json")
) -> str:
    """``text`` (a launch.json) with this workspace's configurations replaced by ``configurations``.

    Pure function; raises LaunchJsonError (naming ``path`` and the line) when ``text`` does not
    parse or has no room for configurations.
    """
    bom = _BOM if text.startswith(_BOM) else ""
    body = text[len(bom) :]
    newline = "\r\n" if "\r\n" in body else "\n"
    unit = _indent_unit(body)
    parser = _Parser(body, path)
    root = parser.document()
    if root.kind != "object":
        raise parser.error(root.start, "launch.json must hold an object ({ ... })")
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied from the end
    if "configurations" not in root.keys:
        indent = unit
        rendered = _render(configurations, indent + unit, unit, newline)
        member = f'"configurations": [{newline}{indent}{unit}{rendered}{newline}{indent}]'
        if root.items:
            edits.extend(_append_edits(body, root, f"{indent}{member}", newline))
        else:
            edits.extend(_insert_edits(body, root, f"{indent}{member}", newline))
    else:
        array = root.items[root.keys.index("configurations")]
        if array.kind != "array":
            raise parser.error(array.start, '"configurations" must be a list ([ ... ])')
        ours = [i for i, item in enumerate(array.items) if is_ours(_name_of(item), workspace_name)]
        if array.items:
            indent = _line_indent(body, array.items[0].start)
            if indent == _line_indent(body, array.start):  # elements on the bracket's line
                indent += unit
        else:
            indent = _line_indent(body, array.start) + unit
        rendered = _render(configurations, indent, unit, newline)
        if ours:
            first = array.items[ours[0]]
            edits.append((first.start, first.end, rendered))
            edits.extend((*_removal_span(body, array, i), "") for i in ours[1:])
        elif array.items:
            edits.extend(_append_edits(body, array, f"{indent}{rendered}", newline))
        else:
            edits.extend(_insert_edits(body, array, f"{indent}{rendered}", newline))
    for start, end, replacement in sorted(edits, reverse=True):
        body = body[:start] + replacement + body[end:]
    return bom + body


def _name_of(node: _Node) -> object:
    """The "name" of a configuration object; None for anything else."""
    if node.kind == "object" and "name" in node.keys:
        value = node.items[node.keys.index("name")]
        return value.value if value.kind == "value" else None
    return None


def new_launch_json(configurations: list[AttachConfiguration]) -> str:
    return json.dumps({"version": "0.2.0", "configurations": configurations}, indent=4) + "\n"


def write_launch_json(folder: Path, workspace_name: str, local_root: Path, remote_root: str, ports: list[int]) -> Path:
    """Create or update ``folder/.vscode/launch.json`` with one attach configuration per port.

    ``folder`` is the folder VS Code opens; when ``local_root`` is that folder, the mapping says
    ``${workspaceFolder}`` so the file stays valid if the folder moves. Returns the file's path.
    """
    configurations = attach_configurations(folder, workspace_name, local_root, remote_root, ports)
    path = folder / ".vscode" / "launch.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = None
    if raw is None or not raw.strip():
        text = new_launch_json(configurations)
    else:
        try:
            original = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise LaunchJsonError(path, line, "the file is not UTF-8 text") from None
        text = merge_launch_json(original, configurations, workspace_name, path)
        if text == original:
            return path
    _write_atomically(path, text)
    return path


def _write_atomically(path: Path, text: str) -> None:
    """Temporary file in the same folder, fsync, rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".launch.json.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
