"""In-memory fakes of the jobs table's stores, one per port of core/ports.py (no boto3, no moto).

Service logic is unit-tested on these; tests/contract/ runs each port's suite against the fake and the
DynamoDB adapter, so a fake that drifts from the table fails there. The stores built on one MemoryTable
share its items, as the DynamoDB stores share one table (a job's outcome moves its run's counters).
"""

from __future__ import annotations

from jobgraph.adapters.memory.approvals import MemoryApprovalStore
from jobgraph.adapters.memory.config import MemoryConfigStore
from jobgraph.adapters.memory.jobs import MemoryJobStore
from jobgraph.adapters.memory.runs import MemoryRunStore
from jobgraph.adapters.memory.table import MemoryTable
from jobgraph.adapters.memory.tasks import MemoryTaskStore
from jobgraph.adapters.memory.triggers import MemoryTriggerStore

__all__ = [
    "MemoryApprovalStore",
    "MemoryConfigStore",
    "MemoryJobStore",
    "MemoryJobsTable",
    "MemoryRunStore",
    "MemoryTable",
    "MemoryTaskStore",
    "MemoryTriggerStore",
]


class MemoryJobsTable(
    MemoryRunStore, MemoryJobStore, MemoryTaskStore, MemoryTriggerStore, MemoryApprovalStore, MemoryConfigStore
):
    """Every memory store over one MemoryTable (core.ports.JobsTablePort)."""
