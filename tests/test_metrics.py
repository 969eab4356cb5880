"""The run's numbers as a picture: what is read from the output (tui/metrics.py), `[ui] metrics`,
and the metrics panel on the console (pilot and snapshot, fed with what a stand-in training script
prints: tests/fixtures/train_standin.py prints as PyTorch, Lightning and Hugging Face loops do;
there is no torch here)."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from app_fakes import ScriptedSession
from textual.pilot import Pilot

from tui.app import TetherApp
from tui.app.widgets import MetricsPanel, OutputPanel
from tui.app.widgets.metrics_panel import NOT_A_NUMBER, chart
from tui.config import CONFIG_FILENAME, ConfigError, load_workspace
from tui.events import GpuInfo, GpuStats, LinkChanged, LinkState, NodeStats, OutputLines
from tui.metrics import MetricPatternError, MetricsReader, compile_pattern

STANDIN = Path(__file__).parent / "fixtures" / "train_standin.py"


def standin_output(style: str, steps: int = 120) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(STANDIN), style, str(steps)], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.splitlines()


# -- reading the numbers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "names"),
    [
        ("pytorch", ["loss"]),
        ("lightning", ["train_loss", "it/s"]),
        ("hf", ["loss", "grad_norm", "learning_rate"]),
    ],
)
def test_the_loss_of_each_kind_of_loop_is_read_and_falls(style: str, names: list[str]) -> None:
    reader = MetricsReader()
    reader.feed(standin_output(style))
    assert list(reader.series) == names
    loss = list(reader.series[names[0]].values)
    assert len(loss) == 120
    assert loss[0] > 2.0 and loss[-1] < 0.5  # the curve the stand-in prints: it falls


def test_a_run_without_numbers_has_no_metrics() -> None:
    reader = MetricsReader()
    assert reader.feed(standin_output("quiet")) is False
    assert reader.series == {}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("loss 1.85", [("loss", 1.85)]),
        ("loss=1.85", [("loss", 1.85)]),
        ("acc: 0.91", [("acc", 0.91)]),
        ("it/s 12.3", [("it/s", 12.3)]),
        ("step 7 Loss: 2e-3 val_acc=0.5", [("loss", 0.002), ("val_acc", 0.5)]),
        ("rank 0 pid=4242 port 5678 accelerate 3", []),  # numbers that are no metric
        ("closs 3 lossy 4", []),  # a metric's name inside another word
    ],
)
def test_what_counts_as_a_metric(line: str, expected: list[tuple[str, float]]) -> None:
    assert MetricsReader().read_line(line) == expected


def test_a_nan_loss_is_kept_and_marked_on_the_curve() -> None:
    reader = MetricsReader()
    reader.feed(["loss 2.0", "loss 1.0", "loss nan"])
    assert math.isnan(reader.series["loss"].last)
    assert chart(list(reader.series["loss"].values), 3, 2)[0].endswith(NOT_A_NUMBER)


def test_a_restart_begins_new_curves_and_the_loops_own_lines_are_not_read() -> None:
    reader = MetricsReader()
    reader.feed(["tether: starting python train.py", "loss 2.0", "loss 1.0"])
    reader.feed(["tether: restarting python (Ctrl-C)", "tether: restart 1: python train.py --lr 3e-4", "loss 2.5"])
    assert list(reader.series["loss"].values) == [2.5]


def test_chart_draws_a_falling_curve_high_on_the_left() -> None:
    rows = chart([4.0, 3.0, 2.0, 1.0], 4, 2)
    assert rows == ["█▃  ", "██▆▁"]  # 16 levels: 16, 11, 6 and 1 (the minimum still shows a sliver)


def test_chart_squeezes_many_points_into_the_width() -> None:
    rows = chart([float(i) for i in range(1000)], 10, 1)
    assert len(rows) == 1 and len(rows[0]) == 10 and rows[0][0] < rows[0][-1]


# -- [ui] metrics ------------------------------------------------------------------------------


def test_metric_names_and_patterns_from_tether_toml(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILENAME).write_text(
        textwrap.dedent(
            """
            [workspace]
            remote_root = "~/work/mnist"
            [connection]
            login = "cluster"
            [ui]
            metrics = ["bleu", 'top5 (?P<value>[0-9.]+)%']
            """
        )
    )
    workspace = load_workspace(tmp_path / CONFIG_FILENAME)
    assert workspace.ui.metrics is not None
    reader = MetricsReader(workspace.ui.metrics)
    assert reader.read_line("epoch 2 loss 0.4 bleu: 27.1 top5 93.5%") == [
        ("bleu", 27.1),
        ("top5 (?p<value>[0-9.]+)%", 93.5),
    ]
    assert load_workspace(tmp_path / CONFIG_FILENAME).ui.metrics == ("bleu", "top5 (?P<value>[0-9.]+)%")


def test_a_pattern_without_a_value_group_is_a_line_error(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILENAME).write_text(
        '[workspace]\nremote_root = "~/work/mnist"\n[connection]\nlogin = "cluster"\n[ui]\nmetrics = [\n  "loss",\n  "top5 ([0-9.]+)",\n]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_workspace(tmp_path / CONFIG_FILENAME)
    assert "tether.toml:8: ui.metrics[1]: 'top5 ([0-9.]+)': a pattern needs a (?P<value>...) group" in str(caught.value)
    with pytest.raises(MetricPatternError, match="not a regular expression"):
        compile_pattern("loss (?P<value>[0-9.]+")


# -- the panel on the console ------------------------------------------------------------------

GPUS = [
    GpuStats("compute01", (GpuInfo("0", "NVIDIA H100 80GB HBM3 (stand-in)", util, 40213, 81559, 64, 512),))
    for util in (5, 40, 96, 97, 95, 98, 97)
]


def console(lines: list[str]) -> tuple[TetherApp, ScriptedSession]:
    session = ScriptedSession(
        title="mnist",
        chain=("login", "compute01"),
        initial_events=[LinkChanged(LinkState.UP, rtt_ms=24.0), OutputLines(tuple(lines), history=True)],
    )
    return TetherApp(session), session


async def node_history(session: ScriptedSession, pilot: Pilot) -> None:
    """The node's panels as the agent sends them, one sample at a time (every stats_interval)."""
    for i, gpus in enumerate(GPUS):
        session.emit(NodeStats("compute01", 60, 20000 + 30000 * i, 515000))
        session.emit(gpus)
        await pilot.pause()


async def test_a_run_that_prints_no_numbers_shows_no_panel() -> None:
    app, session = console(standin_output("quiet"))
    async with app.run_test(size=(100, 30)) as pilot:
        await session.wait_running()
        await pilot.pause()
        panel = app.query_one(MetricsPanel)
        assert "epoch done" in app.query_one(OutputPanel).lines_text[-1]
        assert not panel.display and panel.region.height == 0


async def test_the_panel_appears_with_the_first_number_and_follows_the_run() -> None:
    app, session = console(standin_output("quiet"))
    async with app.run_test(size=(100, 30)) as pilot:
        await session.wait_running()
        await node_history(session, pilot)
        session.emit(OutputLines(tuple(standin_output("pytorch", 40))))
        await pilot.pause()
        panel = app.query_one(MetricsPanel)
        assert panel.display and panel.region.height > 0
        shown = panel.render().plain
        assert len(panel.reader.series["loss"].values) == 40
        assert shown.startswith("loss ↓") and "\n0.263 " in shown and "GPU  97%" in shown


def test_the_metrics_panel_shows_the_loss_curve(snap_compare) -> None:
    app, session = console(standin_output("lightning"))

    async def settle(pilot: Pilot) -> None:
        await session.wait_running()
        await node_history(session, pilot)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=settle)
