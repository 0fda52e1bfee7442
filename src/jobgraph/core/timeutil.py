"""Clock-time helpers for the "HH:MM:SS, same operating day" times of GUIDE §2."""

from __future__ import annotations

import re

from jobgraph.core.bounds import quote

# ASCII digits only (\d also matches full-width and other Unicode digits); fullmatch: no trailing newline
_HMS = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})")
MINUTES_PER_DAY = 24 * 60


def parse_hms(value: str) -> float:
    """Return minutes after midnight for "HH:MM:SS"; raise ValueError naming the bad value."""
    match = _HMS.fullmatch(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{quote(value)} is not a time of the form HH:MM:SS")
    hours, minutes, seconds = (int(g) for g in match.groups())
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{quote(value)} is not a valid time of day (00:00:00-23:59:59)")
    return hours * 60 + minutes + seconds / 60


def format_hms(minutes: float) -> str:
    """Inverse of :func:`parse_hms`, rounding to the second."""
    total = round(minutes * 60)
    if not 0 <= total < MINUTES_PER_DAY * 60:
        raise ValueError(f"{minutes} minutes is outside one operating day")
    hours, rest = divmod(total, 3600)
    mins, secs = divmod(rest, 60)
    return f"{hours:02d}:{mins:02d}:{secs:02d}"
