"""Screens pushed over the console: help, the password prompt, the run's logs, a sync halt, a confirmation."""

from tui.app.screens.confirm import ConfirmScreen
from tui.app.screens.help import HelpScreen, KeyHelp
from tui.app.screens.logs import LogsScreen
from tui.app.screens.password import PasswordScreen
from tui.app.screens.sync_halt import SyncHaltScreen

__all__ = ["ConfirmScreen", "HelpScreen", "KeyHelp", "LogsScreen", "PasswordScreen", "SyncHaltScreen"]
