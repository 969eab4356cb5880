"""Big values stay small on the link: an array or a tensor is shown by its shape, dtype and device.

A numpy array or a torch tensor of 10^8 elements must never be dumped over a slow link. Its summary
is one ``evaluate`` whose answer is a short tuple computed on the node; min, max and the NaN count
come only when the user asks (another evaluate, also computed there). Every value text the console
shows is capped, so even a huge ``repr`` costs the screen one line.
"""

from __future__ import annotations

import ast
import re

from tui.dap_model import ArrayStats, ArraySummary

# Run on the node, in the stopped frame: a short tuple whatever the size. `v` is bound once, so the
# user's expression is evaluated once.
_SUMMARY = (
    "(lambda v: (type(v).__name__, tuple(int(n) for n in getattr(v, 'shape', ())), "
    "str(getattr(v, 'dtype', '')), str(getattr(v, 'device', ''))))({expr})"
)
_STATS = (
    "(lambda v: (float(v.min()), float(v.max()), "
    "int((v != v).sum()) if str(getattr(v, 'dtype', '')).startswith(('float', 'torch.float', 'complex')) else 0))"
    "({expr})"
)


def summary_expression(expression: str) -> str:
    return _SUMMARY.format(expr=expression)


def stats_expression(expression: str) -> str:
    return _STATS.format(expr=expression)


def parse_summary(result: str) -> ArraySummary | None:
    """The evaluate's answer (a tuple's repr) as a summary; None when it is not one."""
    value = _literal(result)
    if not (isinstance(value, tuple) and len(value) == 4):
        return None
    kind, shape, dtype, device = value
    if not (isinstance(kind, str) and isinstance(shape, tuple) and all(isinstance(n, int) for n in shape)):
        return None
    return ArraySummary(kind, shape, str(dtype), str(device))


def parse_stats(result: str) -> ArrayStats | None:
    value = _literal(result, numbers=True)
    if not (isinstance(value, tuple) and len(value) == 3):
        return None
    low, high, nans = value
    if not all(isinstance(x, (int, float)) for x in value):
        return None
    return ArrayStats(float(low), float(high), int(nans))


def _literal(text: str, *, numbers: bool = False) -> object:
    # In a tuple of numbers nan and inf come back as names, which are not literals.
    cleaned = re.sub(r"\bnan\b", "None", re.sub(r"\binf\b", "1e999", text)) if numbers else text
    try:
        value = ast.literal_eval(cleaned)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, tuple):
        return tuple(float("nan") if item is None else item for item in value)
    return value
