"""Small widgets of the console; each carries its own DEFAULT_CSS."""

from tui.app.widgets.event_log import EventLog, LogLine
from tui.app.widgets.link_header import LinkHeader, LinkStatus

__all__ = ["EventLog", "LinkHeader", "LinkStatus", "LogLine"]
