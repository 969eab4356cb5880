"""How the console tells the user what needs them: a notification, and (``[ui] terminal_alert``) a
bell or a desktop notification for one who is in another window; errors also in the event log."""

from __future__ import annotations

from textual.app import App

from tui.alerts import Alert, terminal_sequence
from tui.app.widgets import EventLog, LogLine


class Alerting(App[str]):
    """The app's alerting (a base of ``TetherApp``, shared by the parts that alert)."""

    terminal_alert: str  # [ui] terminal_alert
    terminal_writes: list[str]  # what alerts wrote to the terminal, oldest first

    def _report_error(self, text: str) -> None:
        self.query_one(EventLog).add_line(LogLine(f"error: {text}", "error"))
        self.notify(text, title="Tether", severity="error")

    def _alert(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.notify(alert.message, title=alert.title, severity=alert.severity, timeout=30)  # type: ignore[arg-type]
            self._tell_terminal(alert.title, alert.message)

    def _tell_terminal(self, title: str, message: str) -> None:
        """A bell or a desktop notification for what needs the user, who may be in another window."""
        sequence = terminal_sequence(self.terminal_alert, title, message)
        if not sequence:
            return
        self.terminal_writes.append(sequence)
        if not self.is_headless and self._driver is not None:  # as App.bell writes its BEL
            self._driver.write(sequence)
