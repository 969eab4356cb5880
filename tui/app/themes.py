"""Theme data files (``themes/*.toml``) -> validated Textual ``Theme`` objects.

Themes are data, not code, so users can add their own without touching Python. A theme file is
checked strictly: unknown keys are refused (with a suggestion), every problem in a file is reported
at once, and each error names the file, because a silently ignored typo in a colour key is a theme
that "does nothing" and nobody knows why.
"""

from __future__ import annotations

import difflib
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable

    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    from importlib.abc import Traversable

    import tomli as tomllib

COLOUR_KEYS: tuple[str, ...] = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "success",
    "warning",
    "error",
)
"""Colours every Tether theme must define, so a theme looks the same whatever Textual derives."""

REQUIRED_KEYS: tuple[str, ...] = ("name", "dark", *COLOUR_KEYS)
OPTIONAL_KEYS: tuple[str, ...] = ("ansi", "variables")
_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]*$")


class ThemeFileError(Exception):
    """A theme file is unreadable or invalid; the message names the file and every problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        if len(problems) == 1:
            message = f"{source}: {problems[0]}"
        else:
            listed = "\n".join(f"  - {problem}" for problem in problems)
            message = f"{source}: {len(problems)} problems:\n{listed}"
        super().__init__(message)


def theme_directory() -> Traversable:
    """Where the bundled theme files live.

    Installed, ``themes/`` is the package ``tui.themes``; in a source checkout that is not
    pip-installed it is the ``themes/`` folder next to ``tui/``.
    """
    try:
        return resources.files("tui.themes")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "themes"


def load_themes(directory: Traversable | None = None) -> dict[str, Theme]:
    """Load every ``*.toml`` in ``directory`` (sorted by file name) as a theme, keyed by name.

    Raises:
        ThemeFileError: a file is not valid TOML or not a valid theme, two files define the same
            name, or the folder is missing or holds no theme at all.
    """
    folder = theme_directory() if directory is None else directory
    if not folder.is_dir():
        raise ThemeFileError(str(folder), ["theme folder not found (was tether installed with its themes?)"])
    files = sorted(
        (entry for entry in folder.iterdir() if entry.is_file() and entry.name.endswith(".toml")),
        key=lambda entry: entry.name,
    )
    if not files:
        raise ThemeFileError(str(folder), ["no theme files (*.toml) found"])
    themes: dict[str, Theme] = {}
    origins: dict[str, str] = {}
    for entry in files:
        theme = parse_theme(entry.read_text(encoding="utf-8"), source=str(entry))
        if theme.name in themes:
            raise ThemeFileError(
                str(entry),
                [f"theme name {theme.name!r} is already defined by {origins[theme.name]}"],
            )
        themes[theme.name] = theme
        origins[theme.name] = str(entry)
    return themes


def parse_theme(text: str, source: str) -> Theme:
    """Parse one theme file's text; ``source`` (usually the path) is named in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # The decoder's message carries the line and column, which is what the user needs.
        raise ThemeFileError(source, [f"not valid TOML: {error}"]) from None
    problems = validate_theme_data(data)
    if problems:
        raise ThemeFileError(source, problems)
    return Theme(
        name=data["name"],
        dark=data["dark"],
        variables=dict(data.get("variables", {})),
        ansi=data.get("ansi", False),
        **{key: data[key] for key in COLOUR_KEYS},
    )


def validate_theme_data(data: dict[str, Any]) -> list[str]:
    """Every problem with a decoded theme table, in file order; empty when it is valid."""
    problems: list[str] = []
    known = REQUIRED_KEYS + OPTIONAL_KEYS
    for key in data:
        if key not in known:
            problems.append(f"unknown key {key!r}{_suggestion(key, known)}")
    for key in REQUIRED_KEYS:
        if key not in data:
            problems.append(f"missing required key {key!r}")

    name = data.get("name")
    if name is not None and not (isinstance(name, str) and _NAME_PATTERN.match(name)):
        problems.append(f"'name' must be lower-case letters, digits and dashes (like \"dark\"), not {name!r}")
    dark = data.get("dark")
    if dark is not None and not isinstance(dark, bool):
        problems.append(f"'dark' must be true or false, not {dark!r}")
    ansi = data.get("ansi", False)
    if not isinstance(ansi, bool):
        problems.append(f"'ansi' must be true or false, not {ansi!r}")
        ansi = False
    for key in COLOUR_KEYS:
        if key in data:
            problems.extend(_colour_problems(key, data[key], ansi=ansi))

    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        problems.append("'variables' must be a table of name = \"value\" strings")
    else:
        for key, value in variables.items():
            if not isinstance(value, str):
                problems.append(f"variables.{key} must be a string, not {value!r}")
            elif ansi and _looks_like_colour(value) and Color.parse(value).ansi is None:
                problems.append(
                    f'variables.{key} must be an ANSI colour in an ansi theme, not {value!r} (like "ansi_bright_blue")'
                )
    return problems


def _looks_like_colour(value: str) -> bool:
    try:
        Color.parse(value)
    except ColorParseError:
        return False
    return True


def _colour_problems(key: str, value: object, *, ansi: bool = False) -> list[str]:
    example = '"ansi_blue"' if ansi else '"#4C9BE8"'
    if not isinstance(value, str):
        return [f"{key!r} must be a colour string like {example}, not {value!r}"]
    try:
        colour = Color.parse(value)
    except ColorParseError:
        return [f"{key!r} is not a colour: {value!r} (use a form like {example})"]
    if ansi and colour.ansi is None:
        # One true colour in an ansi theme is drawn as itself, not in the terminal's palette.
        return [f"{key!r} must be an ANSI colour in an ansi theme, not {value!r} (use a form like {example})"]
    return []


def _suggestion(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
