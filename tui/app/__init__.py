"""The console (Textual). It shows core state and sends core commands, nothing more."""

from tui.app.app import DETACHED, DOWN, TetherApp
from tui.app.themes import ThemeFileError, load_themes

__all__ = ["DETACHED", "DOWN", "TetherApp", "ThemeFileError", "load_themes"]
