"""The numbers a run prints (loss, accuracy, throughput), read from the output the console already
receives: the trend at a glance without TensorBoard and without one more byte on the link.

What counts as a number is ``[ui] metrics``: each entry a metric's name (``"loss"``,
``"val_acc"``), read as ``name 1.85``, ``name=1.85``, ``name: 1.85`` or ``'name': 1.85``, or a
regular expression with a ``(?P<value>...)`` group and, optionally, a ``(?P<name>...)`` group.
Unset, the names that PyTorch loops, Lightning's progress bar, Hugging Face's Trainer and tqdm
print are read (``DEFAULT_PATTERNS``); an empty list reads nothing.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"
_SEPARATOR = r"['\"]?\s*[:=]?\s*"  # "loss 1", "loss=1", "acc: 1", "'loss': 1" (a printed dict)
_NAMES = r"(?:[a-z]+_)*(?:loss|acc|accuracy|ppl|perplexity|lr|learning_rate|grad_norm)|it/s|s/it|samples/s|tokens/s"
DEFAULT_PATTERNS = (
    rf"(?<![\w/])['\"]?(?P<name>{_NAMES}){_SEPARATOR}(?P<value>{NUMBER})(?![\w.])",
    rf"(?<![\w.])(?P<value>{NUMBER})\s?(?P<name>it/s|s/it)(?![\w/])",  # tqdm's rate: "9.87it/s"
)
KEEP = 2000
"""Points kept per metric: the last few thousand, as the panel plots them."""

_PLAIN_NAME = re.compile(r"[\w/.-]+")
# The loop's own lines ("tether: restart 2: python train.py"): what starts a run, not its numbers.
_LOOP_LINE = "tether: "
_RUN_STARTS = re.compile(r"^tether: (?:starting |restart \d+: )")


class MetricPatternError(ValueError):
    """A ``[ui] metrics`` entry that cannot be used, with why."""


def compile_pattern(entry: str) -> re.Pattern[str]:
    """One ``[ui] metrics`` entry as a regular expression (case-insensitive)."""
    if _PLAIN_NAME.fullmatch(entry):
        name = re.escape(entry)
        entry = rf"(?<![\w/])['\"]?(?P<name>{name}){_SEPARATOR}(?P<value>{NUMBER})(?![\w.])"
    try:
        pattern = re.compile(entry, re.IGNORECASE)
    except re.error as exc:
        raise MetricPatternError(f"not a regular expression: {exc}") from None
    if "value" not in pattern.groupindex:
        raise MetricPatternError("a pattern needs a (?P<value>...) group for the number")
    return pattern


@dataclass
class Series:
    """One metric's last ``KEEP`` values, oldest first (NaN and infinity kept: they are news)."""

    name: str
    values: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP))

    @property
    def last(self) -> float:
        return self.values[-1]

    def finite(self) -> list[float]:
        return [v for v in self.values if math.isfinite(v)]


class MetricsReader:
    """Reads metrics from output lines, for the current run: a start or restart of the loop begins
    new curves (a restarted run's loss starts over; the earlier curve would only mislead)."""

    def __init__(self, patterns: Sequence[str] = DEFAULT_PATTERNS) -> None:
        self.patterns = [compile_pattern(p) for p in patterns]
        self.series: dict[str, Series] = {}

    def reset(self) -> None:
        self.series.clear()

    def feed(self, lines: Iterable[str]) -> bool:
        """Read ``lines``; True when a value was added or the curves began anew."""
        changed = False
        for line in lines:
            if line.startswith(_LOOP_LINE):
                if _RUN_STARTS.match(line) and self.series:
                    self.reset()
                    changed = True
                continue
            for name, value in self.read_line(line):
                self.series.setdefault(name, Series(name)).values.append(value)
                changed = True
        return changed

    def read_line(self, line: str) -> list[tuple[str, float]]:
        """The (name, value) pairs in one line, each name once (its first value on the line)."""
        found: dict[str, float] = {}
        for pattern in self.patterns:
            for match in pattern.finditer(line):
                name = (match.groupdict().get("name") or pattern.pattern).lower()
                if name not in found:
                    found[name] = float(match.group("value"))
        return list(found.items())
