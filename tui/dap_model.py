"""The debugger's data: frozen values read from the adapter's JSON (what tui/debug's DAP client
hands out and the console shows), nothing live; and how a value is shown small.

A module of its own, beside ``tui.events``, because both sides use it: the DAP client and the
debugger core (tui/debug) make these values, the console (tui/app) only reads them.

Each ``from_dap`` reads one DAP object leniently (missing keys get the defaults): a field an
adapter leaves out must not cost the user the whole stack or variables view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: the console (which imports this model) loads no node module
    from tui.node import protocol_dap as dap


def _count(value: object) -> int | None:
    return int(value) if isinstance(value, int) else None


def _no_body() -> dap.EventBody:
    return {}


@dataclass(frozen=True)
class DapEvent:
    """An event from the adapter (``stopped``, ``output``, ``terminated`` ...) with its body."""

    name: str
    body: dap.EventBody = field(default_factory=_no_body)


@dataclass(frozen=True)
class SourceBreakpoint:
    """A line breakpoint as the user asked for it: plain, conditional, counted, or a logpoint."""

    line: int
    condition: str = ""
    hit_condition: str = ""
    log_message: str = ""

    def to_dap(self) -> dap.SourceBreakpoint:
        # Empty strings are left out: debugpy would take condition "" as an expression to evaluate.
        result: dap.SourceBreakpoint = {"line": self.line}
        if self.condition:
            result["condition"] = self.condition
        if self.hit_condition:
            result["hitCondition"] = self.hit_condition
        if self.log_message:
            result["logMessage"] = self.log_message
        return result


@dataclass(frozen=True)
class Breakpoint:
    """A breakpoint as the adapter accepted it; ``verified`` is False until code exists there."""

    verified: bool
    line: int | None
    message: str = ""
    id: int | None = None

    @classmethod
    def from_dap(cls, item: dap.Breakpoint) -> Breakpoint:
        line = item.get("line")
        return cls(
            bool(item.get("verified")),
            int(line) if isinstance(line, int) else None,
            str(item.get("message", "")),
            _count(item.get("id")),
        )


@dataclass(frozen=True)
class StackFrame:
    """One frame of a stack trace; ``path`` is as the debuggee sees it (remote path)."""

    id: int
    name: str
    path: str
    line: int
    column: int = 0

    @classmethod
    def from_dap(cls, frame: dap.StackFrame) -> StackFrame:
        return cls(
            int(frame.get("id", 0)),
            str(frame.get("name", "")),
            str((frame.get("source") or {}).get("path", "")),
            int(frame.get("line", 0)),
            int(frame.get("column", 0)),
        )


@dataclass(frozen=True)
class StoppedAt:
    """Where and why a thread stopped: what the console shows as ``file:line (reason)``."""

    thread_id: int
    reason: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.reason})"


@dataclass(frozen=True)
class Thread:
    """A thread of the debuggee (debugpy: "MainThread" and any the program started)."""

    id: int
    name: str

    @classmethod
    def from_dap(cls, item: dap.Thread) -> Thread:
        return cls(int(item.get("id", 0)), str(item.get("name", "")))


@dataclass(frozen=True)
class Scope:
    """A group of variables of a frame (debugpy: "Locals", "Globals"); ``expensive`` ones load on demand."""

    name: str
    variables_reference: int
    expensive: bool = False
    named_variables: int | None = None
    indexed_variables: int | None = None

    @classmethod
    def from_dap(cls, item: dap.Scope) -> Scope:
        return cls(
            str(item.get("name", "")),
            int(item.get("variablesReference", 0)),
            bool(item.get("expensive", False)),
            _count(item.get("namedVariables")),
            _count(item.get("indexedVariables")),
        )


@dataclass(frozen=True)
class Variable:
    """One variable as the adapter shows it: ``value`` is display text (a repr), not the object."""

    name: str
    value: str
    type: str = ""
    variables_reference: int = 0
    evaluate_name: str = ""
    named_variables: int | None = None
    indexed_variables: int | None = None

    @property
    def expandable(self) -> bool:
        return self.variables_reference > 0

    @classmethod
    def from_dap(cls, item: dap.Variable, name: str = "") -> Variable:
        """``name`` stands in where the object has none (a setVariable response)."""
        return cls(
            str(item.get("name", name)),
            str(item.get("value", "")),
            str(item.get("type") or ""),
            int(item.get("variablesReference", 0)),
            str(item.get("evaluateName") or ""),
            _count(item.get("namedVariables")),
            _count(item.get("indexedVariables")),
        )


@dataclass(frozen=True)
class EvalResult:
    """An expression's value; expandable like a variable when ``variables_reference`` > 0."""

    result: str
    type: str = ""
    variables_reference: int = 0
    named_variables: int | None = None
    indexed_variables: int | None = None

    @property
    def expandable(self) -> bool:
        return self.variables_reference > 0

    @classmethod
    def from_dap(cls, body: dap.EvaluateResponseBody) -> EvalResult:
        return cls(
            str(body.get("result", "")),
            str(body.get("type") or ""),
            int(body.get("variablesReference", 0)),
            _count(body.get("namedVariables")),
            _count(body.get("indexedVariables")),
        )


@dataclass(frozen=True)
class Completion:
    """A completion target; ``text`` is what to insert (the label when the adapter gives none)."""

    label: str
    text: str = ""
    type: str = ""

    @classmethod
    def from_dap(cls, item: dap.CompletionItem) -> Completion:
        label = str(item.get("label", ""))
        return cls(label, str(item.get("text") or label), str(item.get("type") or ""))


@dataclass(frozen=True)
class ExceptionFilter:
    """An exception breakpoint kind the adapter offers (debugpy: "raised", "uncaught", "userUnhandled")."""

    filter: str
    label: str
    default: bool = False

    @classmethod
    def from_dap(cls, item: dap.ExceptionBreakpointsFilter) -> ExceptionFilter:
        return cls(str(item.get("filter", "")), str(item.get("label", "")), bool(item.get("default", False)))


# -- values shown small (the expressions that compute them on the node: tui/debug/values.py) --

# Type names (as debugpy reports them) of values that are arrays of numbers: summarised, not shown.
ARRAY_TYPES = frozenset(
    {"ndarray", "memmap", "matrix", "Tensor", "Parameter", "DataFrame", "Series", "Array", "ArrayImpl", "DeviceArray"}
)
VALUE_CAP = 200  # characters of a value the console keeps (the rest is "…")


@dataclass(frozen=True)
class ArraySummary:
    kind: str
    shape: tuple[int, ...]
    dtype: str
    device: str = ""

    @property
    def size(self) -> int:
        count = 1
        for n in self.shape:
            count *= n
        return count

    def __str__(self) -> str:
        shape = "×".join(str(n) for n in self.shape) or "scalar"
        device = f" on {self.device}" if self.device and self.device != "cpu" else ""
        return f"{self.kind} {shape} {self.dtype}{device}".rstrip()


@dataclass(frozen=True)
class ArrayStats:
    minimum: float
    maximum: float
    nans: int

    def __str__(self) -> str:
        nans = f", {self.nans} NaN" if self.nans else ""
        return f"min {self.minimum:g}, max {self.maximum:g}{nans}"


def is_array(type_name: str) -> bool:
    return type_name in ARRAY_TYPES


def cap(text: str, limit: int = VALUE_CAP) -> str:
    """One line of at most ``limit`` characters."""
    line = text.replace("\n", " ⏎ ")
    return line if len(line) <= limit else line[: limit - 1] + "…"
