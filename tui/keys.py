"""The console's actions that have keys, and what a key may be: for `[ui.keys]` in tether.toml.

Textual-free, so the config can check a remapping before the console starts; the console's own
bindings (tui/app/app.py) carry the same ids as ``tether.<action>`` (a test keeps the two equal).
"""

from __future__ import annotations

import re

DEFAULT_KEYS: dict[str, str] = {
    "help": "question_mark",
    "detach": "q",
    "attach": "a",
    "logs": "l",
    "restart": "r",
    "stop": "x",
    "theme": "t",
    "new_job": "A",
    "reconnect": "R",
    "sync_halt": "s",
    "palette": "ctrl+p",
    "debug": "b",
}
"""Action (the binding id without ``tether.``) -> its default key, in Textual's key names."""

DEBUGGER_KEYS: dict[str, str] = {
    "debug_continue": "f5",
    "debug_breakpoint": "f9",
    "debug_breakpoint_edit": "shift+f9",
    "debug_over": "f10",
    "debug_into": "f11",
    "debug_out": "shift+f11",
    "debug_pause": "f6",
    "debug_exceptions": "ctrl+e",
    "debug_evaluate": "e",
    "debug_watch": "w",
    "debug_back": "escape",
    "debug_together": "ctrl+a",
    "debug_next": "right_square_bracket",
    "debug_previous": "left_square_bracket",
}
"""The debugger screen's actions. They share ``[ui.keys]`` with the
dashboard's, but a key may serve one action on each screen: F5 can restart the run on the dashboard
and continue in the debugger."""

KEY_SCOPES: tuple[dict[str, str], ...] = (DEFAULT_KEYS, DEBUGGER_KEYS)
"""Where keys must not clash: on the dashboard, and on the debugger screen."""

ALL_KEYS: dict[str, str] = DEFAULT_KEYS | DEBUGGER_KEYS

BINDING_PREFIX = "tether."

# Textual's names for the keys that are not one printable character (textual.keys.Keys).
NAMED_KEYS = frozenset(
    [
        "escape",
        "enter",
        "tab",
        "space",
        "backspace",
        "delete",
        "insert",
        "home",
        "end",
        "pageup",
        "pagedown",
        "up",
        "down",
        "left",
        "right",
    ]
    + [f"f{n}" for n in range(1, 25)]
)
# One printable character is written as itself in tether.toml, and Textual names some of them.
CHARACTER_NAMES: dict[str, str] = {
    "?": "question_mark",
    "!": "exclamation_mark",
    "@": "at",
    "#": "number_sign",
    "$": "dollar_sign",
    "%": "percent_sign",
    "^": "circumflex_accent",
    "&": "ampersand",
    "*": "asterisk",
    "(": "left_parenthesis",
    ")": "right_parenthesis",
    "-": "minus",
    "_": "underscore",
    "+": "plus",
    "=": "equals_sign",
    "[": "left_square_bracket",
    "]": "right_square_bracket",
    "{": "left_curly_bracket",
    "}": "right_curly_bracket",
    "|": "vertical_line",
    "\\": "backslash",
    ";": "semicolon",
    ":": "colon",
    "'": "apostrophe",
    '"': "quotation_mark",
    ",": "comma",
    ".": "full_stop",
    "/": "slash",
    "<": "less_than_sign",
    ">": "greater_than_sign",
    "`": "grave_accent",
    "~": "tilde",
}
MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")
_LETTER_OR_DIGIT = re.compile(r"^[A-Za-z0-9]$")


def key_name(text: str) -> str | None:
    """``text`` as Textual names the key (``"?"`` -> ``"question_mark"``, ``"ctrl+R"`` ->
    ``"ctrl+r"``), or None when it is no key."""
    *mods, key = text.strip().split("+") if text.strip() != "+" else ["+"]
    if any(mod.lower() not in MODIFIERS for mod in mods) or not key:
        return None
    prefix = "".join(f"{mod.lower()}+" for mod in mods)
    if _LETTER_OR_DIGIT.match(key):
        return prefix + (key.lower() if mods else key)
    if key in CHARACTER_NAMES:
        return prefix + CHARACTER_NAMES[key]
    if key.lower() in NAMED_KEYS or key in CHARACTER_NAMES.values():
        return prefix + key.lower()
    return None


def binding_keymap(keys: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """``[ui.keys]`` as read (action, Textual key name) -> a keymap for ``App.set_keymap``."""
    return {f"{BINDING_PREFIX}{action}": key for action, key in keys}


def shown_keys(keys: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    """Action -> the key in force, as the user writes it in tether.toml (``"?"``, ``"f5"``,
    ``"ctrl+x"``): for hints in messages ("r: restart"), which must follow ``[ui.keys]``."""
    typed = {name: char for char, name in CHARACTER_NAMES.items()}
    chosen = dict(ALL_KEYS) | dict(keys)
    return {action: typed.get(key.split(",")[0], key.split(",")[0]) for action, key in chosen.items()}
