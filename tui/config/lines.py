"""Where each key of a TOML text is written, so that a problem can name its line.

``tomllib`` returns values without positions. This scanner walks the raw text once and records
the line of every table header, every ``key =`` (dotted keys and inline tables included) and every
array element. It runs on text that ``tomllib`` already accepted, so it can trust the syntax; the
one exception is :func:`find_duplicate_key`, which runs on text tomllib refused and is defensive.

A key path is a tuple of table keys and array indexes: ``("layout", "panes", 2, "command")``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

KeyPath = tuple[str | int, ...]

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}#\r\n")


class KeyLines:
    """The line of each key path of one TOML text (1-based)."""

    def __init__(self, lines: dict[KeyPath, int]) -> None:
        self._lines = lines

    @classmethod
    def scan(cls, text: str) -> KeyLines:
        scanner = _Scanner(text)
        try:
            scanner.scan()
        except (IndexError, ValueError, tomllib.TOMLDecodeError):
            # A scanner bug must never hide the real problem: keep the lines found so far.
            pass
        return cls(scanner.lines)

    def has(self, path: KeyPath) -> bool:
        """Whether ``path`` is written in the file (as a header, a key or an implied table)."""
        return path in self._lines

    def line_of(self, path: KeyPath) -> int:
        """The line of ``path``, else of its nearest written parent, else 1.

        So a missing key points at its section header, and a key inside an inline table at least
        at the line of the key holding the table.
        """
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return 1


def find_duplicate_key(text: str) -> int | None:
    """The line where a key or table is defined a second time, or None if none is found.

    tomllib reports "Cannot overwrite a value" without a useful position; this finds it.
    """
    scanner = _Scanner(text)
    try:
        scanner.scan()
    except (IndexError, ValueError, tomllib.TOMLDecodeError):
        pass
    return scanner.duplicate_line


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


def split_toml_error(message: str, text: str) -> tuple[str, int, int | None]:
    """Split tomllib's message into (what, line, column); "end of document" means the last line."""
    match = _TOML_POSITION.search(message)
    if match:
        return message[: match.start()], int(match.group(1)), int(match.group(2))
    end = _TOML_AT_END.search(message)
    what = message[: end.start()] if end else message
    return what, max(1, len(text.splitlines())), None


class _Scanner:
    """A single pass over valid TOML text that records where keys are."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self.duplicate_line: int | None = None
        self._defined: set[KeyPath] = set()
        self._array_table_counts: dict[KeyPath, int] = {}

    # -- the document ---------------------------------------------------------------------------

    def scan(self) -> None:
        table: KeyPath = ()
        while True:
            start = self.pos
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            if self._peek() == "[":
                table = self._header()
            else:
                self._key_value(table)
            self._check_progress(start)

    def _header(self) -> KeyPath:
        line = self.line
        is_array = self.text.startswith("[[", self.pos)
        self.pos += 2 if is_array else 1
        key: KeyPath = self._key()
        self.pos += 2 if is_array else 1
        if is_array:
            index = self._array_table_counts.get(key, 0)
            self._array_table_counts[key] = index + 1
            self._record(key, line, defines=False)
            key = key + (index,)
        self._record(key, line, defines=True)
        return key

    def _key_value(self, table: KeyPath) -> None:
        line = self.line
        path = table + self._key()
        self._expect("=")
        self._record(path, line, defines=True)
        self._skip_blank(newlines=False)
        self._value(path)

    def _record(self, path: KeyPath, line: int, *, defines: bool) -> None:
        if defines and path in self._defined and self.duplicate_line is None:
            self.duplicate_line = line
        if defines:
            self._defined.add(path)
        # Parents implied by a dotted key get the line where they first appear.
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], line)

    # -- keys -----------------------------------------------------------------------------------

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            parts.append(self._key_part())
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self.pos += 1

    def _key_part(self) -> str:
        start = self.pos
        if self._peek() == '"':
            self._basic_string()
            return str(tomllib.loads("k = " + self.text[start : self.pos])["k"])
        if self._peek() == "'":
            self._literal_string()
            return self.text[start + 1 : self.pos - 1]
        while self.pos < len(self.text) and self.text[self.pos] in _BARE_KEY_CHARS:
            self.pos += 1
        if self.pos == start:
            raise ValueError("expected a key")
        return self.text[start : self.pos]

    # -- values ---------------------------------------------------------------------------------

    def _value(self, path: KeyPath) -> None:
        if self.text.startswith('"""', self.pos):
            self._multiline_string('"""')
        elif self.text.startswith("'''", self.pos):
            self._multiline_string("'''")
        elif self._peek() == '"':
            self._basic_string()
        elif self._peek() == "'":
            self._literal_string()
        elif self._peek() == "[":
            self._array(path)
        elif self._peek() == "{":
            self._inline_table(path)
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in _SCALAR_END:
                self.pos += 1

    def _array(self, path: KeyPath) -> None:
        self.pos += 1
        for index in _count():
            start = self.pos
            self._skip_blank(newlines=True)
            if self._peek() == "]":
                self.pos += 1
                return
            self._record(path + (index,), self.line, defines=False)
            self._value(path + (index,))
            self._skip_blank(newlines=True)
            if self._peek() == ",":
                self.pos += 1
            self._check_progress(start)

    def _inline_table(self, path: KeyPath) -> None:
        self.pos += 1
        while True:
            start = self.pos
            self._skip_blank(newlines=True)
            if self._peek() == "}":
                self.pos += 1
                return
            line = self.line
            key = path + self._key()
            self._expect("=")
            self._record(key, line, defines=True)
            self._skip_blank(newlines=False)
            self._value(key)
            self._skip_blank(newlines=True)
            if self._peek() == ",":
                self.pos += 1
            self._check_progress(start)

    def _basic_string(self) -> None:
        self.pos += 1
        while self.text[self.pos] != '"':
            if self.text[self.pos] == "\n":
                raise ValueError("unterminated string")
            self.pos += 2 if self.text[self.pos] == "\\" else 1
        self.pos += 1

    def _literal_string(self) -> None:
        end = self.text.index("'", self.pos + 1)
        if "\n" in self.text[self.pos : end]:
            raise ValueError("unterminated string")
        self.pos = end + 1

    def _multiline_string(self, delimiter: str) -> None:
        self.pos += 3
        while not self.text.startswith(delimiter, self.pos):
            if self.text[self.pos] == "\\" and delimiter == '"""':
                self._advance()
            self._advance()
        self.pos += 3
        # Up to two quotes right after the delimiter still belong to the string.
        for _ in range(2):
            if self.text.startswith(delimiter[0], self.pos):
                self.pos += 1

    # -- characters -----------------------------------------------------------------------------

    def _check_progress(self, start: int) -> None:
        if self.pos <= start:  # on text that is not what we expect, stop rather than spin
            raise ValueError("scanner stuck")

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _advance(self) -> None:
        if self.text[self.pos] == "\n":
            self.line += 1
        self.pos += 1

    def _expect(self, char: str) -> None:
        self._skip_blank(newlines=False)
        if self._peek() != char:
            raise ValueError(f"expected {char!r}")
        self.pos += 1

    def _skip_blank(self, *, newlines: bool) -> None:
        """Skip spaces, tabs and comments; also line breaks when ``newlines``."""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t":
                self.pos += 1
            elif char == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            elif newlines and char in "\r\n":
                self._advance()
            else:
                return


def _count() -> Iterator[int]:
    index = 0
    while True:
        yield index
        index += 1
