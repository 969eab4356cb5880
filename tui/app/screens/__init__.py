"""Screens pushed over the console: help and the password prompt."""

from tui.app.screens.help import HelpScreen, KeyHelp
from tui.app.screens.password import PasswordScreen

__all__ = ["HelpScreen", "KeyHelp", "PasswordScreen"]
