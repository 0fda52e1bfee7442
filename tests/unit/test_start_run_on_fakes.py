"""StartRun's logic (services/start_run.py) on a data layer without AWS: a run is registered once, its sequences
and manifest stored and its FIRST jobs sent; a used run id or a bad request is refused with nothing written or
sent. (tests/integration/test_handlers_events.py runs the handler on moto.)"""

from __future__ import annotations

from jobgraph.adapters.local_disk import LocalDiskBlobStore
from jobgraph.core.models import ExecType
from jobgraph.services.data import DataLayer
from jobgraph.services.settings import StartRunSettings
from jobgraph.services.start_run import StartRunDeps, start_run
from tests.doubles import Queue
from tests.lambda_support import event

RUN = "events-demo"


def deps_on_fakes(tmp_path) -> tuple[StartRunDeps, Queue]:
    data, queue = DataLayer.in_memory(LocalDiskBlobStore(tmp_path)), Queue()
    settings = StartRunSettings(BUCKET_NAME="bucket", TABLE_NAME="table", INCOMING_QUEUE_URL="q")  # type: ignore[call-arg]
    return StartRunDeps(data.results, data.table, queue, settings), queue  # type: ignore[arg-type]


def test_a_run_starts_once_with_its_first_jobs_sent(tmp_path) -> None:
    deps, queue = deps_on_fakes(tmp_path)
    started = start_run(event("start-run"), deps)
    assert (started["status"], started["run_id"], started["jobs_total"]) == ("RUNNING", RUN, 5)
    assert [(job.exec_type, job.route_index) for job in queue.sent] == [(ExecType.FIRST, 0)]
    run = deps.table.get_run(RUN)
    assert (run["status"], run["sequences_remaining"], run["jobs_total"]) == ("RUNNING", 1, 5)
    assert deps.results.get_sequence(RUN, 0).sequence_id == 0
    again = start_run(event("start-run"), deps)
    assert again["status"] == "REJECTED" and any(RUN in error for error in again["errors"])
    assert len(queue.sent) == 1  # nothing sent the second time


def test_a_bad_request_is_rejected_naming_the_field_with_nothing_written(tmp_path) -> None:
    deps, queue = deps_on_fakes(tmp_path)
    request = {**event("start-run"), "run_id": "bad-run", "scenarios": 0}
    rejected = start_run(request, deps)
    assert rejected["status"] == "REJECTED" and any("scenarios" in error for error in rejected["errors"])
    assert queue.sent == [] and deps.table.run_page("status", "RUNNING", 10)[0] == []
