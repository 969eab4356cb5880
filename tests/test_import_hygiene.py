"""The core never imports Textual, and README's architecture section lists every module in tui/."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE_PACKAGES = ("remote", "node", "sync", "debug")


def core_modules() -> list[str]:
    modules = []
    for path in sorted((ROOT / "tui").rglob("*.py")):
        relative = path.relative_to(ROOT).with_suffix("")
        parts = relative.parts
        if "app" in parts or parts[-1] in ("cli", "__main__"):
            continue
        modules.append(".".join(p for p in parts if p != "__init__"))
    return modules


def test_core_modules_do_not_import_textual():
    modules = core_modules()
    assert "tui.remote.link" in modules and "tui.config" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"core imported Textual: {result.stdout}"


def defines_something(path: Path) -> bool:
    """A module with a function or class; package markers and re-exports need no README line."""
    tree = ast.parse(path.read_text())
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in tree.body)


def test_readme_architecture_lists_the_modules_in_tui():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(tui/[\w/]+\.py)`", section))
    actual = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "tui").rglob("*.py")
        if p.name != "__init__.py" or defines_something(p)
    }
    assert listed == actual, f"missing from README: {sorted(actual - listed)}; not in tui/: {sorted(listed - actual)}"


# The node modules the laptop may import: the agent protocol's types and constants, and the python
# probe that `tether doctor` and the loop both run. Everything else under tui/node is the node's own.
SHARED_NODE_MODULES = re.compile(r"tui\.node\.(protocol(_\w+)?|pyenv)$")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from tui.node import protocol` names a module, not a constant
            names.update(f"{node.module}.{alias.name}" for alias in node.names if node.module == "tui.node")
    return names


def test_the_laptop_imports_only_the_nodes_shared_modules():
    laptop = [p for p in (ROOT / "tui").rglob("*.py") if "node" not in p.relative_to(ROOT / "tui").parts]
    reaching = {
        f"{p.relative_to(ROOT)} -> {name}"
        for p in laptop
        for name in imported_modules(p)
        if name.startswith("tui.node.") and not SHARED_NODE_MODULES.match(name)
    }
    assert not reaching, f"laptop modules reach into the node's own modules: {sorted(reaching)}"
