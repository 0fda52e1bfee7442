"""Recording doubles of what services send out (the run events bus, a FIFO queue), for tests on the fakes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobgraph.core.models import IncomingJob


class Bus:
    """core.ports.EventPublisher: keeps every event; ids event-1, event-2, ..."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, detail: dict[str, Any]) -> str:
        self.published.append(detail)
        return f"event-{len(self.published)}"


class Queue:
    """A FIFO queue's send_jobs: keeps the jobs sent, in order."""

    def __init__(self) -> None:
        self.sent: list[IncomingJob] = []

    def send_jobs(self, jobs: Iterable[IncomingJob]) -> int:
        batch = list(jobs)
        self.sent.extend(batch)
        return len(batch)
