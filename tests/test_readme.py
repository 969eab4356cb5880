"""README's tether.toml examples are real: each one loads without a problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tui.config import parse_workspace

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
EXAMPLES = re.findall(r"```toml\n(.*?)```", README, re.S)


def test_readme_has_an_example_per_scheduler_kind():
    kinds = set(re.findall(r'^kind = "(\w+)"', "\n".join(EXAMPLES), re.M))
    assert {"direct", "slurm", "pbs", "kube"} <= kinds


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_readme_example_loads(example: str, tmp_path: Path):
    parse_workspace(example, tmp_path / "tether.toml")
