"""The trigger function's logic: a run-end event in, every matching trigger of the config fired once.

Each trigger is claimed per run with a conditional put before its target is called and marked FIRED after,
so a redelivered or twice-published event fires nothing twice. A target that fails releases its claim and
fails the message: SQS redelivers it (the triggers that fired stay fired) and, after maxReceiveCount, the
trigger DLQ keeps it (alarmed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, ConfigDict, Json

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.targets import Targets
from jobgraph.core.errors import ConfigurationError, JobGraphError
from jobgraph.core.triggers import TriggerConfig, config_from_json, render
from jobgraph.services.observability import MetricUnit, logger, metrics
from jobgraph.services.settings import TriggerSettings, load_settings


class RunEndEvent(BaseModel):
    """The EventBridge event as the rule delivers it to the trigger queue (only its detail is used)."""

    model_config = ConfigDict(extra="ignore")

    source: str
    detail: dict


class RunEndRecord(SqsRecordModel):
    body: Json[RunEndEvent]  # type: ignore[assignment]


class TriggerFailedError(JobGraphError):
    """One or more triggers of a run failed; the message is retried (and dead-lettered in the end)."""


@dataclass(frozen=True)
class TriggerDeps:
    config: TriggerConfig
    table: JobsTable
    targets: Targets


def fire_triggers(run: dict, deps: TriggerDeps) -> list[dict]:
    """Fire every trigger the run matches that has not fired for it yet; returns what was done per trigger."""
    done, failures = [], []
    for trigger in deps.config.for_run(run):
        if not deps.table.claim_trigger(run["run_id"], trigger.name, trigger.target.type):
            done.append({"trigger": trigger.name, "result": "already fired"})
            continue
        try:
            receipt = deps.targets.fire(trigger.target, render(trigger.payload, run), f"{run['run_id']}-{trigger.name}")
        except Exception as exc:  # any target error: release, go on with the others, fail the message
            deps.table.release_trigger(run["run_id"], trigger.name)
            logger.exception("trigger failed", extra={"trigger": trigger.name, "run_id": run["run_id"]})
            failures.append(f"{trigger.name}: {type(exc).__name__}: {exc}")
            continue
        deps.table.trigger_fired(run["run_id"], trigger.name, receipt)
        metrics.add_metric(name="TriggersFired", unit=MetricUnit.Count, value=1)
        logger.info("trigger fired", extra={"trigger": trigger.name, "run_id": run["run_id"], "receipt": receipt})
        done.append({"trigger": trigger.name, "result": "fired", "receipt": receipt})
    if failures:
        raise TriggerFailedError("; ".join(failures))
    return done


@dataclass(frozen=True)
class TriggerRuntime:
    deps: TriggerDeps
    batch: BatchProcessor

    def handle_record(self, record: RunEndRecord) -> str:
        return json.dumps(fire_triggers(record.body.detail, self.deps))


@cache
def trigger_runtime() -> TriggerRuntime:
    settings = load_settings(TriggerSettings)
    try:
        config = config_from_json(settings.trigger_config)
    except ValueError as exc:
        raise ConfigurationError(f"TRIGGER_CONFIG: {exc}") from None
    deps = TriggerDeps(config, JobsTable(settings.table_name, settings.record_ttl_days), Targets())
    return TriggerRuntime(deps, BatchProcessor(event_type=EventType.SQS, model=RunEndRecord))
