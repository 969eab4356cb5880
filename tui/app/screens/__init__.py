"""Screens pushed over the console: help, the password prompt, the run's logs."""

from tui.app.screens.help import HelpScreen, KeyHelp
from tui.app.screens.logs import LogsScreen
from tui.app.screens.password import PasswordScreen

__all__ = ["HelpScreen", "KeyHelp", "LogsScreen", "PasswordScreen"]
