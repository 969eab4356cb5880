"""tether.toml files for tests, pointed at the testbed's hosts."""

from __future__ import annotations

from pathlib import Path

from testbed import Testbed

from tui.config import Workspace, load_workspace


def write_workspace(
    folder: Path,
    testbed: Testbed,
    *,
    login: str | None = None,
    node: str | None = None,
    interpreter: str | None = None,
    extra: str = "",
) -> Path:
    """A workspace on the testbed: login host -> compute node, the node's venv python."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text("print('hello from the node')\n")
    path = folder / "tether.toml"
    path.write_text(
        "\n".join(
            [
                "[workspace]",
                'name = "tbws"',
                'remote_root = "~/work/tbws"',
                "[connection]",
                f'login = "{login or testbed.login_alias}"',
                f'node = "{testbed.node_alias if node is None else node}"',
                f'ssh_config = "{testbed.ssh_config}"',
                "connect_timeout = 5",
                "[run]",
                f'interpreter = "{interpreter or testbed.node_python}"',
                extra,
            ]
        )
    )
    return path


def load_test_workspace(folder: Path, testbed: Testbed, **kwargs: str) -> Workspace:
    return load_workspace(write_workspace(folder, testbed, **kwargs))
