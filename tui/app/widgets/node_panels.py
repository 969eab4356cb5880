"""The node's panels on the dashboard: CPU and memory, the run's processes, the GPUs."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tui.events import GpuStats, LayoutChanged, NodeStats, RunProcesses

BAR_WIDTH = 10


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

    def on_mount(self) -> None:
        self.add_column("PID", key="pid")
        self.add_column("CPU", key="cpu")
        self.add_column("MEM", key="mem")
        self.add_column("COMMAND", key="command")

    def show(self, run: RunProcesses) -> None:
        self.clear()
        for proc in run.processes:
            command = " ".join(proc.command.split())
            self.add_row(str(proc.pid), f"{proc.cpu_percent}%", f"{proc.mem_mb}M", command, key=str(proc.pid))

    @property
    def rows_text(self) -> list[list[str]]:
        return [[str(cell) for cell in self.get_row_at(index)] for index in range(self.row_count)]


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

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # Numbers first: on a narrow side bar the long name is what gets cut.
        for label in ("#", "Util", "Mem GiB", "Temp", "Power", "Name"):
            table.add_column(label, key=label)

    def show(self, stats: GpuStats) -> None:
        self.stats = stats
        note, table = self.query_one("#gpu-note", Static), self.query_one(DataTable)
        table.clear()
        for gpu in stats.gpus:
            memory = f"{gib(gpu.memory_used_mb)}/{gib(gpu.memory_total_mb)}"
            name = gpu.name.removeprefix("NVIDIA ")
            table.add_row(
                gpu.index,
                _value(gpu.utilization, "%"),
                memory,
                _value(gpu.temperature_c, "°C"),
                _value(gpu.power_w, " W"),
                name,
            )
        table.display = bool(stats.gpus)
        note.display = not stats.gpus
        note.update(stats.reason or "no GPU")

    @property
    def text(self) -> str:
        """What the panel says, as plain text."""
        if self.stats is None:
            return ""
        if not self.stats.gpus:
            return self.stats.reason
        table = self.query_one(DataTable)
        return "\n".join(" ".join(str(c) for c in table.get_row_at(i)) for i in range(table.row_count))
