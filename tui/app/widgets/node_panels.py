"""The node's panels on the dashboard: CPU and memory, the run's processes, the GPUs."""

from __future__ import annotations

from collections.abc import Sequence

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tui.events import GpuStats, LayoutChanged, NodeStats, RunProcesses

BAR_WIDTH = 10
PROCESS_COLUMNS = ("PID", "CPU", "MEM", "COMMAND")
# Numbers first: on a narrow side bar the long name is what is shortened.
GPU_COLUMNS = ("#", "Util", "Mem GiB", "Temp", "Power", "Name")


def bar(percent: float, width: int = BAR_WIDTH) -> str:
    """``bar(50, 10)`` -> ``"█████·····"``."""
    filled = round(min(max(percent, 0.0), 100.0) / 100 * width)
    return "█" * filled + "·" * (width - filled)


def gib(mb: int | None) -> str:
    return "?" if mb is None else f"{mb / 1024:.1f}"


def describe_node(stats: NodeStats, width: int = 0) -> str:
    """CPU and memory lines; with ``width`` (the panel's, in columns) the bars shrink so that no
    line wraps, and go where even a short one would not fit."""
    memory = 100 * stats.mem_used_mb / stats.mem_total_mb if stats.mem_total_mb else 0
    figures = f"{gib(stats.mem_used_mb)}/{gib(stats.mem_total_mb)} GiB"
    size = BAR_WIDTH if width <= 0 else min(BAR_WIDTH, width - len("Mem 100%  ") - len(figures) - 1)
    cpu_bar, mem_bar = (f" {bar(stats.cpu_percent, size)}", f" {bar(memory, size)}") if size >= 3 else ("", "")
    return f"CPU {stats.cpu_percent:>3}%{cpu_bar}\nMem {memory:>3.0f}%{mem_bar} {figures}"


def _value(value: int | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value}{unit}"


def fill_table(table: DataTable[str], labels: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """``rows`` into ``table``, the last column (a command, a GPU's name) ending in "…" where the
    panel is too narrow for it, and left out where not even its label fits: never cut mid-word by
    the frame. Columns are made again, so that they also shrink."""
    pad = 2 * table.cell_padding
    widths = [max([len(label)] + [len(row[i]) for row in rows]) + pad for i, label in enumerate(labels)]
    room = table.scrollable_content_region.width - sum(widths[:-1]) - pad
    last = len(labels) - 1
    if room <= 0:  # not laid out yet: nothing to fit to
        room = widths[-1]
    keep = labels if room >= len(labels[-1]) else labels[:-1]
    table.clear(columns=True)
    for label in keep:
        table.add_column(label, key=label)
    for row in rows:
        cells = list(row[: len(keep)])
        if len(keep) > last and len(cells[last]) > room:
            cells[last] = cells[last][: room - 1].rstrip() + "…"
        table.add_row(*cells)


class NodePanel(Static):
    """Node CPU and memory, and the tmux session's name."""

    DEFAULT_CSS = """
    NodePanel {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("waiting for the node…", id=id)
        self.border_title = "Node"
        self.add_class("panel")  # the frame all panels share (app.tcss)
        self.stats: NodeStats | None = None

    def show_stats(self, stats: NodeStats) -> None:
        self.border_title = stats.host or "Node"
        self.stats = stats
        self.update(describe_node(stats, self.content_size.width))

    def on_resize(self, event: events.Resize) -> None:
        if self.stats is not None:
            self.update(describe_node(self.stats, self.content_size.width))

    def show_layout(self, layout: LayoutChanged) -> None:
        self.border_subtitle = f"tmux {layout.session}" if layout.exists else "no tmux session"


class ProcessTable(DataTable[str]):
    """The run's process tree: pid, CPU, memory, command."""

    DEFAULT_CSS = """
    ProcessTable {
        height: 1fr;
        overflow-x: hidden;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=False, show_cursor=False)
        self.border_title = "Run processes"
        self.add_class("panel")  # the frame all panels share (app.tcss)
        self.run: RunProcesses = RunProcesses(())

    def on_mount(self) -> None:
        self.show(self.run)

    def on_resize(self, event: events.Resize) -> None:
        self.show(self.run)

    def show(self, run: RunProcesses) -> None:
        self.run = run
        fill_table(self, PROCESS_COLUMNS, self.rows_text)

    @property
    def rows_text(self) -> list[tuple[str, ...]]:
        """The rows in full (a long command is shortened on screen only)."""
        return [
            (str(proc.pid), f"{proc.cpu_percent}%", f"{proc.mem_mb}M", " ".join(proc.command.split()))
            for proc in self.run.processes
        ]


class GpuPanel(Vertical):
    """One row per GPU, or a plain "no GPU on <node>"."""

    DEFAULT_CSS = """
    GpuPanel {
        height: auto;
        max-height: 10;
        #gpu-note { color: $text-muted; padding: 0 1; }
        #gpu-table { height: auto; overflow-x: hidden; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "GPUs"
        self.add_class("panel")  # the frame all panels share (app.tcss)
        self.stats: GpuStats | None = None

    def compose(self) -> ComposeResult:
        yield Static("waiting for the node…", id="gpu-note")
        table: DataTable[str] = DataTable(id="gpu-table", cursor_type="none", show_cursor=False)
        table.display = False
        yield table

    def on_resize(self, event: events.Resize) -> None:
        if self.stats is not None:
            self.show(self.stats)

    def show(self, stats: GpuStats) -> None:
        self.stats = stats
        note, table = self.query_one("#gpu-note", Static), self.query_one(DataTable)
        fill_table(table, GPU_COLUMNS, self.rows)
        table.display = bool(stats.gpus)
        note.display = not stats.gpus
        note.update(stats.reason or "no GPU")

    @property
    def rows(self) -> list[tuple[str, ...]]:
        """One row per GPU, in full (a long name is shortened on screen only)."""
        return [
            (
                gpu.index,
                _value(gpu.utilization, "%"),
                f"{gib(gpu.memory_used_mb)}/{gib(gpu.memory_total_mb)}",
                _value(gpu.temperature_c, "°C"),
                _value(gpu.power_w, " W"),
                gpu.name.removeprefix("NVIDIA "),
            )
            for gpu in (self.stats.gpus if self.stats is not None else ())
        ]

    @property
    def text(self) -> str:
        """What the panel says, as plain text (in full)."""
        if self.stats is None:
            return ""
        if not self.stats.gpus:
            return self.stats.reason
        return "\n".join(" ".join(row) for row in self.rows)
