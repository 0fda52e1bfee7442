"""services/scheduler.schedule: what the Scheduler does with each kind of completion, against the table on moto.

Every decision is asserted by its effect — the job sent next (compared with the graph's own job for that
step), the run item, what is read from S3 — and by the one-line outcome the Scheduler logs: a route's next
route or its AGGREGATION, each sequence counted once and exactly one MERGE, the run completed once, a job
that used up its attempts failing its run once, a synthetic job with no follow-up.
"""

from __future__ import annotations

import time
from datetime import datetime

import boto3
import pytest

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.events import RunEvents
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import aggregation_job, merge_job, route_job
from jobgraph.core.ids import new_task_id
from jobgraph.core.models import CompletedJob, ExecType, IncomingJob, JobStatus
from jobgraph.core.results import ResultStore, sequence_block, sequences_key
from jobgraph.core.run import RunSpec
from jobgraph.services import scheduler
from jobgraph.services.observability import metrics
from jobgraph.services.scheduler import SchedulerDeps, schedule
from jobgraph.services.settings import SchedulerSettings, load_settings
from tests.concurrency import at_once
from tests.doubles import report_on
from tests.log_lines import log_lines

SPEC = RunSpec("sched", "default", 50, 7)
SEQUENCES = [s for s in generate_sequences(8, seed=3) if len(s.routes) >= 3][:2]


class CountingResults(ResultStore):
    """The run's result store, counting the sequence reads (of a block of sequences) the Scheduler makes."""

    reads = 0

    def get_sequences(self, run_id, block):
        self.reads += 1
        return super().get_sequences(run_id, block)


@pytest.fixture
def stack(fake_stack):
    results = CountingResults(S3BlobStore(fake_stack.bucket, client=fake_stack.s3))
    results.put_sequences(SPEC.run_id, SEQUENCES)
    table = JobsTable(fake_stack.table, client=fake_stack.dynamodb)
    routes = sum(len(s.routes) for s in SEQUENCES)
    table.create_run(SPEC.run_id, "default", len(SEQUENCES), routes + len(SEQUENCES) + 1, SPEC.scenarios, SPEC.seed)
    fake_stack.results, fake_stack.jobs = results, table
    return fake_stack


def deps_of(stack, job_max_attempts: int = 0, events: RunEvents | None = None) -> SchedulerDeps:
    incoming = FifoQueue(stack.incoming_url, stack.sqs)
    context = {"scenario": 1, "stack": "jobgraph", "bucket": stack.bucket, "prefix": ""}
    return SchedulerDeps(
        stack.results, stack.jobs, incoming, events=events, event_context=context, job_max_attempts=job_max_attempts
    )


class RecordingBus(RunEvents):
    """The stack's bus on moto, keeping what was published (moto does not let a test read a bus back)."""

    def __init__(self, client):
        client.create_event_bus(Name="runs")
        super().__init__("runs", client)
        self.published: list[tuple[str, dict]] = []

    def publish(self, detail: dict) -> str:
        event_id = super().publish(detail)
        self.published.append((event_id, detail))
        return event_id


def done(job: IncomingJob, status: JobStatus = JobStatus.COMPLETED, error: str | None = None) -> CompletedJob:
    """The Processor's report on ``job`` (as services/processor builds it)."""
    return report_on(job, status, ms=3.0, output_key=None if error else f"out/{job.job_id}", error_message=error)


def fields(job: IncomingJob) -> dict:
    return job.model_dump(exclude={"submitted_at"})


def test_a_route_completion_sends_the_next_route_and_the_last_route_its_aggregation(stack):
    sent: list[IncomingJob] = []
    sequence = SEQUENCES[0]
    last = len(sequence.routes) - 1
    for index in range(last):
        outcome = schedule(done(route_job(SPEC, sequence, index)), deps_of(stack), sent.append)
        expected = route_job(SPEC, sequence, index + 1)
        assert outcome == f"sent {expected.exec_type} {expected.job_id}"
        assert fields(sent.pop()) == fields(expected)
    outcome = schedule(done(route_job(SPEC, sequence, last)), deps_of(stack), sent.append)
    expected = aggregation_job(SPEC, sequence.sequence_id, len(sequence.routes))
    assert outcome == f"sent AGGREGATION {expected.job_id}" and [fields(j) for j in sent] == [fields(expected)]


def test_a_warm_scheduler_reads_each_block_of_sequences_once_and_never_for_a_last_route(stack):
    deps = deps_of(stack)
    assert len({sequence_block(s.sequence_id) for s in SEQUENCES}) == 1
    for sequence in SEQUENCES:
        for index in range(len(sequence.routes)):
            schedule(done(route_job(SPEC, sequence, index)), deps, lambda job: None)
    assert stack.results.reads == 1  # both sequences' routes, one S3 GET
    # the last route needs no sequence: its AGGREGATION is scheduled even if the stored copy is gone
    sequence = SEQUENCES[1]
    key = sequences_key(SPEC.run_id, sequence_block(sequence.sequence_id))
    assert stack.results.blobs.exists(key)
    stack.s3.delete_object(Bucket=stack.bucket, Key=key)
    fresh = deps_of(stack)
    outcome = schedule(done(route_job(SPEC, sequence, len(sequence.routes) - 1)), fresh, lambda job: None)
    assert outcome.startswith("sent AGGREGATION") and stack.results.reads == 1


def test_without_a_collector_the_next_job_goes_to_the_incoming_queue(stack):
    job = route_job(SPEC, SEQUENCES[0], 0)
    schedule(done(job), deps_of(stack))
    (message,) = stack.drain(stack.incoming_url)
    assert message["body"]["job_id"] == route_job(SPEC, SEQUENCES[0], 1).job_id
    assert message["group"] == job.correlation_id


def test_each_sequence_is_counted_once_and_exactly_one_aggregation_sends_the_merge(stack):
    deps, sent = deps_of(stack), []
    first, second = (aggregation_job(SPEC, s.sequence_id, len(s.routes)) for s in SEQUENCES)
    assert schedule(done(first), deps, sent.append) == "sequence counted"
    assert schedule(done(first), deps, sent.append) == "duplicate aggregation ignored"
    assert stack.item(f"RUN#{SPEC.run_id}", "RUN")["sequences_remaining"] == 1 and sent == []
    merge = merge_job(SPEC)
    assert schedule(done(second), deps, sent.append) == f"sent MERGE {merge.job_id}"
    assert [fields(j) for j in sent] == [fields(merge)]
    # the claimant's redelivery (it may have died before sending) sends the MERGE again; job ids deduplicate
    assert schedule(done(second), deps, sent.append) == f"sent MERGE {merge.job_id}"
    # a late duplicate of another sequence's aggregation neither counts nor claims
    assert schedule(done(first), deps, sent.append) == "duplicate aggregation ignored" and len(sent) == 2
    run = stack.item(f"RUN#{SPEC.run_id}", "RUN")
    assert run["sequences_remaining"] == 0 and run["merge_claimed_by"] == second.job_id


def test_the_merge_completes_the_run_once(stack):
    merge = merge_job(SPEC)
    assert schedule(done(merge), deps_of(stack), lambda job: None) == "run completed"
    run = stack.item(f"RUN#{SPEC.run_id}", "RUN")
    assert (run["status"], run["merged_key"], run["gsi1pk"]) == ("COMPLETED", f"out/{merge.job_id}", "RUN#COMPLETED")
    assert schedule(done(merge), deps_of(stack), lambda job: None) == "run already completed"


def failed_at(stack, job: IncomingJob, attempt: int) -> CompletedJob:
    """A failure as the Processor leaves it: recorded on the job record with its attempt, then reported."""
    report = done(job, JobStatus.FAILED, f"boom on attempt {attempt}")
    assert stack.jobs.record_job(report, attempt=attempt) is None
    return report


def test_a_failed_job_fails_its_run_only_on_its_last_attempt_and_only_once(stack):
    deps, sent = deps_of(stack, job_max_attempts=3), []
    job, other = route_job(SPEC, SEQUENCES[0], 1), route_job(SPEC, SEQUENCES[1], 0)
    for attempt in (1, 2):
        assert schedule(failed_at(stack, job, attempt), deps, sent.append) == "failure noted"
        assert stack.item(f"RUN#{SPEC.run_id}", "RUN")["status"] == "RUNNING"
    assert schedule(failed_at(stack, job, 3), deps, sent.append) == "run failed"
    run = stack.item(f"RUN#{SPEC.run_id}", "RUN")
    assert (run["status"], run["gsi1pk"], run["error"]) == ("FAILED", "RUN#FAILED", f"{job.job_id}: boom on attempt 3")
    assert run["duration_s"] >= 0 and run["completed_at"]
    assert schedule(failed_at(stack, other, 4), deps, sent.append) == "run already ended"
    assert stack.item(f"RUN#{SPEC.run_id}", "RUN")["error"] == run["error"] and sent == []


def test_without_an_attempt_limit_a_failure_never_fails_the_run(stack):
    job = route_job(SPEC, SEQUENCES[0], 0)
    assert schedule(failed_at(stack, job, 9), deps_of(stack), lambda j: None) == "failure noted"
    assert stack.item(f"RUN#{SPEC.run_id}", "RUN")["status"] == "RUNNING"


def test_a_synthetic_job_has_no_follow_up(stack):
    job = route_job(SPEC, SEQUENCES[0], 0).model_copy(update={"exec_type": ExecType.SYNTHETIC})
    sent = []
    assert schedule(done(job), deps_of(stack), sent.append) == "synthetic job done" and sent == []
    assert stack.item(f"RUN#{SPEC.run_id}", "RUN")["status"] == "RUNNING"


@pytest.mark.parametrize("missing", ["scenarios", "seed"])
def test_a_completion_without_its_runs_scenarios_or_seed_is_refused_by_name(missing):
    report = done(route_job(SPEC, SEQUENCES[0], 0)).model_copy(update={missing: None})
    with pytest.raises(ValueError, match=rf"^{report.job_id}: message lacks scenarios/seed$"):
        RunSpec.of(report)
    assert RunSpec.of(done(route_job(SPEC, SEQUENCES[0], 0))) == SPEC


def started_an_hour_ago(stack) -> float:
    """Back-dates the run's start by exactly one hour; returns the time.time() just before the backdating."""
    now = time.time()
    stack.dynamodb.update_item(
        TableName=stack.table,
        Key={"pk": {"S": f"RUN#{SPEC.run_id}"}, "sk": {"S": "RUN"}},
        UpdateExpression="SET started_epoch_ms = :ms",
        ExpressionAttributeValues={":ms": {"N": str(int(now * 1000) - 3_600_000)}},
    )
    return now


def assert_ended_an_hour_after_its_start(run: dict, before: float, after: float) -> None:
    # duration = end − start in seconds (to the ms), the end being the moment it was written, in UTC
    assert 3600 - 0.001 <= float(run["duration_s"]) <= 3600 + (after - before) + 0.002
    ended = datetime.fromisoformat(run["completed_at"].replace("Z", "+00:00"))
    assert run["completed_at"].endswith("Z") and before - 1 <= ended.timestamp() <= after + 1


def test_a_completed_run_records_when_it_ended_and_how_long_it_took(stack):
    before = started_an_hour_ago(stack)
    assert schedule(done(merge_job(SPEC)), deps_of(stack), lambda job: None) == "run completed"
    assert_ended_an_hour_after_its_start(stack.item(f"RUN#{SPEC.run_id}", "RUN"), before, time.time())


def test_a_failed_run_records_when_it_ended_and_how_long_it_took(stack):
    before = started_an_hour_ago(stack)
    report = failed_at(stack, route_job(SPEC, SEQUENCES[0], 0), 2)
    assert schedule(report, deps_of(stack, job_max_attempts=2), lambda job: None) == "run failed"
    assert_ended_an_hour_after_its_start(stack.item(f"RUN#{SPEC.run_id}", "RUN"), before, time.time())


def test_the_completed_run_is_announced_once_also_when_its_first_delivery_died_before_announcing(stack):
    bus = RecordingBus(boto3.client("events", region_name="eu-west-1"))
    # the first delivery completed the run and died before announcing it
    assert stack.jobs.complete_run(SPEC.run_id, "out/merged")
    merge = done(merge_job(SPEC))
    assert schedule(merge, deps_of(stack, events=bus), lambda job: None) == "run already completed"
    ((event_id, detail),) = bus.published
    assert (detail["run_id"], detail["outcome"], detail["stack"]) == (SPEC.run_id, "COMPLETED", "jobgraph")
    assert stack.item(f"RUN#{SPEC.run_id}", "RUN")["announced_event_id"] == event_id
    assert schedule(merge, deps_of(stack, events=bus), lambda job: None) == "run already completed"
    assert len(bus.published) == 1


def test_a_run_failed_by_its_last_attempt_is_announced(stack):
    bus = RecordingBus(boto3.client("events", region_name="eu-west-1"))
    report = failed_at(stack, route_job(SPEC, SEQUENCES[0], 0), 1)
    assert schedule(report, deps_of(stack, job_max_attempts=1, events=bus), lambda job: None) == "run failed"
    ((event_id, detail),) = bus.published
    assert (detail["run_id"], detail["outcome"]) == (SPEC.run_id, "FAILED")
    assert stack.item(f"RUN#{SPEC.run_id}", "RUN")["announced_event_id"] == event_id


def test_a_completed_run_reports_its_duration_as_a_metric(stack):
    metrics.clear_metrics()
    try:
        assert schedule(done(merge_job(SPEC)), deps_of(stack), lambda job: None) == "run completed"
        duration = float(stack.item(f"RUN#{SPEC.run_id}", "RUN")["duration_s"])
        assert metrics.metric_set["RunDurationSeconds"]["Unit"] == "Seconds"
        assert metrics.metric_set["RunDurationSeconds"]["Value"] == [duration]
        # a redelivery reports nothing more
        schedule(done(merge_job(SPEC)), deps_of(stack), lambda job: None)
        assert metrics.metric_set["RunDurationSeconds"]["Value"] == [duration]
    finally:
        metrics.clear_metrics()


@pytest.fixture
def logged():
    with log_lines() as lines:
        yield lines


def test_the_log_says_what_was_decided_about_which_job_of_which_run(stack, logged):
    bus = RecordingBus(boto3.client("events", region_name="eu-west-1"))
    job = route_job(SPEC, SEQUENCES[0], 0)
    schedule(failed_at(stack, job, 1), deps_of(stack, job_max_attempts=2, events=bus), lambda j: None)
    failed = logged["job reported failed"]
    assert (failed["level"], failed["error_message"]) == ("WARNING", "boom on attempt 1")
    assert (failed["job_id"], failed["correlation_id"]) == (job.job_id, job.correlation_id)
    schedule(done(merge_job(SPEC)), deps_of(stack, events=bus), lambda j: None)
    ((event_id, _),) = bus.published
    completed, announced = logged["run completed"], logged["run end announced"]
    assert (completed["run_id"], completed["duration_s"]) == (
        SPEC.run_id,
        float(stack.item(f"RUN#{SPEC.run_id}", "RUN")["duration_s"]),
    )
    assert (announced["run_id"], announced["event_id"], announced["job_id"]) == (
        SPEC.run_id,
        event_id,
        merge_job(SPEC).job_id,
    )


def test_the_deployed_scheduler_is_wired_from_its_settings(monkeypatch):
    env = {
        "BUCKET_NAME": "results-bucket", "TABLE_NAME": "jobs-table", "RESULTS_PREFIX": "perf", "RECORD_TTL_DAYS": "7",
        "INCOMING_QUEUE_URL": "http://127.0.0.1:1/123456789012/in.fifo", "JOB_MAX_ATTEMPTS": "4",
        "RUN_EVENTS_BUS_NAME": "runs-bus", "SCENARIO": "2", "STACK_NAME": "perf-stack",
    }  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    deps = SchedulerDeps.from_settings(load_settings(SchedulerSettings))
    assert (deps.table.table_name, deps.table.ttl_days, deps.incoming.queue_url) == (
        "jobs-table",
        7,
        env["INCOMING_QUEUE_URL"],
    )
    assert (deps.results.blobs.bucket, deps.results.blobs.prefix, deps.job_max_attempts) == (
        "results-bucket",
        "perf/",
        4,
    )
    assert isinstance(deps.events, RunEvents) and deps.events.bus_name == "runs-bus"
    assert deps.event_context == {"scenario": 2, "stack": "perf-stack", "bucket": "results-bucket", "prefix": "perf"}


def test_errors_are_kept_to_2000_characters_and_attempts_start_at_zero(stack):
    job = route_job(SPEC, SEQUENCES[0], 0)
    assert stack.jobs.job_attempts(SPEC.run_id, job.job_id) == 0  # no record yet
    long_error = "e" * 1990 + "0123456789" + "x" * 3000
    assert stack.jobs.record_job(done(job, JobStatus.FAILED, long_error), attempt=2) is None
    record = stack.item(f"RUN#{SPEC.run_id}", f"JOB#{job.job_id}")
    assert record["error_message"] == long_error[:2000] and record["error_message"].endswith("0123456789")
    assert stack.jobs.job_attempts(SPEC.run_id, job.job_id) == 2
    assert stack.jobs.fail_run(SPEC.run_id, long_error)
    assert stack.item(f"RUN#{SPEC.run_id}", "RUN")["error"] == long_error[:2000]
    # an API task's job has no run to fail (its own record says FAILED)
    assert stack.jobs.fail_run(new_task_id(), "boom") is False


def test_a_batch_of_group_threads_asking_for_one_block_together_reads_it_once(stack, monkeypatch):
    """A batch's message groups run in threads: on a cold Scheduler they all ask for the block at once."""
    get_sequences = CountingResults.get_sequences

    def slow_read(self, run_id, block):
        time.sleep(0.05)  # a GET in flight while the other threads ask
        return get_sequences(self, run_id, block)

    monkeypatch.setattr(CountingResults, "get_sequences", slow_read)
    deps = deps_of(stack)
    found = at_once(8, lambda i: deps.sequence(SPEC.run_id, SEQUENCES[i % 2].sequence_id))
    assert found == [SEQUENCES[i % 2] for i in range(8)]
    assert stack.results.reads == 1


def test_the_sequence_cache_is_bounded(stack, monkeypatch):
    """A warm Scheduler serves many runs: it keeps at most SEQUENCE_CACHE_BLOCKS blocks of sequences."""
    first = SEQUENCES[0]
    far = SEQUENCES[1].model_copy(update={"sequence_id": SEQUENCES[1].sequence_id + 100})  # in the next block
    stack.results.put_sequences(SPEC.run_id, [far])
    deps = deps_of(stack)
    for sequence in (first, far, first):
        schedule(done(route_job(SPEC, sequence, 0)), deps, lambda job: None)
    assert stack.results.reads == 2
    monkeypatch.setattr(scheduler, "SEQUENCE_CACHE_BLOCKS", 1)
    deps = deps_of(stack)
    for sequence in (first, far, first):
        schedule(done(route_job(SPEC, sequence, 0)), deps, lambda job: None)
    assert stack.results.reads == 2 + 3
