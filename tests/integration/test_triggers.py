"""Downstream triggers on moto: each target type's effect, once per run, failures retried and released.

moto models EventBridge (rule → SQS), SQS, Step Functions, Glue and SNS (→ SQS subscription); it has no
MWAA, so the MWAA target (InvokeRestApi) runs against a botocore Stubber checking the exact request.
"""

from __future__ import annotations

import json

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.stub import Stubber

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.events import RunEvents
from jobgraph.adapters.targets import Targets
from jobgraph.core.triggers import TriggerConfig
from jobgraph.services.triggers import TriggerDeps, TriggerFailedError, fire_triggers
from tests.lambda_support import FakeLambdaContext, event, load_handler

REGION, ACCOUNT = "eu-west-1", "123456789012"
RUN = {
    "run_id": "r1",
    "outcome": "COMPLETED",
    "test_run_id": "nightly-1",
    "scenario": 1,
    "sequences_total": 20,
    "results_uri": "s3://bucket/r1/",
}


@pytest.fixture
def downstream(fake_stack):
    """The targets a config points at, created on moto, and a queue that shows what each received."""
    c = {s: boto3.client(s, region_name=REGION) for s in ("events", "sqs", "stepfunctions", "glue", "sns", "iam")}
    sqs = c["sqs"]

    def queue(name):
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    bus_arn = c["events"].create_event_bus(Name="downstream")["EventBusArn"]
    bus_seen_url, bus_seen_arn = queue("bus-seen")
    c["events"].put_rule(
        Name="all", EventBusName="downstream", EventPattern=json.dumps({"source": ["jobgraph.downstream"]})
    )
    c["events"].put_targets(Rule="all", EventBusName="downstream", Targets=[{"Id": "q", "Arn": bus_seen_arn}])
    target_url, _ = queue("downstream-jobs")
    topic_arn = c["sns"].create_topic(Name="runs")["TopicArn"]
    sns_seen_url, sns_seen_arn = queue("sns-seen")
    c["sns"].subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=sns_seen_arn, Attributes={"RawMessageDelivery": "true"}
    )
    role = c["iam"].create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    machine_arn = c["stepfunctions"].create_state_machine(
        name="after-run",
        roleArn=role,
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
    )["stateMachineArn"]
    c["glue"].create_job(Name="load-results", Role=role, Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"})
    mwaa = boto3.client("mwaa", region_name=REGION)
    config = TriggerConfig.model_validate(
        {
            "triggers": [
                {"name": "bus", "outcomes": ["COMPLETED"], "target": {"type": "eventbridge", "event_bus_arn": bus_arn,
                                                                      "source": "jobgraph.downstream"},
                 "payload": {"run": "${run_id}", "n": "${sequences_total}"}},
                {"name": "queue", "outcomes": ["COMPLETED"], "target": {"type": "sqs", "queue_url": target_url}},
                {"name": "sfn", "outcomes": ["COMPLETED"],
                 "target": {"type": "stepfunctions", "state_machine_arn": machine_arn}},
                {"name": "glue", "outcomes": ["COMPLETED"], "target": {"type": "glue", "job_name": "load-results"},
                 "payload": {"--run_id": "${run_id}", "--results": "${results_uri}"}},
                {"name": "sns", "outcomes": ["COMPLETED"], "target": {"type": "sns", "topic_arn": topic_arn}},
                {"name": "dag", "outcomes": ["COMPLETED"],
                 "target": {"type": "mwaa", "environment_name": "analytics", "dag_id": "after_run"},
                 "payload": {"run_id": "${run_id}"}},
                {"name": "on-failure", "outcomes": ["FAILED"], "target": {"type": "sqs", "queue_url": target_url}},
                {"name": "adhoc-only", "outcomes": ["COMPLETED"], "filter": {"test_run_id_prefix": "adhoc-"},
                 "target": {"type": "sqs", "queue_url": target_url}},
            ]
        }
    )  # fmt: skip
    stubber = Stubber(mwaa)
    targets = Targets(client=lambda service: mwaa if service == "mwaa" else boto3.client(service, region_name=REGION))
    deps = TriggerDeps(config, JobsTable(fake_stack.table, client=fake_stack.dynamodb), targets)

    def received(url):
        out = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return out
            for m in messages:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    return {
        "deps": deps,
        "stubber": stubber,
        "received": received,
        "bus_seen": bus_seen_url,
        "target": target_url,
        "sns_seen": sns_seen_url,
        "machine": machine_arn,
        "clients": c,
        "stack": fake_stack,
    }


def expect_dag_run(stubber: Stubber, run_id: str = "r1") -> None:
    stubber.add_response(
        "invoke_rest_api",
        {"RestApiStatusCode": 200, "RestApiResponse": {"dag_run_id": f"{run_id}-dag", "state": "queued"}},
        {
            "Name": "analytics",
            "Path": "/dags/after_run/dagRuns",
            "Method": "POST",
            "Body": {"dag_run_id": f"{run_id}-dag", "conf": {"run_id": run_id}},
        },
    )


def test_each_target_type_takes_effect_once_per_run(downstream):
    d, c = downstream, downstream["clients"]
    expect_dag_run(d["stubber"])
    with d["stubber"]:
        done = fire_triggers(RUN, d["deps"])
        # Then every COMPLETED trigger that matches fired, the FAILED-only and adhoc-only ones did not
        assert [x["trigger"] for x in done] == ["bus", "queue", "sfn", "glue", "sns", "dag"]
        assert all(x["result"] == "fired" for x in done)
        # and a second delivery of the same run end fires nothing again
        again = fire_triggers(RUN, d["deps"])
        assert {x["result"] for x in again} == {"already fired"}
        d["stubber"].assert_no_pending_responses()

    bus_events = d["received"](d["bus_seen"])
    assert len(bus_events) == 1 and bus_events[0]["detail"] == {"run": "r1", "n": 20}
    assert bus_events[0]["source"] == "jobgraph.downstream"
    assert d["received"](d["target"]) == [{"run_id": "r1", "outcome": "COMPLETED"}]
    assert d["received"](d["sns_seen"]) == [{"run_id": "r1", "outcome": "COMPLETED"}]
    executions = c["stepfunctions"].list_executions(stateMachineArn=d["machine"])["executions"]
    assert [e["name"] for e in executions] == ["r1-sfn"]
    runs = c["glue"].get_job_runs(JobName="load-results")["JobRuns"]
    assert len(runs) == 1 and runs[0]["Arguments"] == {"--run_id": "r1", "--results": "s3://bucket/r1/"}
    records = {r["trigger"]: r for r in d["deps"].table.triggers_of_run("r1")}
    assert set(records) == {"bus", "queue", "sfn", "glue", "sns", "dag"}
    assert {r["status"] for r in records.values()} == {"FIRED"}
    assert records["dag"]["receipt"] == "r1-dag"


def test_a_failed_outcome_fires_only_failure_triggers(downstream):
    done = fire_triggers({**RUN, "run_id": "r2", "outcome": "FAILED"}, downstream["deps"])
    assert [x["trigger"] for x in done] == ["on-failure"]
    assert downstream["received"](downstream["target"]) == [{"run_id": "r2", "outcome": "FAILED"}]


def test_a_failing_target_is_released_and_fails_the_message_while_the_others_fire(downstream):
    d = downstream
    d["clients"]["sqs"].delete_queue(QueueUrl=d["target"])  # the SQS target is gone
    expect_dag_run(d["stubber"])
    with d["stubber"], pytest.raises(TriggerFailedError, match="queue"):
        fire_triggers(RUN, d["deps"])
    records = {r["trigger"]: r["status"] for r in d["deps"].table.triggers_of_run("r1")}
    assert "queue" not in records and records["bus"] == "FIRED"  # released: the retry fires it
    # the retry: only the failed one is attempted again (and fails again)
    with pytest.raises(TriggerFailedError):
        fire_triggers(RUN, d["deps"])
    assert len(d["received"](d["bus_seen"])) == 1


def test_mwaa_refusal_is_a_failure(downstream):
    d = downstream
    config = TriggerConfig.model_validate(
        {"triggers": [t.model_dump() for t in d["deps"].config.triggers if t.name == "dag"]}
    )
    deps = TriggerDeps(config, d["deps"].table, d["deps"].targets)
    d["stubber"].add_response(
        "invoke_rest_api", {"RestApiStatusCode": 404, "RestApiResponse": {"title": "DAG not found"}}
    )
    with d["stubber"], pytest.raises(TriggerFailedError, match="404"):
        fire_triggers(RUN, deps)


def test_the_handler_fails_on_a_failing_trigger_and_fires_once_otherwise(fake_stack, monkeypatch):
    # Given a config whose only target does not exist, When the trigger Lambda gets the run-end event,
    # Then the invocation fails (batch size 1: the whole batch), so SQS retries the event and, after
    # maxReceiveCount, dead-letters it
    bad = {"triggers": [{"name": "gone", "outcomes": ["COMPLETED"],
                         "target": {"type": "sqs", "queue_url": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/gone"}}]}  # fmt: skip
    monkeypatch.setenv("TRIGGER_CONFIG", json.dumps(bad))
    from jobgraph.services.triggers import trigger_runtime

    trigger_runtime.cache_clear()
    handler = load_handler("triggers")
    payload = event("triggers-run-completed")
    with pytest.raises(BatchProcessingError, match="gone: QueueDoesNotExist"):
        handler(payload, FakeLambdaContext(function_name="triggers"))
    # and with a target that exists it fires, once
    queue_url = fake_stack.sqs.create_queue(QueueName="fine")["QueueUrl"]
    good = {
        "triggers": [{"name": "fine", "outcomes": ["COMPLETED"], "target": {"type": "sqs", "queue_url": queue_url}}]
    }
    monkeypatch.setenv("TRIGGER_CONFIG", json.dumps(good))
    trigger_runtime.cache_clear()
    for _ in range(2):
        assert handler(payload, FakeLambdaContext(function_name="triggers")) == {"batchItemFailures": []}
    messages = fake_stack.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["run_id"] for m in messages] == ["events-demo"]
    trigger_runtime.cache_clear()


def test_the_scheduler_announces_a_run_end_once_and_again_only_if_unmarked(fake_stack):
    from jobgraph.services.run_events import announce_run_end

    events = boto3.client("events", region_name=REGION)
    events.create_event_bus(Name="runs")
    seen_url = fake_stack.sqs.create_queue(QueueName="run-ends")["QueueUrl"]
    seen_arn = fake_stack.sqs.get_queue_attributes(QueueUrl=seen_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="ends", EventBusName="runs", EventPattern=json.dumps({"source": ["jobgraph"]}))
    events.put_targets(Rule="ends", EventBusName="runs", Targets=[{"Id": "q", "Arn": seen_arn}])
    table = JobsTable(fake_stack.table, client=fake_stack.dynamodb)
    table.create_run("r9", "default", 1, 4, 10, 42)
    context = {"scenario": 1, "stack": "s", "bucket": "b", "prefix": ""}
    assert announce_run_end(table, RunEvents("runs", client=events), "r9", **context) is None  # still RUNNING
    table.complete_run("r9", "r9/merged_percentiles.json")
    assert announce_run_end(table, RunEvents("runs", client=events), "r9", **context)
    assert announce_run_end(table, RunEvents("runs", client=events), "r9", **context) is None  # announced
    messages = fake_stack.sqs.receive_message(QueueUrl=seen_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert body["detail-type"] == "Run Completed"
    assert (
        body["detail"]["run_id"] == "r9"
        and body["detail"]["merged_percentiles_uri"] == "s3://b/r9/merged_percentiles.json"
    )


def test_a_job_failing_its_last_attempt_fails_the_run_and_announces_it(fake_stack):
    from jobgraph.adapters.s3 import S3BlobStore
    from jobgraph.adapters.sqs import FifoQueue
    from jobgraph.core.models import CompletedJob, ExecType, JobStatus
    from jobgraph.core.results import ResultStore
    from jobgraph.services.scheduler import SchedulerDeps, schedule

    events = boto3.client("events", region_name=REGION)
    events.create_event_bus(Name="runs")
    seen_url = fake_stack.sqs.create_queue(QueueName="run-ends")["QueueUrl"]
    seen_arn = fake_stack.sqs.get_queue_attributes(QueueUrl=seen_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="ends", EventBusName="runs", EventPattern=json.dumps({"source": ["jobgraph"]}))
    events.put_targets(Rule="ends", EventBusName="runs", Targets=[{"Id": "q", "Arn": seen_arn}])
    table = JobsTable(fake_stack.table, client=fake_stack.dynamodb)
    table.create_run("rf", "default", 1, 4, 10, 42)
    deps = SchedulerDeps(
        results=ResultStore(S3BlobStore(fake_stack.bucket, client=fake_stack.s3)),
        table=table,
        incoming=FifoQueue(fake_stack.incoming_url, client=fake_stack.sqs),
        events=RunEvents("runs", client=events),
        event_context={"scenario": 1, "stack": "s", "bucket": fake_stack.bucket, "prefix": ""},
        job_max_attempts=3,
    )
    failed = CompletedJob(
        job_id="rf-s0-r1", status=JobStatus.FAILED, processing_time_ms=1.0, test_run_id="default", run_id="rf",
        correlation_id="rf-s0", exec_type=ExecType.INTERMEDIATE, sequence_id=0, route_index=1, error_message="boom",
    )  # fmt: skip
    for attempt, expected in ((1, "failure noted"), (2, "failure noted"), (3, "run failed"), (3, "run already ended")):
        table.record_job(failed, attempt)
        assert schedule(failed, deps) == expected
    run = table.get_run("rf")
    assert run["status"] == "FAILED" and "boom" in run["error"]
    messages = fake_stack.sqs.receive_message(QueueUrl=seen_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert body["detail-type"] == "Run Failed" and body["detail"]["outcome"] == "FAILED"
    assert body["detail"]["error"] == "rf-s0-r1: boom" and body["detail"]["merged_percentiles_uri"] is None
