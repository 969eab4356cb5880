"""Compare Tether's GPU panel with a REAL nvidia-smi (a script, not a test: CI has no GPU).

    python3 tests/gpu_check.py

Run it on a machine with NVIDIA GPUs and the driver. It reads the GPUs the way the node agent does
(``tui.node.stats.read_gpus``: the same ``nvidia-smi --query-gpu=... --format=csv,noheader,nounits``
call and parser), prints them as the GPU panel's rows under plain ``nvidia-smi``'s table (what the
`watch -n 2 nvidia-smi` pane shows), then checks field by field against a second, independent query (with units) that values
agree within what can change between two readings. Exit code 0 when they agree, 1 when not, 2 when
there is no nvidia-smi here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tui.node.stats import read_gpus

FIELDS = "index,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw"


def with_units() -> dict[str, list[str]]:
    """A second reading, with header and units, parsed independently of Tether's parser."""
    out = subprocess.run(
        ["nvidia-smi", f"--query-gpu={FIELDS}", "--format=csv"], capture_output=True, text=True, check=True
    ).stdout
    rows = out.strip().splitlines()[1:]
    return {row.split(",")[0].strip(): [cell.strip() for cell in row.split(",")] for row in rows}


def number(text: str) -> float | None:
    match = re.match(r"[-\d.]+", text)
    return float(match.group()) if match else None


def main() -> int:
    if shutil.which("nvidia-smi") is None:
        print("no nvidia-smi on this machine: nothing to compare")
        return 2
    print(subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout)
    gpus, reason = read_gpus()
    if not gpus:
        print(f"Tether's GPU panel would say: no GPU ({reason})")
        return 1
    reference = with_units()
    problems = []
    print(f"{'#':<3}{'name':<34}{'util':>6}{'mem used/total MiB':>22}{'temp':>6}{'power W':>9}")
    for index, gpu in gpus.items():
        memory = f"{gpu['mem']}/{gpu['memt']}"
        print(f"{index:<3}{gpu['name']:<34}{gpu['util']!s:>6}{memory:>22}{gpu['temp']!s:>6}{gpu['power']!s:>9}")
        ref = reference.get(index)
        if ref is None:
            problems.append(f"GPU {index}: not in the second reading")
            continue
        checks = [  # (field, Tether's value, reference value, allowed difference)
            ("name", gpu["name"], ref[1], None),
            ("memory.total", gpu["memt"], number(ref[4]), 0),
            ("memory.used", gpu["mem"], number(ref[3]), max(64, 0.05 * (number(ref[4]) or 0))),
            ("utilization", gpu["util"], number(ref[2]), 30),
            ("temperature", gpu["temp"], number(ref[5]), 5),
            ("power", gpu["power"], number(ref[6]), max(30, 0.2 * (number(ref[6]) or 0))),
        ]
        for field, ours, theirs, slack in checks:
            if slack is None:
                ok = ours == theirs
            elif ours is None or theirs is None:
                ok = ours is None and theirs is None
            else:
                ok = abs(ours - theirs) <= slack
            if not ok:
                problems.append(f"GPU {index} {field}: panel {ours!r}, nvidia-smi {theirs!r}")
    print("\n".join(problems) if problems else "the GPU panel agrees with nvidia-smi")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
