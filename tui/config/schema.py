"""The machinery under tui/config.py: problems, the error that carries them, and a typed reader.

Reading a config never stops at the first mistake: every check records a :class:`Problem` in a
:class:`ProblemLog` and goes on with a default, and the log raises one :class:`ConfigError` holding
all of them at the end. A problem renders as one line a user can act on::

    tether.toml:7: workspace.remote_rot: unknown key 'remote_rot' in [workspace]; did you mean 'remote_root'?

Stdlib only, no Textual.
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tui.config.lines import KeyLines, KeyPath
from tui.errors import TetherError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config file: where (file, line, dotted key), what, and how to fix it."""

    path: Path
    line: int | None
    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        return f"{text}; {self.hint}" if self.hint else text


class ConfigError(TetherError):
    """Every problem found in a config file, raised once. ``str()`` gives one line per problem."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    def __str__(self) -> str:
        return self.message


def render_key(path: KeyPath) -> str:
    """``("layout", "panes", 2, "name")`` -> ``layout.panes[2].name`` (odd keys are quoted)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            shown = part if _BARE_KEY.fullmatch(part) else toml_value(part)
            text += f".{shown}" if text else shown
    return text


def section_name(path: KeyPath) -> str:
    """How a table is named in messages: ``[workspace]``, ``[ports.tensorboard]``."""
    return f"[{render_key(path)}]" if path else "the top level"


def display_path(path: Path) -> Path:
    """The path relative to the working folder when it is inside it: short, and still clickable."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return path


class ProblemLog:
    """Collects the problems of one file so that all of them are reported at once."""

    def __init__(self, path: Path, lines: KeyLines) -> None:
        self.path = path
        self.lines = lines
        self.problems: list[Problem] = []

    def add(self, key: KeyPath, message: str, hint: str = "") -> None:
        line = self.lines.line_of(key)
        self.problems.append(Problem(self.path, line, render_key(key), message, hint))

    def raise_if_any(self) -> None:
        if self.problems:
            # In file order, as an editor would list them.
            raise ConfigError(sorted(self.problems, key=lambda problem: problem.line or 0))


# -- values in messages ------------------------------------------------------------------------


def describe_value(value: object) -> str:
    """What a TOML value is, for "expected X, got Y" messages: ``a string 'abc'``."""
    if isinstance(value, bool):
        return f"a boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"an integer {value}"
    if isinstance(value, float):
        return f"a number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string {shown!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime.date, datetime.time)):
        return "a date/time"
    return type(value).__name__


def toml_value(value: object) -> str:
    """``value`` written as TOML, for hints ("write it as ...") and for `tether init`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{render_key((str(key),))} = {toml_value(item)}" for key, item in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to a misspelled ``word``, if one is close enough."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


# -- the reader --------------------------------------------------------------------------------

MISSING = object()


class TableReader:
    """Typed access to one TOML table. Each getter returns the value, or records a problem and
    returns the default, so reading goes on and every problem is found in one pass."""

    def __init__(self, log: ProblemLog, path: KeyPath, table: Mapping[str, object], known: Collection[str]) -> None:
        self.log = log
        self.path = path
        self.table = table
        self.known = known

    def get(self, key: str) -> object:
        return self.table.get(key, MISSING)

    def problem(self, key: str, message: str, hint: str = "") -> None:
        self.log.add(self.path + (key,), message, hint)

    def type_problem(self, key: str, expected: str, value: object, example: object) -> None:
        self.problem(key, f"expected {expected}, got {describe_value(value)}", self._type_hint(key, value, example))

    def _type_hint(self, key: str, value: object, example: object) -> str:
        quoted_number = isinstance(value, str) and value.strip().lstrip("-").isdigit()
        if isinstance(example, int) and not isinstance(example, bool) and quoted_number:
            return f"remove the quotes: {key} = {str(value).strip()}"
        if isinstance(example, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
            return f'put it in quotes: {key} = "{value}"'
        if isinstance(example, (list, tuple)) and isinstance(value, str):
            return f"write an array: {key} = {toml_value([value])}"
        return f"write it like {key} = {toml_value(example)}"

    def missing(self, key: str, example: object) -> None:
        """Report a required key that is absent, pointing at its section (or at line 1)."""
        setting = f"{key} = {toml_value(example)}"
        if any(isinstance(part, int) for part in self.path):  # an entry of an array
            hint = f"add {setting} to this entry"
        elif self.log.lines.has(self.path) or not self.path:
            hint = f"add {setting} under {section_name(self.path)}"
        else:
            hint = f"add a {section_name(self.path)} section with {setting}"
        self.problem(key, f"missing required key '{key}'", hint)

    # -- scalars --

    def string(self, key: str, default: str, *, example: str | None = None) -> str:
        value = self.get(key)
        if value is MISSING:
            return default
        if not isinstance(value, str):
            self.type_problem(key, "a string", value, example or default)
            return default
        return value

    def optional_string(self, key: str, *, example: str) -> str | None:
        value = self.get(key)
        if value is MISSING:
            return None
        if not isinstance(value, str):
            self.type_problem(key, "a string", value, example)
            return None
        return value

    def required_string(self, key: str, *, example: str) -> str | None:
        """The string, or None after recording why (missing, wrong type or empty)."""
        value = self.get(key)
        if value is MISSING:
            self.missing(key, example)
            return None
        if not isinstance(value, str):
            self.type_problem(key, "a string", value, example)
            return None
        if not value.strip():
            self.problem(key, "is empty", f"write it like {key} = {toml_value(example)}")
            return None
        return value

    def integer(self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.get(key)
        if value is MISSING:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            self.type_problem(key, "an integer", value, default)
            return default
        if not self._in_range(key, value, minimum, maximum, default):
            return default
        return value

    def optional_integer(self, key: str, *, minimum: int, example: int) -> int | None:
        value = self.get(key)
        if value is MISSING:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            self.type_problem(key, "an integer", value, example)
            return None
        return value if self._in_range(key, value, minimum, None, example) else None

    def number(self, key: str, default: float, *, above: float | None = None, at_most: float | None = None) -> float:
        """A float; integers are accepted too (``1`` for ``1.0``)."""
        value = self.get(key)
        if value is MISSING:
            return default
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            self.type_problem(key, "a number", value, default)
            return default
        too_low = above is not None and value <= above
        too_high = at_most is not None and value > at_most
        if too_low or too_high:
            bounds = f"greater than {above}" + (f" and at most {at_most}" if at_most is not None else "")
            self.problem(key, f"must be {bounds}, got {value}", f"write it like {key} = {toml_value(default)}")
            return default
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            self.type_problem(key, "true or false", value, default)
            return default
        return value

    def choice(self, key: str, default: str, choices: Collection[str]) -> str:
        value = self.string(key, default)
        if value in choices:
            return value
        allowed = ", ".join(f'"{choice}"' for choice in choices)
        close = suggest(value, choices)
        hint = f'did you mean "{close}"?' if close else f"write it like {key} = {toml_value(default)}"
        self.problem(key, f"{value!r} is not one of {allowed}", hint)
        return default

    def _in_range(self, key: str, value: int, minimum: int | None, maximum: int | None, example: int) -> bool:
        if (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
            return True
        if minimum is not None and maximum is not None:
            bounds = f"between {minimum} and {maximum}"
        elif minimum is not None:
            bounds = f"at least {minimum}"
        else:
            bounds = f"at most {maximum}"
        self.problem(key, f"must be {bounds}, got {value}", f"write it like {key} = {example}")
        return False

    # -- containers --

    def strings(self, key: str, default: tuple[str, ...] = (), *, example: str = "...") -> tuple[str, ...]:
        """An array of strings; each wrong element is reported at its own line."""
        value = self.get(key)
        if value is MISSING:
            return default
        if not isinstance(value, list):
            self.type_problem(key, "an array of strings", value, [example])
            return default
        good: list[str] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                good.append(item)
            else:
                self.log.add(
                    self.path + (key, index),
                    f"expected a string, got {describe_value(item)}",
                    f"put each entry in quotes, e.g. {toml_value([example])}",
                )
        return tuple(good)

    def subtable(self, key: str, *, example: str) -> Mapping[str, object]:
        """A sub-table; {} when absent or of the wrong type (reported)."""
        value = self.get(key)
        if value is MISSING:
            return {}
        if not isinstance(value, dict):
            self.problem(key, f"expected a table, got {describe_value(value)}", f"write it as {example}")
            return {}
        return value

    def reader(self, key: str, known: Collection[str], *, example: str) -> TableReader:
        return TableReader(self.log, self.path + (key,), self.subtable(key, example=example), known)

    # -- unknown keys --

    def report_unknown_keys(self, belongs_elsewhere: Mapping[str, str] | None = None) -> None:
        """Every key not in ``known``, with a suggestion: a close spelling, or the right section."""
        for key in self.table:
            if key not in self.known:
                self.problem(
                    key,
                    f"unknown key '{key}' in {section_name(self.path)}",
                    self._unknown_hint(key, belongs_elsewhere),
                )

    def _unknown_hint(self, key: str, belongs_elsewhere: Mapping[str, str] | None) -> str:
        elsewhere = (belongs_elsewhere or {}).get(key)
        if elsewhere is not None and elsewhere != render_key(self.path):
            return f"'{key}' belongs in [{elsewhere}]; move it there"
        close = suggest(key, self.known)
        if close:
            return f"did you mean '{close}'?"
        return "known keys: " + ", ".join(sorted(self.known)) if self.known else "remove it"
