"""What every target is given besides its endpoint: where the run's folder goes, and how long to wait."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jobgraph.adapters.local_disk import check_destination


@dataclass(frozen=True)
class Output:
    """The run's folder ``folder/<run_id>`` (replaced only with ``overwrite``) and the progress bar."""

    folder: Path
    overwrite: bool = False
    progress_bar: bool = False

    def check(self, run_id: str) -> Path:
        """``folder/<run_id>``, refused before anything starts if it exists and may not be replaced."""
        return check_destination(self.folder, run_id, self.overwrite)


@dataclass(frozen=True)
class Patience:
    """How long a run may take, and how long it may go without a finished job while its queues are empty."""

    timeout_s: float = 1800.0
    stall_s: float = 60.0
