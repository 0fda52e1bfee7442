"""Trigger claims head-on: fresh, busy, stale, taken over — threads racing against the local moto server (real
HTTP, requests applied one at a time as DynamoDB applies each atomically), targets that drop no repeat
(standard SQS queues: no deduplication between the claim and what arrives), and crashed holders.

The bug these pin down: a claim left by an invocation that died after calling its target was taken over
15 minutes later and fired again, duplicating on a target that cannot drop a repeat; and before that, each
redelivery saw the claim "in progress", called it fired and deleted the message, so a holder that died
before calling its target lost the trigger for good.
"""

from __future__ import annotations

import json

import pytest

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.targets import Targets
from jobgraph.adapters.trigger_config import LoadedConfig
from jobgraph.core.trigger_event import source_event
from jobgraph.core.triggers import WorkflowConfig, dedup_token
from jobgraph.localcloud.server import LocalEndpoint
from jobgraph.services.triggers import ClaimBusyError, TriggerDeps, fire_one
from tests.concurrency import at_once
from tests.integration.conftest import create_table

THREADS = 8
DETAIL = {"run_id": "r1", "outcome": "COMPLETED", "test_run_id": "nightly", "results_uri": "s3://b/r1/"}
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class FixedConfig:
    def __init__(self, config: WorkflowConfig):
        self.loaded = LoadedConfig(config, "test")

    def current(self) -> LoadedConfig:
        return self.loaded


class Crash(BaseException):
    """The invocation dies (timeout, out of memory) between calling the target and marking the claim."""


@pytest.fixture(scope="module")
def endpoint():
    with LocalEndpoint() as running:
        create_table(running.client("dynamodb"), "jobs")
        yield running


@pytest.fixture
def world(endpoint, request):
    """A fresh run id per test, queues standing in for targets, and deps bound to the moto server."""
    sqs = endpoint.client("sqs")
    name = request.node.name[:40].replace("[", "-").replace("]", "")
    plain = sqs.create_queue(QueueName=f"{name}-plain")["QueueUrl"]
    fifo = sqs.create_queue(QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    table = JobsTable("jobs", client=endpoint.client("dynamodb"))
    clock = Clock()

    def deps_for(*triggers: dict) -> tuple[TriggerDeps, WorkflowConfig]:
        config = WorkflowConfig.model_validate({"workflows": {"nightly": {"on_success": list(triggers)}}})
        targets = Targets(client=lambda service, region=None: endpoint.client(service))
        return TriggerDeps(FixedConfig(config), table, targets, lambda _run: None, stale_s=90, clock=clock), config

    def messages(url: str) -> list[dict]:
        out = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600).get("Messages"):
            out.extend(json.loads(m["Body"]) for m in batch)
        return out

    return {"plain": plain, "fifo": fifo, "table": table, "clock": clock, "deps_for": deps_for, "messages": messages,
            "run_id": f"run-{name}"}  # fmt: skip


def fire(world, deps, config, trigger_index: int = 0):
    trigger = config.workflows["nightly"].on_success[trigger_index]
    event = source_event({**DETAIL, "run_id": world["run_id"]})
    return fire_one(world["run_id"], "nightly", "success", trigger, event, config, deps)


def crash_after_sending(world, deps, config) -> None:
    """One attempt that reaches the target and dies before it can mark the claim FIRED."""
    marked = deps.table.trigger_fired

    def die(*_args, **_kwargs):
        raise Crash

    deps.table.trigger_fired = die
    try:
        with pytest.raises(Crash):
            fire(world, deps, config)
    finally:
        deps.table.trigger_fired = marked


def test_a_fresh_claim_has_one_winner_among_racing_claimants(world):
    table, run_id = world["table"], world["run_id"]
    claims = at_once(THREADS, lambda i: table.claim_trigger(run_id, "FIRED#success#t", f"owner-{i}", T0, 90))
    assert sorted(c.outcome for c in claims) == ["busy"] * (THREADS - 1) + ["fresh"]
    (winner,) = [c for c in claims if c.outcome == "fresh"]
    assert winner.item["status"] == "CLAIMED" and int(winner.item["attempts"]) == 1


def test_racing_invocations_of_one_trigger_send_exactly_one_message(world):
    deps, config = world["deps_for"]({"type": "sqs", "name": "q", "queue_url": world["plain"]})
    outcomes = at_once(THREADS, lambda i: fire(world, deps, config))
    fired = [o for o in outcomes if isinstance(o, tuple) and o[0] == "fired"]
    # the winner fired; each loser either saw it FIRED or found it busy (its message is retried later)
    assert len(fired) == 1
    assert all((isinstance(o, tuple) and o[0] == "already fired") or isinstance(o, ClaimBusyError)
               for o in outcomes if o not in fired)  # fmt: skip
    assert len(world["messages"](world["plain"])) == 1


def test_a_claim_held_by_a_live_invocation_is_retried_later_not_called_fired(world):
    deps, config = world["deps_for"]({"type": "sqs", "name": "q", "queue_url": world["plain"]})
    world["table"].claim_trigger(world["run_id"], "FIRED#success#q", "live-holder", T0, 90)
    world["clock"].now = T0 + 30  # younger than the stale limit: its holder may still be at it
    with pytest.raises(ClaimBusyError):
        fire(world, deps, config)
    assert world["messages"](world["plain"]) == []


def test_a_holder_that_died_before_calling_its_target_loses_nothing(world):
    # claimed, then the invocation died before the call: once stale, the redelivery takes over and fires;
    # a standard queue cannot drop a repeat, so this trigger goes at_least_once to be fired again at all
    deps, config = world["deps_for"](
        {"type": "sqs", "name": "q", "queue_url": world["plain"], "delivery": "at_least_once"}
    )
    world["table"].claim_trigger(world["run_id"], "FIRED#success#q", "dead-holder", T0, 90)
    world["clock"].now = T0 + 181  # the message's first redelivery (the trigger queue's visibility timeout)
    assert fire(world, deps, config)[0] == "fired"
    assert len(world["messages"](world["plain"])) == 1


def test_racing_takers_of_a_stale_claim_have_one_winner_and_the_loser_cannot_finish(world):
    table, run_id = world["table"], world["run_id"]
    table.claim_trigger(run_id, "FIRED#success#t", "dead-holder", T0, 90)
    claims = at_once(THREADS, lambda i: table.claim_trigger(run_id, "FIRED#success#t", f"taker-{i}", T0 + 200, 90))
    assert sorted(c.outcome for c in claims) == ["busy"] * (THREADS - 1) + ["takeover"]
    (winner,) = [c for c in claims if c.outcome == "takeover"]
    assert winner.item["taken_over_from"] == "dead-holder" and int(winner.item["attempts"]) == 2
    assert float(winner.item["first_claimed_epoch"]) == T0
    # fenced: the old holder (had it only been slow) can no longer mark, release or doubt the claim
    assert not table.trigger_fired(run_id, "FIRED#success#t", "dead-holder", "late receipt")
    assert not table.release_trigger(run_id, "FIRED#success#t", "dead-holder", "late error")
    assert table.trigger_fired(run_id, "FIRED#success#t", winner.item["owner"], "receipt")
    assert table.claim_trigger(run_id, "FIRED#success#t", "next", T0 + 9999, 90).outcome == "fired"


def test_a_crashed_send_to_a_standard_queue_is_not_sent_again_by_racing_takers(world):
    # at_most_once (the default) on a target that cannot drop a repeat: IN_DOUBT, exactly one message ever
    deps, config = world["deps_for"]({"type": "sqs", "name": "q", "queue_url": world["plain"]})
    crash_after_sending(world, deps, config)
    world["clock"].now = T0 + 181
    outcomes = at_once(THREADS, lambda i: fire(world, deps, config))
    assert sum(isinstance(o, tuple) and o[0] == "in doubt" for o in outcomes) >= 1
    assert not any(isinstance(o, tuple) and o[0] == "fired" for o in outcomes)
    assert len(world["messages"](world["plain"])) == 1
    (claim,) = world["table"].triggers_of_run(world["run_id"])
    assert claim["status"] == "IN_DOUBT" and "cannot drop a repeat" in claim["last_error"]
    assert fire(world, deps, config)[0] == "in doubt"  # and stays so: no later retry fires it


def test_at_least_once_refires_once_however_many_takers_race(world):
    # the trade-off stated in docs/triggers.md: the target can see this one duplicate, never more
    deps, config = world["deps_for"](
        {"type": "sqs", "name": "q", "queue_url": world["plain"], "delivery": "at_least_once"}
    )
    crash_after_sending(world, deps, config)
    world["clock"].now = T0 + 181
    outcomes = at_once(THREADS, lambda i: fire(world, deps, config))
    assert sum(isinstance(o, tuple) and o[0] == "fired" for o in outcomes) == 1
    assert len(world["messages"](world["plain"])) == 2


def test_a_fifo_target_drops_the_takers_repeat_inside_its_window_and_is_in_doubt_after_it(world):
    deps, config = world["deps_for"](
        {"type": "sqs", "name": "inside", "queue_url": world["fifo"], "message_group_id": "g"},
        {"type": "sqs", "name": "after", "queue_url": world["fifo"], "message_group_id": "g"},
    )
    crash_after_sending(world, deps, config)  # "inside"
    world["clock"].now = T0 + 181  # < 300 s after the first send: the same deduplication id is dropped
    assert fire(world, deps, config)[0] == "fired"
    assert len(world["messages"](world["fifo"])) == 1
    world["clock"].now = T0
    marked = deps.table.trigger_fired
    deps.table.trigger_fired = lambda *a, **k: (_ for _ in ()).throw(Crash())
    with pytest.raises(Crash):
        fire(world, deps, config, trigger_index=1)
    deps.table.trigger_fired = marked
    world["clock"].now = T0 + 400  # past the 5-minute window: a repeat would be a duplicate
    assert fire(world, deps, config, trigger_index=1)[0] == "in doubt"


def test_a_step_functions_execution_name_makes_the_takeover_safe(world, endpoint):
    iam, sfn = endpoint.client("iam"), endpoint.client("stepfunctions")
    suffix = f"{abs(hash(world['run_id'])) % 10**8}"
    role = iam.create_role(RoleName=f"sfn-{suffix}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    machine = sfn.create_state_machine(
        name=f"after-run-{suffix}", roleArn=role,
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": True}}}),
    )["stateMachineArn"]  # fmt: skip
    deps, config = world["deps_for"]({"type": "step_function", "name": "sfn", "arn": machine})
    crash_after_sending(world, deps, config)
    world["clock"].now = T0 + 181
    outcomes = at_once(THREADS, lambda i: fire(world, deps, config))
    assert sum(isinstance(o, tuple) and o[0] == "fired" for o in outcomes) == 1
    (execution,) = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert execution["name"] == dedup_token(world["run_id"], "nightly", "success", "sfn")


def test_a_glue_run_of_the_dead_attempt_is_found_and_not_started_again(world, endpoint):
    glue = endpoint.client("glue")
    job = f"load-{abs(hash(world['run_id'])) % 10**8}"  # one job per test on the shared server
    glue.create_job(Name=job, Role="arn:aws:iam::123456789012:role/glue", ExecutionProperty={"MaxConcurrentRuns": 5},
                    Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"})  # fmt: skip
    deps, config = world["deps_for"]({"type": "glue_job", "name": "g", "job_name": job})
    crash_after_sending(world, deps, config)
    (first,) = glue.get_job_runs(JobName=job)["JobRuns"]
    world["clock"].now = T0 + 181
    result, receipt = fire(world, deps, config)
    assert result == "fired (by the earlier attempt)" and receipt == first["Id"]
    assert len(glue.get_job_runs(JobName=job)["JobRuns"]) == 1
