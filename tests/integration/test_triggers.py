"""Downstream workflows (seed 003) on moto: what each target type receives, once per run, failures released and
retried, the approval flow end to end (request, decide, announce, fire on_approval, expire), the handler.

moto models EventBridge (rule → SQS), SQS, Step Functions, Glue and SNS (→ SQS subscription); it has no
MWAA, so the mwaa_dag target (InvokeRestApi) runs against a botocore Stubber checking the exact request.
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
from jobgraph.adapters.trigger_config import TriggerConfigStore
from jobgraph.core.errors import ApprovalConflictError, ApprovalExpiredError, ApprovalNotFoundError
from jobgraph.core.trigger_event import source_event
from jobgraph.core.triggers import dedup_token
from jobgraph.services import approvals
from jobgraph.services.triggers import RunEvent, TriggerDeps, TriggerFailedError, handle_event
from tests.lambda_support import FakeLambdaContext, event, load_handler

REGION, ACCOUNT = "eu-west-1", "123456789012"
DETAIL = {
    "run_id": "r1",
    "outcome": "COMPLETED",
    "test_run_id": "nightly",
    "scenario": 1,
    "stack": "scenario-1-dev",
    "sequences_total": 20,
    "jobs_total": 120,
    "scenarios": 1000,
    "seed": 42,
    "started_at": "2026-12-01T01:00:00.000Z",
    "completed_at": "2026-12-01T01:15:00.000Z",
    "duration_s": 900.0,
    "results_uri": "s3://jobgraph-results/r1/",
    "merged_percentiles_uri": "s3://jobgraph-results/r1/merged_percentiles.json",
    "error": None,
}
MERGED = {"curfew_breach_probability": 0.05, "final_arrival_delay_min": {"p95": 40.0}}


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def run_end(detail: dict, detail_type: str = "Run Completed") -> RunEvent:
    return RunEvent.model_validate({"source": "jobgraph", "detail-type": detail_type, "detail": detail})


@pytest.fixture
def downstream(fake_stack):
    """The targets a config points at, created on moto, queues that show what each received, the config in S3."""
    c = {s: boto3.client(s, region_name=REGION) for s in ("events", "sqs", "stepfunctions", "glue", "sns", "iam")}
    sqs = c["sqs"]

    def queue(name, **attributes):
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    c["events"].create_event_bus(Name="analytics")
    bus_seen_url, bus_seen_arn = queue("bus-seen")
    c["events"].put_rule(
        Name="all", EventBusName="analytics", EventPattern=json.dumps({"source": ["dwh.orchestrator"]})
    )
    c["events"].put_targets(Rule="all", EventBusName="analytics", Targets=[{"Id": "q", "Arn": bus_seen_arn}])
    # the stack's own bus: run events (an approval's "Run Approved") reach the trigger queue through a rule
    c["events"].create_event_bus(Name="runs")
    trigger_queue_url, trigger_queue_arn = queue("trigger")
    # the template's RunEndRule pattern; and a rule of the deciders' own for pending approvals
    pattern = {"source": ["jobgraph"], "detail-type": ["Run Completed", "Run Failed", "Run Approved"]}
    c["events"].put_rule(Name="run-end", EventBusName="runs", EventPattern=json.dumps(pattern))
    c["events"].put_targets(Rule="run-end", EventBusName="runs", Targets=[{"Id": "q", "Arn": trigger_queue_arn}])
    deciders_url, deciders_arn = queue("deciders")
    pending = {"source": ["jobgraph"], "detail-type": ["Run Pending Approval"]}
    c["events"].put_rule(Name="pending", EventBusName="runs", EventPattern=json.dumps(pending))
    c["events"].put_targets(Rule="pending", EventBusName="runs", Targets=[{"Id": "q", "Arn": deciders_arn}])
    jobs_url, _ = queue("downstream-jobs")
    mwaa_queue_url, _ = queue("mwaa-triggers.fifo", FifoQueue="true")
    topic_arn = c["sns"].create_topic(Name="oncall")["TopicArn"]
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
    c["glue"].create_job(Name="load-results", Role=role, Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"},
                         ExecutionProperty={"MaxConcurrentRuns": 10})  # fmt: skip
    document = {
        "sqs_mwaa_queue_url": mwaa_queue_url,
        "workflows": {
            "nightly": {
                "description": "Nightly run",
                "approval": {"when": [{"field": "metrics.curfew_breach_probability", "above": 0.2}],
                             "expires_after_hours": 2},
                "on_success": [
                    {"type": "eventbridge", "event_bus": "analytics", "detail_type": "JobComplete", "source": "dwh.orchestrator"},
                    {"type": "sqs", "name": "queue", "queue_url": jobs_url},
                    {"type": "step_function", "name": "sfn", "arn": machine_arn},
                    {"type": "glue_job", "name": "glue", "job_name": "load-results",
                     "arguments": {"--source_path": "${artifacts.output_path}"}},
                    {"type": "mwaa_dag", "name": "dag", "environment_name": "analytics", "dag_id": "after_run",
                     "parameter_mapping": {"start_date": "start_date"}, "conf": {"custom_param": "value"}},
                    {"type": "sqs_mwaa", "name": "dag-via-sqs", "dag_id": "report", "parameter_mapping": {"end_date": "end_date"}},
                ],
                "on_approval": [{"type": "glue_job", "name": "glue-approved", "job_name": "load-results",
                                 "arguments": {"--approval_required": "true", "--approved_by": "${approval.decided_by}"}}],
                "on_failure": [{"type": "sns", "name": "page", "topic_arn": topic_arn, "subject": "run failed"}],
            }
        },
    }  # fmt: skip
    fake_stack.s3.put_object(Bucket=fake_stack.bucket, Key="config/triggers.json", Body=json.dumps(document).encode())
    fake_stack.s3.put_object(
        Bucket=fake_stack.bucket, Key="r1/merged_percentiles.json", Body=json.dumps(MERGED).encode()
    )
    mwaa = boto3.client("mwaa", region_name=REGION)
    stubber = Stubber(mwaa)
    targets = Targets(
        client=lambda service, region=None: mwaa if service == "mwaa" else boto3.client(service, region_name=REGION)
    )
    clock = Clock()
    configs = TriggerConfigStore(fake_stack.bucket, "config/triggers.json", "", "{}", cache_s=0,
                                 client=lambda service: boto3.client(service, region_name=REGION))  # fmt: skip
    table = JobsTable(fake_stack.table, client=fake_stack.dynamodb)

    def merged(run_id):
        try:
            return json.loads(
                fake_stack.s3.get_object(Bucket=fake_stack.bucket, Key=f"{run_id}/merged_percentiles.json")[
                    "Body"
                ].read()
            )
        except fake_stack.s3.exceptions.NoSuchKey:
            return None

    events = RunEvents("runs", client=c["events"])
    deps = TriggerDeps(configs, table, targets, merged, stale_s=90, clock=clock, events=events)

    def received(url):
        out = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
                "Messages", []
            )
            if not messages:
                return out
            for m in messages:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    return {
        "deps": deps, "stubber": stubber, "received": received, "clock": clock, "clients": c, "stack": fake_stack,
        "bus_seen": bus_seen_url, "jobs": jobs_url, "mwaa_queue": mwaa_queue_url, "sns_seen": sns_seen_url,
        "machine": machine_arn, "trigger_queue": trigger_queue_url, "events": events, "deciders": deciders_url,
        "document": document,
    }  # fmt: skip


def expect_dag_run(stubber: Stubber, run_id: str = "r1") -> None:
    event = source_event(DETAIL | {"run_id": run_id}, MERGED)
    stubber.add_response(
        "invoke_rest_api",
        {"RestApiStatusCode": 200, "RestApiResponse": {"dag_run_id": "from-airflow", "state": "queued"}},
        {
            "Name": "analytics",
            "Path": "/dags/after_run/dagRuns",
            "Method": "POST",
            "Body": {
                "dag_run_id": dedup_token(run_id, "nightly", "success", "dag"),
                "conf": {
                    "triggered_by_job": "nightly",
                    "triggered_by_run_id": run_id,
                    "start_date": DETAIL["started_at"],
                    "source_artifacts": event["artifacts"],
                    "source_metrics": event["metrics"],
                    "custom_param": "value",
                },
            },
        },
    )


def glue_runs(d) -> list[dict]:
    return d["clients"]["glue"].get_job_runs(JobName="load-results")["JobRuns"]


def test_each_target_type_receives_the_seeds_payload_once_per_run(downstream):
    d = downstream
    expect_dag_run(d["stubber"])
    with d["stubber"]:
        done = handle_event(run_end(DETAIL), d["deps"])
        assert [x["result"] for x in done] == ["fired"] * 6
        again = handle_event(run_end(DETAIL), d["deps"])  # a redelivered (or twice published) run end
        assert [x["result"] for x in again] == ["already fired"] * 6
    d["stubber"].assert_no_pending_responses()
    expected = source_event(DETAIL, MERGED)
    seed_input = {"triggered_by_job": "nightly", "triggered_by_run_id": "r1", "source_event": expected}
    # EventBridge: the detail on the bus, seen through a rule
    (bus_event,) = d["received"](d["bus_seen"])
    assert bus_event["detail-type"] == "JobComplete" and bus_event["detail"] == seed_input
    assert d["received"](d["jobs"]) == [seed_input]
    (execution,) = d["clients"]["stepfunctions"].list_executions(stateMachineArn=d["machine"])["executions"]
    assert execution["name"] == dedup_token("r1", "nightly", "success", "sfn")
    described = d["clients"]["stepfunctions"].describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == seed_input
    (run,) = glue_runs(d)
    assert run["Arguments"]["--source_path"] == "s3://jobgraph-results/r1/"
    assert run["Arguments"]["--triggered_by_job"] == "nightly" and run["Arguments"]["--triggered_by_run_id"] == "r1"
    assert json.loads(run["Arguments"]["--source_artifacts"]) == expected["artifacts"]
    assert run["Arguments"]["--jobgraph_trigger_id"] == dedup_token("r1", "nightly", "success", "glue")
    (message,) = d["received"](d["mwaa_queue"])
    assert message["dag_id"] == "report" and message["conf"]["end_date"] == DETAIL["completed_at"]
    assert message["dag_run_id"] == dedup_token("r1", "nightly", "success", "dag-via-sqs")
    records = {r["trigger"]: r for r in d["deps"].table.triggers_of_run("r1")}
    assert {r["status"] for r in records.values()} == {"FIRED"} and len(records) == 6
    assert records["sfn"]["receipt"] == execution["executionArn"] and records["dag"]["receipt"] == "from-airflow"
    assert all(int(r["attempts"]) == 1 for r in records.values())


def test_a_failed_run_fires_on_failure_only(downstream):
    d = downstream
    done = handle_event(
        run_end({**DETAIL, "run_id": "r2", "outcome": "FAILED", "error": "job x dead"}, "Run Failed"), d["deps"]
    )
    assert [(x["kind"], x["trigger"], x["result"]) for x in done] == [("failure", "page", "fired")]
    (message,) = d["received"](d["sns_seen"])
    assert message["source_event"]["status"] == "FAILED" and message["source_event"]["error"] == "job x dead"
    assert d["received"](d["jobs"]) == [] and glue_runs(d) == []


def test_a_run_of_another_job_name_or_another_event_fires_nothing(downstream):
    assert handle_event(run_end({**DETAIL, "test_run_id": "adhoc"}), downstream["deps"]) == []
    # a pending-approval event routed here by some rule is not a run end
    assert (
        handle_event(run_end({**DETAIL, "outcome": "PENDING_APPROVAL"}, "Run Pending Approval"), downstream["deps"])
        == []
    )
    assert downstream["deps"].table.triggers_of_run("r1") == []


def test_a_refused_trigger_is_released_and_fires_on_the_retry_while_the_others_stay_fired(downstream):
    d = downstream
    d["clients"]["sqs"].delete_queue(QueueUrl=d["jobs"])
    expect_dag_run(d["stubber"])
    with d["stubber"], pytest.raises(TriggerFailedError, match="queue: TargetRefusedError"):
        handle_event(run_end(DETAIL), d["deps"])
    records = {r["trigger"]: r for r in d["deps"].table.triggers_of_run("r1")}
    assert records["queue"]["status"] == "RELEASED" and "NonExistentQueue" in records["queue"]["last_error"]
    assert sum(r["status"] == "FIRED" for r in records.values()) == 5
    d["clients"]["sqs"].create_queue(QueueName="downstream-jobs")
    done = handle_event(run_end(DETAIL), d["deps"])
    assert [x["result"] for x in done] == ["already fired"] + ["fired"] + ["already fired"] * 4
    records = {r["trigger"]: r for r in d["deps"].table.triggers_of_run("r1")}
    assert records["queue"]["status"] == "FIRED" and int(records["queue"]["attempts"]) == 2
    assert len(d["received"](d["jobs"])) == 1 and len(glue_runs(d)) == 1


def test_airflow_answering_409_means_the_dag_run_exists_and_404_is_a_refusal(downstream):
    d = downstream
    only_dag = {"workflows": {"nightly": {"on_success": [d["document"]["workflows"]["nightly"]["on_success"][4]]}}}
    d["stack"].s3.put_object(Bucket=d["stack"].bucket, Key="config/triggers.json", Body=json.dumps(only_dag).encode())
    d["stubber"].add_client_error("invoke_rest_api", "RestApiClientException", "not found", 400,
                                  modeled_fields={"RestApiStatusCode": 404, "RestApiResponse": {"title": "DAG not found"}})  # fmt: skip
    with d["stubber"], pytest.raises(TriggerFailedError, match="RestApiClientException"):
        handle_event(run_end(DETAIL), d["deps"])
    d["stubber"].add_client_error("invoke_rest_api", "RestApiClientException", "exists", 400,
                                  modeled_fields={"RestApiStatusCode": 409, "RestApiResponse": {"title": "Conflict"}})  # fmt: skip
    with d["stubber"]:
        (done,) = handle_event(run_end(DETAIL), d["deps"])
    assert done["result"] == "fired" and done["receipt"] == dedup_token("r1", "nightly", "success", "dag")


def test_a_gated_run_waits_for_approval_then_fires_on_approval_once(downstream):
    d = downstream
    d["stack"].s3.put_object(Bucket=d["stack"].bucket, Key="r3/merged_percentiles.json",
                             Body=json.dumps({**MERGED, "curfew_breach_probability": 0.4}).encode())  # fmt: skip
    # Given a run whose curfew risk fails the workflow's gate: nothing fires, the run waits
    (waiting,) = handle_event(run_end({**DETAIL, "run_id": "r3"}), d["deps"])
    assert waiting["result"] == "PENDING_APPROVAL"
    assert waiting["reasons"] == ["metrics.curfew_breach_probability = 0.4 > 0.2"]
    assert d["deps"].table.triggers_of_run("r3") == [] and glue_runs(d) == []
    view = approvals.get_approval(d["deps"].table, "r3", now=d["clock"]() + 60)
    assert view["status"] == "PENDING_APPROVAL" and view["workflow"] == "nightly"
    # whoever must decide hears of it on the bus (the run-end rule does not queue it); a redelivered run end
    # asks once and tells once
    handle_event(run_end({**DETAIL, "run_id": "r3"}), d["deps"])
    (told,) = d["received"](d["deciders"])
    assert told["detail-type"] == "Run Pending Approval" and told["detail"]["workflow"] == "nightly"
    assert told["detail"]["reasons"] == ["metrics.curfew_breach_probability = 0.4 > 0.2"]
    assert d["received"](d["trigger_queue"]) == []
    # When someone approves: "Run Approved" goes on the stack's bus, the rule queues it for the trigger function
    decided = approvals.decide(
        d["deps"].table, d["events"], "r3", "APPROVED", "ops@example.com", "ok", now=d["clock"]() + 60
    )
    assert decided["status"] == "APPROVED" and decided["announced"]
    (queued,) = d["received"](d["trigger_queue"])
    assert queued["detail-type"] == "Run Approved" and queued["detail"]["run_id"] == "r3"
    # Then on_approval fires with the kept source event and the decision
    (fired,) = handle_event(RunEvent.model_validate(queued), d["deps"])
    assert (fired["kind"], fired["trigger"], fired["result"]) == ("approval", "glue-approved", "fired")
    (run,) = glue_runs(d)
    assert run["Arguments"]["--approval_required"] == "true" and run["Arguments"]["--approved_by"] == "ops@example.com"
    assert run["Arguments"]["--triggered_by_run_id"] == "r3"
    # approving again is a no-op (no second announcement), rejecting now is a conflict
    again = approvals.decide(d["deps"].table, d["events"], "r3", "APPROVED", "ops@example.com", now=d["clock"]() + 90)
    assert again["status"] == "APPROVED" and d["received"](d["trigger_queue"]) == []
    with pytest.raises(ApprovalConflictError, match=r"APPROVED by ops@example\.com"):
        approvals.decide(d["deps"].table, d["events"], "r3", "REJECTED", "someone")
    assert handle_event(RunEvent.model_validate(queued), d["deps"])[0]["result"] == "already fired"


def test_an_approval_expires_after_the_configured_time_and_a_rejection_fires_nothing(downstream):
    d = downstream
    for run_id in ("r4", "r5"):
        d["stack"].s3.put_object(Bucket=d["stack"].bucket, Key=f"{run_id}/merged_percentiles.json",
                                 Body=json.dumps({"curfew_breach_probability": 0.9}).encode())  # fmt: skip
        handle_event(run_end({**DETAIL, "run_id": run_id}), d["deps"])
    two_hours = 2 * 3600
    assert approvals.get_approval(d["deps"].table, "r4", now=d["clock"]() + two_hours + 1)["status"] == "EXPIRED"
    with pytest.raises(ApprovalExpiredError, match="expired"):
        approvals.decide(d["deps"].table, d["events"], "r4", "APPROVED", "late", now=d["clock"]() + two_hours + 1)
    assert d["deps"].table.get_approval("r4")["status"] == "EXPIRED"
    with pytest.raises(ApprovalExpiredError):  # and stays so
        approvals.decide(d["deps"].table, d["events"], "r4", "APPROVED", "late", now=d["clock"]())
    rejected = approvals.decide(d["deps"].table, d["events"], "r5", "REJECTED", "ops", now=d["clock"]() + 10)
    assert rejected["status"] == "REJECTED" and d["received"](d["trigger_queue"]) == []
    assert handle_event(run_end({"run_id": "r5"}, "Run Approved"), d["deps"]) == []  # a stray approval event
    with pytest.raises(ApprovalNotFoundError):
        approvals.decide(d["deps"].table, d["events"], "r1", "APPROVED", "ops")
    assert glue_runs(d) == []


def test_the_handler_reads_the_config_from_s3_fails_a_refused_trigger_and_fires_once(fake_stack, monkeypatch):
    # Given a config in S3 whose only target does not exist, When the trigger Lambda gets the run-end event,
    # Then the record fails (SQS retries it, then the trigger DLQ keeps it)
    from jobgraph.services.triggers import trigger_runtime

    def put(queue_url: str) -> None:
        document = {"workflows": {"default": {"on_success": [{"type": "sqs", "queue_url": queue_url}]}}}
        fake_stack.s3.put_object(
            Bucket=fake_stack.bucket, Key="config/triggers.json", Body=json.dumps(document).encode()
        )

    put(f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/does-not-exist")
    monkeypatch.setenv("TRIGGER_CONFIG_CACHE_SECONDS", "0")
    trigger_runtime.cache_clear()
    handler = load_handler("triggers")
    payload = event("triggers-run-completed")
    with pytest.raises(BatchProcessingError):
        handler(payload, FakeLambdaContext(function_name="triggers"))
    # a config pushed to S3 is read on the next invocation, no redeploy (cache 0 here)
    queue_url = fake_stack.sqs.create_queue(QueueName="fine")["QueueUrl"]
    put(queue_url)
    assert handler(payload, FakeLambdaContext(function_name="triggers")) == {"batchItemFailures": []}
    assert handler(payload, FakeLambdaContext(function_name="triggers")) == {"batchItemFailures": []}
    messages = fake_stack.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["triggered_by_run_id"] for m in messages] == ["events-demo"]
    trigger_runtime.cache_clear()
