"""The progress bar shared by solve and run."""

from __future__ import annotations

import sys


def progress_bar(total: int, enabled: bool):
    """A tqdm bar of jobs on stderr (solve and run); a no-op when disabled."""
    from tqdm import tqdm

    return tqdm(total=total, unit="job", disable=not enabled, dynamic_ncols=True, file=sys.stderr)
