"""The one factory of a service's data layer: its results bucket, jobs table and queues, from its settings.

Every service's ``from_settings`` asks ``data_layer`` instead of building the same S3 store, result store and
table itself, so where the data lives (and which boto3 clients reach it) is decided in one place. Clients
stay lazy: each adapter makes its default client on first use, unless ``client(service)`` hands one in
(the status API served locally, tools holding a session).

The table is one ``JobsTable`` (every store of core/ports.py on one client); services take the narrow
port they use (``JobStore``, ``RunStore``...), so a test hands them an in-memory fake (adapters/memory/)
instead: ``DataLayer.in_memory``.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobgraph.adapters.clients import ClientFactory
from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.memory import MemoryJobsTable, MemoryTable
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.errors import ConfigurationError
from jobgraph.core.ports import BlobStore, JobsTablePort
from jobgraph.core.results import ResultStore
from jobgraph.services.settings import CommonSettings


@dataclass(frozen=True)
class DataLayer:
    """Where a service's data lives: results (over ``blobs``), the jobs table, and its FIFO queues."""

    blobs: BlobStore
    results: ResultStore
    table: JobsTablePort
    incoming: FifoQueue | None = None
    outgoing: FifoQueue | None = None

    @classmethod
    def in_memory(cls, blobs: BlobStore, table: JobsTablePort | None = None) -> DataLayer:
        """A data layer on ``blobs`` (a folder, say) and the in-memory table: service logic without AWS."""
        return cls(blobs, ResultStore(blobs), table if table is not None else MemoryJobsTable(MemoryTable()))

    def queue(self, which: str) -> FifoQueue:
        """The ``incoming`` or ``outgoing`` queue; ConfigurationError if the service's settings have none."""
        queue: FifoQueue | None = getattr(self, which)
        if queue is None:
            raise ConfigurationError(f"no {which} queue in this service's settings")
        return queue


def data_layer(settings: CommonSettings, client: ClientFactory | None = None) -> DataLayer:
    """Build the data layer ``settings`` name: bucket + prefix, table + records' time to live, and the
    incoming/outgoing queues when the settings have their URLs. ``client``: the boto3 clients to use (None:
    each adapter's default, made lazily)."""
    blobs = S3BlobStore(settings.bucket_name, settings.results_prefix, client=client("s3") if client else None)
    incoming_url: str = getattr(settings, "incoming_queue_url", "")
    outgoing_url: str = getattr(settings, "outgoing_queue_url", "")
    return DataLayer(
        blobs=blobs,
        results=ResultStore(blobs),
        table=JobsTable(settings.table_name, settings.record_ttl_days, client=client("dynamodb") if client else None),
        incoming=FifoQueue(incoming_url, client=client("sqs") if client else None) if incoming_url else None,
        outgoing=FifoQueue(outgoing_url, client=client("sqs") if client else None) if outgoing_url else None,
    )
