"""Scenario 3's tasks (services/step_tasks.py) on a data layer without AWS (DataLayer.in_memory: a folder and the
in-memory jobs table): PrepareRun registers the run once and writes its plan; StepTask runs the plan, answers
a retry of a completed job from its record, and the MERGE completes the run and announces it once.
(tests/integration/test_step_tasks.py runs the built handlers on moto and checks their IAM roles.)"""

from __future__ import annotations

import json

from jobgraph.adapters.local_disk import LocalDiskBlobStore
from jobgraph.core.models import IncomingJob
from jobgraph.services.data import DataLayer
from jobgraph.services.settings import PrepareRunSettings, StepTaskSettings
from jobgraph.services.step_tasks import PrepareRunDeps, StepTaskDeps, StepTaskRuntime, prepare_run, run_step_job
from tests.doubles import Bus
from tests.lambda_support import event

RUN = "events-demo"


class Bucket(LocalDiskBlobStore):
    """A folder standing in for the results bucket (PrepareRun names its plan's key with the bucket's prefix)."""

    prefix = ""


def test_the_demo_run_prepared_and_stepped_through_completes_once(tmp_path) -> None:
    data = DataLayer.in_memory(Bucket(tmp_path))
    settings = PrepareRunSettings(BUCKET_NAME="bucket", TABLE_NAME="table")  # type: ignore[call-arg]
    prepared = prepare_run(event("start-run"), PrepareRunDeps(data.results, data.table, settings))
    assert prepared["status"] == "RUNNING" and prepared["jobs_total"] == 5
    again = prepare_run(event("start-run"), PrepareRunDeps(data.results, data.table, settings))
    assert again["status"] == "REJECTED" and RUN in again["cause"]  # a run id is used once
    (item,) = json.loads(data.blobs.get(prepared["plan_key"]))
    bus = Bus()
    context = {"scenario": 3, "stack": "s", "bucket": "bucket", "prefix": ""}
    deps = StepTaskDeps(data.results, data.table, bus, context)  # type: ignore[arg-type]
    jobs = [IncomingJob.model_validate(j) for j in [*item["routes"], item["aggregation"]]]
    first = [run_step_job(job, deps) for job in jobs]
    retried = run_step_job(jobs[0], deps, attempt=2)  # Step Functions retried a task whose job had completed
    assert retried.output_key == first[0].output_key and retried.completed_at == first[0].completed_at
    record = data.table.get_job(RUN, jobs[0].job_id) or {}
    assert record["reports"] == 1
    merged = run_step_job(IncomingJob.model_validate(prepared["merge"]), deps)
    run = data.table.get_run(RUN)
    assert run["status"] == "COMPLETED" and run["merged_key"] == merged.output_key
    assert data.table.count_jobs(RUN) == 5
    runtime = StepTaskRuntime(StepTaskSettings(BUCKET_NAME="bucket", TABLE_NAME="table"), deps)  # type: ignore[call-arg]
    assert runtime.announce(RUN) == "event-1"
    assert runtime.announce(RUN) is None  # announced before
    assert [e["outcome"] for e in bus.published] == ["COMPLETED"]
