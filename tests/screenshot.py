"""README's screenshot: the console on a running demo (`tether demo`'s throwaway cluster: a loopback
sshd, the sample project's training-like run), exported by the app itself (Textual's SVG export).

    .venv/bin/python tests/screenshot.py                     # rewrites tests/screenshot/dashboard.svg
    .venv/bin/python tests/screenshot.py --points 2 --out /tmp/shot.svg   # what the smoke test runs

It waits until the Metrics panel has ``--points`` of the run's loss (the demo prints one a second),
saves the screen, leaves the console as `q` does and stops the demo as `tether demo` does.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from tui.app import TetherApp
from tui.app.widgets import MetricsPanel
from tui.config import load_workspace
from tui.demo import demo_cluster
from tui.session import Session

DEFAULT_OUT = Path(__file__).parent / "screenshot" / "dashboard.svg"
SIZE = (120, 34)


async def shoot(out: Path, points: int, timeout: float) -> None:
    with demo_cluster() as cluster:
        workspace = load_workspace(cluster.config_path)
        session = Session(workspace)
        try:
            await session.prepare()
            app = TetherApp(session, theme_name="dark", metrics=workspace.ui.metrics)
            async with app.run_test(size=SIZE) as pilot:
                panel = app.query_one(MetricsPanel)
                deadline = time.monotonic() + timeout
                while not (panel.reader.series and len(next(iter(panel.reader.series.values())).values) >= points):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"screenshot: no {points} points of the run's loss within {timeout:g} s")
                    await pilot.pause(0.25)
                await pilot.pause()
                out.parent.mkdir(parents=True, exist_ok=True)
                app.save_screenshot(filename=out.name, path=str(out.parent))
                await pilot.press("q")
        finally:
            await Session(workspace).down()
    print(f"screenshot: {out} ({points} points of the loss)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--points", type=int, default=40, help="points of the loss to wait for (one a second)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    asyncio.run(shoot(args.out.resolve(), args.points, args.timeout))


if __name__ == "__main__":
    main()
