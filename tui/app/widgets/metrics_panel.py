"""The run's numbers as a picture: the curves of what it prints (``tui.metrics``), with the GPUs'
and the node's memory history beside them. Hidden until the run prints a number."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from tui.events import GpuStats, NodeStats, OutputLines
from tui.metrics import DEFAULT_PATTERNS, KEEP, MetricsReader, Series

BLOCKS = " ▁▂▃▄▅▆▇█"
LABEL_WIDTH = 21
TALL = 45  # rows of the terminal from which each metric gets three rows (two below, one when short)
SHOWN = 3  # metrics plotted, the first ones the run printed; the others are counted in the title
NOT_A_NUMBER = "×"


def _buckets(values: Sequence[float], width: int) -> list[float]:
    """``values`` squeezed to at most ``width`` columns, each the mean of its slice (NaN if the
    slice holds one: a NaN loss must stay visible however many points surround it)."""
    if len(values) <= width:
        return list(values)
    columns: list[float] = []
    for column in range(width):
        chunk = values[column * len(values) // width : (column + 1) * len(values) // width]
        columns.append(math.nan if any(not math.isfinite(v) for v in chunk) else sum(chunk) / len(chunk))
    return columns


def chart(values: Sequence[float], width: int, height: int, bounds: tuple[float, float] | None = None) -> list[str]:
    """``values`` as columns of blocks, ``height`` rows of ``width`` characters, top row first;
    the lowest value still gets a sliver, a non-finite one is ``NOT_A_NUMBER`` on the top row.
    ``bounds``: a fixed scale (GPU percent); else the values' own minimum and maximum."""
    if width <= 0 or height <= 0:
        return []
    columns = _buckets(values, width)
    finite = [v for v in columns if math.isfinite(v)]
    low, high = bounds if bounds else (min(finite, default=0.0), max(finite, default=0.0))
    levels = height * 8
    rows = [[" "] * width for _ in range(height)]
    for x, value in enumerate(columns):
        if not math.isfinite(value):
            rows[0][x] = NOT_A_NUMBER
            continue
        share = 0.5 if high <= low else (min(max(value, low), high) - low) / (high - low)
        level = 1 + round(share * (levels - 1))
        for y in range(height):
            rows[y][x] = BLOCKS[min(8, max(0, level - (height - 1 - y) * 8))]
    return ["".join(row) for row in rows]


def figure(value: float) -> str:
    """A metric's value in 6 characters or so: 0.1234, 12.35, 1.2e-05, nan."""
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2g}" if abs(value) < 1e-3 else f"{value:.3g}"
    return f"{value:.4g}"


def trend(series: Series) -> str:
    """↓ or ↑ from the mean of the older half to the mean of the newer half; · if flat or unknown."""
    finite = series.finite()
    if len(finite) < 4:
        return "·"
    half = len(finite) // 2
    older, newer = sum(finite[:half]) / half, sum(finite[half:]) / (len(finite) - half)
    spread = (max(finite) - min(finite)) or 1.0
    if abs(newer - older) < 0.02 * spread:
        return "·"
    return "↓" if newer < older else "↑"


class MetricsPanel(Widget):
    """Curves of the run's metrics; a run that prints no numbers shows no panel."""

    DEFAULT_CSS = """
    MetricsPanel {
        height: auto;
        max-height: 14;
        padding: 0 1;
        display: none;
    }
    MetricsPanel.-shown {
        display: block;
    }
    MetricsPanel > .metrics-panel--curve {
        color: $accent;
    }
    MetricsPanel > .metrics-panel--label {
        color: $text;
        text-style: bold;
    }
    MetricsPanel > .metrics-panel--alarm {
        color: $error;
        text-style: bold;
    }
    """
    COMPONENT_CLASSES = {"metrics-panel--curve", "metrics-panel--label", "metrics-panel--alarm"}

    def __init__(self, patterns: Sequence[str] | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Metrics"
        self.add_class("panel")  # the frame all panels share (app.tcss)
        self.reader = MetricsReader(DEFAULT_PATTERNS if patterns is None else patterns)
        self.gpu_history: deque[float] = deque(maxlen=KEEP)  # mean utilisation of the node's GPUs
        self.memory_history: deque[float] = deque(maxlen=KEEP)  # node memory, percent

    @property
    def rows_per_metric(self) -> int:
        if self.screen.has_class("-short"):
            return 1
        return 3 if self.screen.size.height >= TALL else 2

    def show(self, output: OutputLines) -> None:
        if output.history:  # a (re)attach replays the log: the curves are read anew from it
            self.reader.reset()
        if self.reader.feed(output.lines) or output.history:
            self._changed()

    def show_gpus(self, stats: GpuStats) -> None:
        used = [g.utilization for g in stats.gpus if g.utilization is not None]
        if used:
            self.gpu_history.append(sum(used) / len(used))
            self._changed()

    def show_node(self, stats: NodeStats) -> None:
        if stats.mem_total_mb:
            self.memory_history.append(100 * stats.mem_used_mb / stats.mem_total_mb)
            self._changed()

    def _changed(self) -> None:
        shown = bool(self.reader.series)
        self.set_class(shown, "-shown")
        hidden = len(self.reader.series) - SHOWN
        self.border_subtitle = f"+{hidden} more" if hidden > 0 else ""
        if shown:
            self.refresh(layout=True)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        metrics = min(SHOWN, len(self.reader.series)) * self.rows_per_metric
        return metrics + bool(self.gpu_history) + bool(self.memory_history)

    def render(self) -> Text:
        width = self.content_size.width
        curve = self.get_component_rich_style("metrics-panel--curve")
        label = self.get_component_rich_style("metrics-panel--label")
        alarm = self.get_component_rich_style("metrics-panel--alarm")
        lines: list[Text] = []
        rows = self.rows_per_metric
        for series in list(self.reader.series.values())[:SHOWN]:
            values = list(series.values)
            finite = series.finite()
            value = Text(figure(series.last), style=label if math.isfinite(series.last) else alarm)
            span = f"{figure(min(finite))}..{figure(max(finite))}" if finite else "no numbers"
            if rows == 1:  # a small terminal: the name (cut short) and the last value
                name = series.name if len(series.name) <= 10 else series.name[:9] + "…"
                labels = [Text.assemble(Text(name, style=label), " ", value)]
            else:
                labels = [Text(f"{series.name} {trend(series)}", style=label), value, Text(span, style="dim")]
            for y, drawn in enumerate(chart(values, width - LABEL_WIDTH, rows)):
                lines.append(self._row(labels[y] if y < len(labels) else Text(""), drawn, curve, alarm))
        for name, history in (("GPU", self.gpu_history), ("Mem", self.memory_history)):
            if history:
                head = Text(f"{name} {history[-1]:3.0f}%", style=label)
                lines.append(
                    self._row(head, chart(list(history), width - LABEL_WIDTH, 1, (0.0, 100.0))[0], curve, alarm)
                )
        return Text("\n").join(lines)

    @staticmethod
    def _row(head: Text, drawn: str, curve: Style, alarm: Style) -> Text:
        head.truncate(LABEL_WIDTH - 1, overflow="ellipsis", pad=True)
        row = Text.assemble(head, " ")
        for index, piece in enumerate(drawn.split(NOT_A_NUMBER)):
            if index:
                row.append(NOT_A_NUMBER, style=alarm)
            row.append(piece, style=curve)
        return row
