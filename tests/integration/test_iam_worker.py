"""Every AWS call the ECS worker makes is allowed by WorkerTaskRole in templates/scenario-2.yaml.

As test_iam_permissions.py does for the Lambda handlers: the worker runs its paths against moto (success,
duplicate, failed job, poison message, retry, heartbeat) with every boto3 call recorded, and each call's
IAM action and resource must be allowed by the task role of the transformed template.
"""

from __future__ import annotations

import pytest

from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import route_job
from jobgraph.core.run import RunSpec
from jobgraph.sam.template import load_template, transform_template
from jobgraph.services.processor import build_processor_runtime
from jobgraph.services.settings import WorkerSettings, load_settings
from jobgraph.services.worker import QueueWorker, VisibilityHeartbeat
from tests.iam_grants import ACCOUNT, MISSING_OBJECT_IS_404, REGION, fake_stack_bindings
from tests.iam_policy import Permission, is_allowed, required_permissions, role_statements, unused_grants
from tests.lambda_support import ROOT, CallRecorder, recording_calls

SPEC = RunSpec("iam-worker", "default", 20, 1)


@pytest.fixture(scope="module")
def transformed() -> dict:
    template, _ = transform_template(load_template(ROOT / "templates" / "scenario-2.yaml"), {}, REGION)
    # role_statements() finds a role through a function's Role; the task role is named directly here
    template["Resources"]["Worker"] = {"Properties": {"Role": {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}}}
    return template


@pytest.fixture
def recorder(fake_stack):
    """As test_iam_permissions.py's: on the default session before the adapters build their clients."""
    with recording_calls(CallRecorder()) as recorder:
        yield recorder


def exercise_the_worker(recorder, fake_stack, monkeypatch) -> None:
    monkeypatch.setenv("WAIT_TIME_SECONDS", "0")
    monkeypatch.setenv("RETRY_BACKOFF_BASE_SECONDS", "0")
    monkeypatch.setenv("STATE_IN_MESSAGE_MAX_BYTES", "0")  # route states as S3 objects: their reads are recorded
    settings = load_settings(WorkerSettings)
    sequence = next(s for s in generate_sequences(4, seed=2) if len(s.routes) >= 2)
    first, second = route_job(SPEC, sequence, 0), route_job(SPEC, sequence, 1)
    with recorder.invoking("worker"):
        worker = QueueWorker(settings, build_processor_runtime(settings))  # clients built under the recorder
        incoming = FifoQueue(settings.incoming_queue_url, client=fake_stack.sqs)  # the test sends, unrecorded
        # a failed job (route 1 before route 0 has stored its state), then a poison message
        incoming.send_jobs([second])
        worker.handle(worker.receive())
        fake_stack.drain(settings.incoming_queue_url)
        fake_stack.sqs.send_message(
            QueueUrl=settings.incoming_queue_url, MessageBody="{}", MessageGroupId="p", MessageDeduplicationId="p"
        )
        worker.handle(worker.receive())
        fake_stack.drain(settings.incoming_queue_url)
        # a job, its duplicate, and the next route
        for job, dedup in ((first, "a"), (first, "b"), (second, "c")):
            fake_stack.sqs.send_message(
                QueueUrl=settings.incoming_queue_url,
                MessageBody=job.model_dump_json(),
                MessageGroupId=job.correlation_id,
                MessageDeduplicationId=dedup,
            )
            worker.handle(worker.receive())
        # a heartbeat on a message in hand
        fake_stack.sqs.send_message(
            QueueUrl=settings.incoming_queue_url, MessageBody="{}", MessageGroupId="h", MessageDeduplicationId="h"
        )
        messages = worker.receive()
        with VisibilityHeartbeat(worker.sqs, settings.incoming_queue_url, 0.05, 10) as heartbeat:
            heartbeat.hold(messages)
            while heartbeat.beats == 0:
                pass
    assert fake_stack.item(f"RUN#{SPEC.run_id}", f"JOB#{second.job_id}")["status"] == "COMPLETED"


def test_every_recorded_call_of_the_worker_is_allowed_by_its_task_role(transformed, fake_stack, recorder, monkeypatch):
    exercise_the_worker(recorder, fake_stack, monkeypatch)
    needed = {p for call in recorder.calls["worker"] for p in required_permissions(call, REGION, ACCOUNT)}
    actions = {p.action for p in needed}
    # the recording covers what matters: results, job claims and records, polling, backoff, reporting
    assert {
        "s3:GetObject", "s3:PutObject", "dynamodb:PutItem", "dynamodb:UpdateItem",
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
        "sqs:SendMessage",
    } <= actions  # fmt: skip
    assert "dynamodb:DeleteItem" not in actions
    statements = role_statements(transformed, "Worker", fake_stack_bindings(fake_stack))
    assert sorted(f"{p.action} on {p.resource}" for p in needed if not is_allowed(statements, p)) == []
    # least privilege the other way: nothing allowed that no call used (but a missing object's 404)
    assert unused_grants(statements, actions, MISSING_OBJECT_IS_404) == []


def test_the_task_role_cannot_delete_job_records_or_results(transformed, fake_stack):
    statements = role_statements(transformed, "Worker", fake_stack_bindings(fake_stack))
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{fake_stack.table}"
    assert not is_allowed(statements, Permission("dynamodb:DeleteItem", table, ("IDEMPOTENCY#processor",)))
    assert not is_allowed(statements, Permission("dynamodb:DeleteItem", table, (f"RUN#{SPEC.run_id}",)))
    assert not is_allowed(statements, Permission("s3:DeleteObject", f"arn:aws:s3:::{fake_stack.bucket}/x"))
    outgoing = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{fake_stack.outgoing_url.rsplit('/', 1)[1]}"
    assert not is_allowed(statements, Permission("sqs:ReceiveMessage", outgoing))
