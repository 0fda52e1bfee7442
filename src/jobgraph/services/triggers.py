"""The trigger function's logic (seed 003's downstream orchestrator): a run's end, or its approval, in;
the triggers of its workflow fired, each once.

The workflow config is read at run time (adapters.trigger_config: S3, else SSM, else the template's
default; cached for seconds). A run's end becomes the seed's source event; the workflow of its job name
says what fires: ``on_success``, ``on_failure``, or nothing yet when an approval gate holds the run in
PENDING_APPROVAL (services.approvals), and ``on_approval`` once it is approved.

Once per trigger: each is claimed per run before its target is called (adapters.dynamodb.claim_trigger)
and marked FIRED after; the target gets the same token on every attempt. What happens when the claim is
found:

- FIRED or IN_DOUBT: nothing. Held by another live invocation: this message is retried later.
- the target refused: the claim is RELEASED and the message retried, so the next attempt fires afresh.
- the call failed ambiguously (timeout, 5xx), or the invocation died: the claim stays; once stale, the
  retried message takes it over. The taker fires again only where a repeat cannot duplicate — the
  target drops the same token (Step Functions execution name, Airflow dag_run_id, a FIFO deduplication id
  within its 5 minutes) or a lookup shows the earlier attempt never arrived (Glue) —, or where the
  trigger asked for ``delivery: at_least_once``. Otherwise it records IN_DOUBT and fires nothing: at most
  once, and a metric (TriggersInDoubt) and an error log say which trigger needs a human look.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, ConfigDict, Field, Json

from jobgraph.adapters.events import RunEvents
from jobgraph.adapters.targets import Targets
from jobgraph.adapters.trigger_config import LoadedConfig, TriggerConfigStore
from jobgraph.core.errors import (
    ClaimBusyError,
    ConfigurationError,
    ObjectNotFoundError,
    TargetRefusedError,
    TriggerFailedError,
)
from jobgraph.core.ports import ApprovalStore, BlobStore, TriggerStore
from jobgraph.core.results import merged_key
from jobgraph.core.trigger_event import approved_event, source_event
from jobgraph.core.triggers import Trigger, WorkflowConfig, dedup_token, plan
from jobgraph.services.approvals import kept_event
from jobgraph.services.data import data_layer
from jobgraph.services.observability import MetricUnit, logger, metrics
from jobgraph.services.settings import TriggerSettings, load_settings


class RunEvent(BaseModel):
    """The EventBridge event as the rule delivers it to the trigger queue."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    source: str
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]


class RunEventRecord(SqsRecordModel):
    body: Json[RunEvent]


class TriggerTable(TriggerStore, ApprovalStore, Protocol):
    """What the trigger function keeps in the jobs table: its claims, and the runs' approvals it requests."""


@dataclass(frozen=True)
class TriggerDeps:
    configs: TriggerConfigStore
    table: TriggerTable
    targets: Targets
    merged: Callable[[str], dict[str, Any] | None]  # run_id -> merged percentiles (None: not there)
    stale_s: float = 90.0
    clock: Callable[[], float] = field(default=time.time)
    events: RunEvents | None = None  # where "Run Pending Approval" is published (None: not published)


def handle_event(event: RunEvent, deps: TriggerDeps) -> list[dict[str, Any]]:
    if event.detail_type == "Run Approved":
        return on_approved(str(event.detail["run_id"]), deps)
    if event.detail_type in ("Run Completed", "Run Failed"):
        return on_run_end(event.detail, deps)
    logger.warning("not a run end or approval: ignored", extra={"detail_type": event.detail_type})
    return []


def current_config(deps: TriggerDeps) -> LoadedConfig:
    loaded = deps.configs.current()
    for reason in loaded.skipped:
        logger.error("trigger config source skipped", extra={"reason": reason})
    logger.info("workflow config", extra={"source": loaded.source, "version": loaded.version})
    return loaded


def on_run_end(detail: dict[str, Any], deps: TriggerDeps) -> list[dict[str, Any]]:
    config = current_config(deps).config
    run_id = str(detail["run_id"])
    merged = deps.merged(run_id) if detail.get("outcome") == "COMPLETED" else None
    event = source_event(detail, merged)
    chosen = plan(config, event)
    if chosen.workflow is None:
        logger.info("no workflow for this job name", extra={"run_id": run_id, "job_name": event["job_name"]})
        return []
    if chosen.approval_reasons:
        expires = deps.clock() + chosen.approval_hours * 3600
        item, created = deps.table.request_approval(
            run_id, chosen.workflow, json.dumps(event), chosen.approval_reasons, expires
        )
        if created:
            metrics.add_metric(name="ApprovalsRequested", unit=MetricUnit.Count, value=1)
        if deps.events is not None and "pending_event_id" not in item:
            # tell whoever must decide (a rule of theirs on the bus); once, also after a redelivery
            detail = {"run_id": run_id, "outcome": "PENDING_APPROVAL", "workflow": chosen.workflow,
                      "reasons": chosen.approval_reasons, "expires_epoch": float(item["expires_epoch"])}  # fmt: skip
            deps.table.mark_approval_announced(run_id, deps.events.publish(detail), "pending_event_id")
        logger.info("run waits for approval", extra={"run_id": run_id, "reasons": chosen.approval_reasons})
        return [{"workflow": chosen.workflow, "result": str(item.get("status")), "reasons": chosen.approval_reasons}]
    return fire_all(run_id, chosen.workflow, chosen.kind or "success", chosen.triggers, event, config, deps)


def on_approved(run_id: str, deps: TriggerDeps) -> list[dict[str, Any]]:
    approval = deps.table.get_approval(run_id)
    if approval is None or approval.get("status") != "APPROVED":
        logger.warning("approval event without an approved approval", extra={"run_id": run_id})
        return []
    config = current_config(deps).config
    event = approved_event(kept_event(approval), approval)
    chosen = plan(config, event)
    if chosen.workflow is None:
        logger.warning("approved run has no workflow any more", extra={"run_id": run_id})
        return []
    return fire_all(run_id, chosen.workflow, "approval", chosen.triggers, event, config, deps)


def fire_all(
    run_id: str,
    workflow: str,
    kind: str,
    triggers: list[Trigger],
    event: dict[str, Any],
    config: WorkflowConfig,
    deps: TriggerDeps,
) -> list[dict[str, Any]]:
    """Fire each trigger once; the others still fire when one fails, and then the message is retried."""
    done, failures = [], []
    for trigger in triggers:
        about = {"workflow": workflow, "kind": kind, "trigger": trigger.trigger_id, "type": trigger.type}
        try:
            result, receipt = fire_one(run_id, workflow, kind, trigger, event, config, deps)
        except Exception as exc:  # any failure: the others go on, the message is retried
            logger.exception("trigger not fired", extra={"run_id": run_id, **about})
            failures.append(f"{trigger.trigger_id}: {type(exc).__name__}: {exc}")
            continue
        done.append({**about, "result": result, "receipt": receipt})
    if failures:
        raise TriggerFailedError("; ".join(failures))
    return done


def fire_one(
    run_id: str,
    workflow: str,
    kind: str,
    trigger: Trigger,
    event: dict[str, Any],
    config: WorkflowConfig,
    deps: TriggerDeps,
) -> tuple[str, str | None]:
    """(what happened, the target's receipt) for one trigger; raises when it must be retried."""
    sk = f"FIRED#{kind}#{trigger.trigger_id}"
    token = dedup_token(run_id, workflow, kind, trigger.trigger_id)
    owner, now = uuid.uuid4().hex, deps.clock()
    claim = deps.table.claim_trigger(
        run_id,
        sk,
        owner,
        now,
        deps.stale_s,
        workflow=workflow,
        kind=kind,
        trigger=trigger.trigger_id,
        target_type=trigger.type,
        token=token,
    )
    if claim.outcome == "fired":
        return "already fired", claim.item.get("receipt")
    if claim.outcome == "in_doubt":
        return "in doubt", None
    if claim.outcome == "busy":
        raise ClaimBusyError(
            f"claimed by another invocation {now - float(claim.item.get('claimed_epoch', now)):.0f} s ago"
        )
    if claim.outcome == "takeover":
        found = takeover(run_id, sk, owner, trigger, token, now - float(claim.item["first_claimed_epoch"]), deps)
        if found is not None:
            return found
    try:
        receipt = deps.targets.fire(trigger, event, token, config)
    except TargetRefusedError as exc:
        deps.table.release_trigger(run_id, sk, owner, str(exc))
        raise
    # anything else (timeout, 5xx) may have reached the target: the claim stays, a stale takeover decides
    if not deps.table.trigger_fired(run_id, sk, owner, receipt):
        logger.error("claim lost before it was marked fired", extra={"run_id": run_id, "trigger": trigger.trigger_id})
    metrics.add_metric(name="TriggersFired", unit=MetricUnit.Count, value=1)
    logger.info("trigger fired", extra={"run_id": run_id, "trigger": trigger.trigger_id, "receipt": receipt})
    return "fired", receipt


def takeover(
    run_id: str, sk: str, owner: str, trigger: Trigger, token: str, since_first_s: float, deps: TriggerDeps
) -> tuple[str, str | None] | None:
    """A dead holder's claim: None when firing again cannot duplicate, else what was done instead."""
    how = trigger.dedup(since_first_s)
    logger.warning(
        "stale trigger claim taken over",
        extra={"run_id": run_id, "trigger": trigger.trigger_id, "dedup": how, "since_first_s": since_first_s},
    )
    if how == "lookup":
        receipt = deps.targets.find(trigger, token)
        if receipt is None:
            return None  # the earlier attempt never reached the target
        deps.table.trigger_fired(run_id, sk, owner, receipt)
        return "fired (by the earlier attempt)", receipt
    if how is not None or trigger.delivery == "at_least_once":
        return None
    reason = (
        f"an earlier attempt died after claiming it {since_first_s:.0f} s ago and {trigger.type} cannot drop a "
        "repeat: not fired again (delivery: at_most_once); check the target and fire it by hand if it never arrived"
    )
    deps.table.trigger_in_doubt(run_id, sk, owner, reason)
    metrics.add_metric(name="TriggersInDoubt", unit=MetricUnit.Count, value=1)
    logger.error("trigger in doubt", extra={"run_id": run_id, "trigger": trigger.trigger_id, "reason": reason})
    return "in doubt", None


@dataclass(frozen=True)
class TriggerRuntime:
    deps: TriggerDeps
    batch: BatchProcessor

    def handle_record(self, record: RunEventRecord) -> str:
        return json.dumps(handle_event(record.body, self.deps))


def merged_reader(blobs: BlobStore) -> Callable[[str], dict[str, Any] | None]:
    def read(run_id: str) -> dict[str, Any] | None:
        try:
            merged: dict[str, Any] = json.loads(blobs.get(merged_key(run_id)))
            return merged
        except ObjectNotFoundError:
            return None

    return read


@cache
def trigger_runtime() -> TriggerRuntime:
    settings = load_settings(TriggerSettings)
    try:
        configs = TriggerConfigStore(
            settings.config_bucket or settings.bucket_name,
            settings.config_key,
            settings.config_parameter,
            settings.trigger_config,
            settings.config_cache_s,
        )
    except ValueError as exc:
        raise ConfigurationError(f"TRIGGER_CONFIG: {exc}") from None
    data = data_layer(settings)
    deps = TriggerDeps(
        configs,
        data.table,
        Targets(),
        merged_reader(data.blobs),
        settings.claim_stale_s,
        events=RunEvents(settings.event_bus_name) if settings.event_bus_name else None,
    )
    return TriggerRuntime(deps, BatchProcessor(event_type=EventType.SQS, model=RunEventRecord))
