"""How long is left, or how long something lasted, in the words the header and the alerts share."""

from __future__ import annotations

from tui.events import JOB_ENDING_S


def describe_duration(seconds: float) -> str:
    """``2 d 3 h``, ``4 h 32 min``, ``29 min``, ``9 min 5 s``, ``42 s``: as precise as the moment needs.

    Seconds appear only in the last ten minutes, where they matter (and tick visibly).
    """
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if whole >= JOB_ENDING_S:
        return f"{minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
