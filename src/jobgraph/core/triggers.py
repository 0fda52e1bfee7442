"""Downstream triggers (seed 003): what to start when a run ends — the config's schema and its pure logic.

A config (YAML for people, JSON for the Lambda: docs/triggers.md) lists triggers. Each names the run
outcomes it fires on, optional filters (scenario, TestRunId prefix), one target (EventBridge, SQS, Step
Functions, Glue, SNS, MWAA) with that target's parameters, and a payload template whose ``${field}``
placeholders are filled from the run (RUN_FIELDS). Validation is strict, so a typo fails at build time, not
when a run ends.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# what a payload template may use: the run event's detail (services.run_events builds it)
RUN_FIELDS = (
    "run_id",
    "outcome",
    "test_run_id",
    "scenario",
    "stack",
    "sequences_total",
    "jobs_total",
    "scenarios",
    "seed",
    "started_at",
    "completed_at",
    "duration_s",
    "results_uri",
    "merged_percentiles_uri",
    "error",
)
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
Outcome = Literal["COMPLETED", "FAILED"]
TriggerName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventBridgeTarget(_Strict):
    type: Literal["eventbridge"]
    event_bus_arn: Annotated[
        str, StringConstraints(pattern=r"^arn:aws[A-Za-z0-9_-]*:events:[A-Za-z0-9_-]+:\d{12}:event-bus/.+$")
    ]
    source: str = Field(default="jobgraph.downstream", min_length=1, max_length=256)
    detail_type: str = Field(default="Run Finished", min_length=1, max_length=128)


class SqsTarget(_Strict):
    type: Literal["sqs"]
    queue_url: Annotated[str, StringConstraints(pattern=r"^https?://[^/]+/\d{12}/[A-Za-z0-9_.-]+$")]
    message_group_id: str | None = Field(default=None, description="required for a FIFO queue")

    @model_validator(mode="after")
    def _fifo_needs_group(self) -> SqsTarget:
        if self.queue_url.endswith(".fifo") and not self.message_group_id:
            raise ValueError("message_group_id: required for a FIFO queue")
        return self

    @property
    def queue_arn(self) -> str:
        url = urlparse(self.queue_url)
        account, name = url.path.strip("/").split("/")
        region = url.hostname.split(".")[1] if url.hostname and url.hostname.startswith("sqs.") else "*"
        return f"arn:aws:sqs:{region}:{account}:{name}"


class StepFunctionsTarget(_Strict):
    type: Literal["stepfunctions"]
    state_machine_arn: Annotated[
        str, StringConstraints(pattern=r"^arn:aws[A-Za-z0-9_-]*:states:[A-Za-z0-9_-]+:\d{12}:stateMachine:.+$")
    ]


class GlueTarget(_Strict):
    type: Literal["glue"]
    job_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,255}$")]


class SnsTarget(_Strict):
    type: Literal["sns"]
    topic_arn: Annotated[
        str, StringConstraints(pattern=r"^arn:aws[A-Za-z0-9_-]*:sns:[A-Za-z0-9_-]+:\d{12}:[A-Za-z0-9_-]+(\.fifo)?$")
    ]
    subject: str | None = Field(default=None, max_length=100)
    message_group_id: str | None = None

    @model_validator(mode="after")
    def _fifo_needs_group(self) -> SnsTarget:
        if self.topic_arn.endswith(".fifo") and not self.message_group_id:
            raise ValueError("message_group_id: required for a FIFO topic")
        return self


class MwaaTarget(_Strict):
    """Airflow's REST API through MWAA's InvokeRestApi (POST /dags/{dag_id}/dagRuns); no web token, no HTTP."""

    type: Literal["mwaa"]
    environment_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,79}$")]
    dag_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,250}$")]
    airflow_role: Literal["Admin", "Op", "User"] = "User"


Target = Annotated[
    EventBridgeTarget | SqsTarget | StepFunctionsTarget | GlueTarget | SnsTarget | MwaaTarget,
    Field(discriminator="type"),
]
TARGET_TYPES = ("eventbridge", "sqs", "stepfunctions", "glue", "sns", "mwaa")


class TriggerFilter(_Strict):
    scenario: list[int] | None = Field(default=None, min_length=1, description="fire only for these scenarios")
    test_run_id_prefix: str | None = Field(default=None, min_length=1, max_length=128)


class Trigger(_Strict):
    name: TriggerName
    # not "on": YAML 1.1 reads an unquoted on as true
    outcomes: list[Outcome] = Field(min_length=1, description="run outcomes this trigger fires on")
    filter: TriggerFilter = TriggerFilter()
    target: Target
    # any JSON; strings may hold ${field} placeholders (a string that is one placeholder keeps the type)
    payload: Any = Field(default_factory=lambda: {"run_id": "${run_id}", "outcome": "${outcome}"})

    @model_validator(mode="after")
    def _known_placeholders(self) -> Trigger:
        unknown = sorted(set(placeholders(self.payload)) - set(RUN_FIELDS))
        if unknown:
            raise ValueError(f"payload: unknown placeholder(s) {unknown}; known: {', '.join(RUN_FIELDS)}")
        if self.target.type == "glue" and not (
            isinstance(self.payload, dict) and all(isinstance(k, str) and k.startswith("--") for k in self.payload)
        ):
            raise ValueError("payload: a glue target's payload is its job arguments: an object of '--name' keys")
        return self

    def matches(self, run: dict) -> bool:
        if run.get("outcome") not in self.outcomes:
            return False
        if self.filter.scenario is not None and int(run.get("scenario") or 0) not in self.filter.scenario:
            return False
        prefix = self.filter.test_run_id_prefix
        return prefix is None or str(run.get("test_run_id", "")).startswith(prefix)


class TriggerConfig(_Strict):
    version: Literal[1] = 1
    triggers: list[Trigger] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> TriggerConfig:
        names = [t.name for t in self.triggers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"triggers: duplicate name(s) {duplicates}")
        return self

    def for_run(self, run: dict) -> list[Trigger]:
        return [t for t in self.triggers if t.matches(run)]


def placeholders(value: Any) -> list[str]:
    if isinstance(value, str):
        return PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in placeholders(k) + placeholders(v)]
    if isinstance(value, list):
        return [p for item in value for p in placeholders(item)]
    return []


def render(template: Any, run: dict) -> Any:
    """The payload with every ``${field}`` filled from the run; "${field}" alone keeps the field's type."""
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole:
            return run.get(whole.group(1))
        return PLACEHOLDER.sub(lambda m: "" if run.get(m.group(1)) is None else str(run.get(m.group(1))), template)
    if isinstance(template, dict):
        return {render(k, run): render(v, run) for k, v in template.items()}
    if isinstance(template, list):
        return [render(item, run) for item in template]
    return template


def config_from_json(text: str) -> TriggerConfig:
    return TriggerConfig.model_validate_json(text or "{}")


def compact_json(config: TriggerConfig) -> str:
    """The config as the TriggerFunction gets it (defaults left out: loading puts them back)."""
    return json.dumps(config.model_dump(mode="json", exclude_defaults=True), separators=(",", ":"))
