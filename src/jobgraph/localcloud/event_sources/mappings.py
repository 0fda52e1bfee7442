"""Event source mappings of the local cloud: each enabled SQS mapping of a deployed function polled by a
MappingPoller (poller.py) with its batch size, concurrency and partial batch failures, as Lambda's pollers do.

``MappingControl`` is the Controller's part for mappings (controller.py composes it).
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass

from jobgraph.localcloud.event_sources.poller import MappingPoller, MappingSpec
from jobgraph.localcloud.inventory import MappingState, sqs_queue
from jobgraph.localcloud.lambda_runtime.functions import LocalFunction
from jobgraph.localcloud.lambda_runtime.runtime import DEFAULT_UNSCALED_CONCURRENCY, default_max_workers


@dataclass
class LocalMapping:
    state: MappingState
    function_key: str
    poller: MappingPoller
    stop: threading.Event


class MappingControl:
    """The mappings deployed, started and stopped with their functions (a part of the Controller)."""

    def _reconcile_mappings(self, mappings: dict[str, MappingState]) -> None:
        for uuid, state in mappings.items():
            function = self.functions.get(state.function_arn) or self._function_named(state.function_arn)
            current = self.mappings.get(uuid)
            wanted = state.enabled and function is not None
            key = function.revision.key if function is not None else ""
            if current is not None and (not wanted or current.state != state or current.function_key != key):
                with self._state_lock:
                    self.mappings.pop(uuid, None)
                self._stop_mapping(current)
                current = None
            if wanted and current is None:
                self._start_mapping(state, function)
        with self._state_lock:
            gone = [self.mappings.pop(uuid) for uuid in list(self.mappings) if uuid not in mappings]
        for mapping in gone:
            self._stop_mapping(mapping)

    def _start_mapping(self, state: MappingState, function: LocalFunction) -> None:
        concurrency = state.max_concurrency or DEFAULT_UNSCALED_CONCURRENCY
        concurrency = max(1, min(int(concurrency), self.max_workers or default_max_workers()))
        spec = MappingSpec(
            function=function.spec,
            queue_url=state.queue_url,
            queue_arn=state.queue_arn,
            batch_size=state.batch_size,
            concurrency=concurrency,
            report_batch_item_failures=state.report_batch_item_failures,
            max_receive_count=state.max_receive_count,
            region=state.region,
        )
        name = function.revision.name
        workers = [
            self._make_worker(function.spec, self.log_dir / name / f"esm-{slot}.log") for slot in range(concurrency)
        ]
        stop = threading.Event()
        poller = MappingPoller(
            spec,
            workers,
            self.endpoint.client("sqs", billed=True, region=state.region),  # Lambda's pollers: SQS bills them
            self.stats,
            stop,
            self.faults,
            zlib.crc32(f"{self.faults.seed}:{name}".encode()),
            self.retry_delay_s,
            wait_for_messages=self._queue_signal(state),
        )
        with self._state_lock:
            self.mappings[state.uuid] = LocalMapping(state, function.revision.key, poller, stop)
        poller.start()

    def _queue_signal(self, state: MappingState):
        found = sqs_queue(state.queue_arn.split(":")[4], state.region, state.queue_arn)
        return found.wait_for_messages if found is not None else None

    def _stop_mapping(self, mapping: LocalMapping) -> None:
        mapping.stop.set()
        mapping.poller.join(timeout=10)
        for worker in mapping.poller.workers:
            worker.stop()  # an invoker stuck in an invocation still gets its process killed
