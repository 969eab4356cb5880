"""Small widgets of the console; each carries its own DEFAULT_CSS."""

from tui.app.widgets.event_log import EventLog, LogLine
from tui.app.widgets.link_header import JobClock, LinkHeader, LinkStatus
from tui.app.widgets.metrics_panel import MetricsPanel
from tui.app.widgets.node_panels import GpuPanel, NodePanel, ProcessTable
from tui.app.widgets.output_panel import OutputPanel
from tui.app.widgets.run_panel import RunPanel

__all__ = [
    "EventLog",
    "GpuPanel",
    "JobClock",
    "LinkHeader",
    "LinkStatus",
    "LogLine",
    "MetricsPanel",
    "NodePanel",
    "OutputPanel",
    "ProcessTable",
    "RunPanel",
]
