"""The debugger's variables as a tree: loaded when opened, a page at a time, big arrays summarised.

Nothing the user did not open crosses the link: a node's children are asked for when it is
expanded, a container's in pages of ``PAGE``; an array or a tensor shows its shape, dtype and device
(one small evaluate on the node), and its min, max and NaN count only when asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tui.dap_model import ArrayStats, ArraySummary, Variable, cap, is_array

PAGE = 100
# Opened a page at a time (built in the debuggee); anything else is listed by debugpy, which
# itself shows the first 100 items of a container and groups the rest.
SEQUENCES = frozenset({"list", "tuple", "deque", "range", "array"})

Fetch = Callable[[int, int, int], Awaitable[list[Variable]]]  # (reference, start, count)
Summarize = Callable[[str], Awaitable[ArraySummary | None]]  # evaluate name -> summary
Stats = Callable[[str], Awaitable[ArrayStats | None]]


@dataclass
class Item:
    kind: str  # "var", "more" (the next page), "stats" (an array's numbers, on request)
    variable: Variable | None = None
    reference: int = 0  # "more": whose page; "stats": unused
    start: int = 0
    expression: str = ""
    loaded: bool = False


class VariablesTree(Tree[Item]):
    DEFAULT_CSS = """
    VariablesTree { background: $surface; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("variables", id=id)
        self.show_root = False
        self.guide_depth = 2
        self._fetch: Fetch | None = None
        self._summarize: Summarize | None = None
        self._stats: Stats | None = None

    def connect(self, fetch: Fetch, summarize: Summarize, stats: Stats) -> None:
        self._fetch, self._summarize, self._stats = fetch, summarize, stats

    def show(self, variables: tuple[Variable, ...] | list[Variable], reference: int = 0) -> None:
        """The top frame's (or the picked frame's) first page of locals."""
        self.clear()
        self._add_page(self.root, list(variables), reference, 0)
        self.root.expand()

    def show_message(self, text: str) -> None:
        self.clear()
        self.root.add_leaf(Text(text, style="italic"), Item("message"))

    # -- building -----------------------------------------------------------------------------

    def _add_page(
        self, parent: TreeNode[Item], variables: list[Variable], reference: int, start: int, paged: bool = False
    ) -> None:
        for variable in variables:
            self._add_variable(parent, variable)
        if paged and reference and len(variables) >= PAGE:
            parent.add_leaf(
                Text(f"… more (Enter loads {PAGE})", style="dim"), Item("more", reference=reference, start=start + PAGE)
            )

    def _add_variable(self, parent: TreeNode[Item], variable: Variable) -> None:
        item = Item("var", variable, expression=variable.evaluate_name)
        array = is_array(variable.type) and bool(variable.evaluate_name)
        node = parent.add(self._label(variable), item, allow_expand=variable.expandable or array)
        if array and self._summarize is not None:
            self.run_worker(self._summary(node, variable), group="summaries")

    @staticmethod
    def _label(variable: Variable, summary: str = "") -> Text:
        label = Text(variable.name, style="bold")
        label.append(" = ")
        label.append(summary or cap(variable.value, 120))
        if variable.type and not summary:
            label.append(f"  {variable.type}", style="dim")
        return label

    async def _summary(self, node: TreeNode[Item], variable: Variable) -> None:
        assert self._summarize is not None
        summary = await self._summarize(variable.evaluate_name)
        if summary is not None:
            node.set_label(self._label(variable, str(summary)))
            assert node.data is not None
            node.data.variable = variable
            node.data.expression = variable.evaluate_name

    # -- opening ------------------------------------------------------------------------------

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[Item]) -> None:
        item = event.node.data
        if item is None or item.loaded or item.kind != "var" or item.variable is None:
            return
        item.loaded = True
        variable = item.variable
        if is_array(variable.type) and variable.evaluate_name:
            self.run_worker(self._open_array(event.node, variable), group="variables")
        elif variable.expandable:
            paged = variable.type in SEQUENCES
            self.run_worker(self._open(event.node, variable.variables_reference, 0, paged), group="variables")

    def on_tree_node_selected(self, event: Tree.NodeSelected[Item]) -> None:
        item = event.node.data
        if item is None:
            return
        if item.kind == "more":
            parent = event.node.parent
            event.node.remove()
            if parent is not None:
                self.run_worker(self._open(parent, item.reference, item.start, True), group="variables")
        elif item.kind == "stats" and not item.loaded:
            item.loaded = True
            self.run_worker(self._array_stats(event.node, item.expression), group="variables")

    async def _open(self, node: TreeNode[Item], reference: int, start: int, paged: bool = False) -> None:
        assert self._fetch is not None
        try:
            children = await self._fetch(reference, start, PAGE if paged else 0)
        except Exception as exc:  # noqa: BLE001 - shown in the tree, where the user looked
            node.add_leaf(Text(f"cannot read: {exc}", style="italic"), Item("message"))
            return
        self._add_page(node, children, reference, start, paged)
        if not children and start == 0:
            node.add_leaf(Text("(empty)", style="dim"), Item("message"))

    async def _open_array(self, node: TreeNode[Item], variable: Variable) -> None:
        summary = await self._summarize(variable.evaluate_name) if self._summarize else None
        if summary is None:  # not an array after all: open it as any object
            if variable.expandable:
                await self._open(node, variable.variables_reference, 0, False)
            return
        node.add_leaf(Text(f"shape = {summary.shape}"), Item("message"))
        node.add_leaf(Text(f"dtype = {summary.dtype}"), Item("message"))
        if summary.device:
            node.add_leaf(Text(f"device = {summary.device}"), Item("message"))
        node.add_leaf(Text(f"size = {summary.size:,}"), Item("message"))
        node.add_leaf(
            Text("min / max / NaN: Enter computes them on the node", style="dim"),
            Item("stats", expression=variable.evaluate_name),
        )

    async def _array_stats(self, node: TreeNode[Item], expression: str) -> None:
        assert self._stats is not None
        try:
            stats = await self._stats(expression)
        except Exception as exc:  # noqa: BLE001
            node.set_label(Text(f"cannot compute: {exc}", style="italic"))
            return
        node.set_label(Text(str(stats) if stats else "no min/max for this value"))
