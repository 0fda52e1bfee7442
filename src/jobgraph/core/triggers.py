"""Downstream orchestration (seed 003): the workflow config's schema and its pure logic.

The config is seed 003's ``workflow_config.json`` (YAML for people, JSON in S3: docs/triggers.md):
``workflows`` keyed by **job name**, each with ``on_success``, ``on_approval`` and (ours) ``on_failure``
trigger lists. jobgraph's upstream "job" is a run; its job name is the run's test run id
(``--test-run-id``), so ``nightly`` matches every run started with ``--test-run-id nightly``. A key may be
a glob (``nightly-*``, ``*``): an exact key wins, else the first matching pattern in the document.

Every trigger gets a **source event** (``source_event``): the run's end in the seed's job-event shape
(``job_name``, ``job_run_id``, ``status``, ``artifacts``, ``metrics`` ...). Trigger types and what each
receives follow the seed: Glue arguments with ``--triggered_by_job`` / ``--triggered_by_run_id`` /
``--source_artifacts`` added, ``{triggered_by_job, triggered_by_run_id, source_event}`` for Step Functions
and EventBridge, a DAG ``conf`` built from ``parameter_mapping`` (dot paths into the source event) for
``mwaa_dag`` and ``sqs_mwaa``. Validation is strict: an unknown field or path fails at ``jobgraph
triggers validate`` / ``push``, not when a run ends.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from jobgraph.core.trigger_event import GATE_PATHS, check_paths, lookup, placeholders, render, text

Kind = Literal["success", "failure", "approval"]

# the trigger function's own bus listens to source "jobgraph": a trigger publishing there must not loop
RESERVED_SOURCES = ("jobgraph",)
GLUE_AUTOMATIC = ("--triggered_by_job", "--triggered_by_run_id", "--source_artifacts", "--jobgraph_trigger_id")


# --- targets ----------------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Trigger(_Strict):
    # optional: names the trigger in records and reports (default: its type and a hash of its definition)
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")] | None = None
    description: str = Field(default="", max_length=1024)
    # where the target cannot drop a repeat: a claim left by a crashed attempt is not fired again
    # (at_most_once, reported IN_DOUBT) unless the trigger asks for at_least_once
    delivery: Literal["at_most_once", "at_least_once"] = "at_most_once"

    @property
    def trigger_id(self) -> str:
        if self.name:
            return self.name
        definition = json.dumps(self.model_dump(mode="json", exclude={"description"}), sort_keys=True)
        return f"{self.type}-{hashlib.sha256(definition.encode()).hexdigest()[:10]}"  # type: ignore[attr-defined]

    def dedup(self, window_s: float | None = None) -> str | None:
        """How the target drops a repeat of the same token, or None (a repeat is a duplicate)."""
        return None


class GlueJobTarget(_Trigger):
    type: Literal["glue_job"]
    job_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,255}$")]
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("arguments")
    @classmethod
    def _argument_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if not re.fullmatch(r"--[A-Za-z0-9_.-]+", k)]
        if bad:
            raise ValueError(f"Glue job arguments are named --name: {bad}")
        automatic = sorted(set(value) & set(GLUE_AUTOMATIC))
        if automatic:
            raise ValueError(f"{automatic} are added automatically; leave them out")
        check_paths(placeholders(value), "arguments")
        return value

    def dedup(self, window_s: float | None = None) -> str | None:
        # StartJobRun takes no idempotency token; the run is found again by its --jobgraph_trigger_id argument
        return "lookup"


class StepFunctionTarget(_Trigger):
    type: Literal["step_function"]
    arn: Annotated[str, StringConstraints(pattern=r"^arn:aws[A-Za-z0-9_-]*:states:[a-z0-9-]+:\d{12}:stateMachine:.+$")]

    def dedup(self, window_s: float | None = None) -> str | None:
        return "execution name"  # a Standard workflow refuses a second execution of the same name


class EventBridgeTarget(_Trigger):
    type: Literal["eventbridge"]
    event_bus: str = Field(default="default", min_length=1, max_length=1600, description="name or ARN")
    detail_type: str = Field(default="JobComplete", min_length=1, max_length=128)
    source: str = Field(default="jobgraph.orchestrator", min_length=1, max_length=256)

    @field_validator("source")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_SOURCES or value.startswith("aws."):
            raise ValueError(f"source {value!r} is reserved (jobgraph's own run events, or AWS's)")
        return value

    def bus_arn(self, region: str, account: str) -> str:
        if self.event_bus.startswith("arn:"):
            return self.event_bus
        return f"arn:aws:events:{region}:{account}:event-bus/{self.event_bus}"


class _Dag(_Trigger):
    dag_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,250}$")]
    conf: dict[str, Any] = Field(default_factory=dict)
    parameter_mapping: dict[str, str] = Field(default_factory=dict, description="DAG parameter -> event path")

    @model_validator(mode="after")
    def _known_paths(self) -> _Dag:
        check_paths(list(self.parameter_mapping.values()), "parameter_mapping")
        check_paths(placeholders(self.conf), "conf")
        return self


class MwaaDagTarget(_Dag):
    """Airflow's REST API through MWAA's InvokeRestApi (POST /dags/{dag_id}/dagRuns); no web token, no HTTP."""

    type: Literal["mwaa_dag"]
    environment_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,79}$")]
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    airflow_role: Literal["Admin", "Op", "User"] = "User"

    def dedup(self, window_s: float | None = None) -> str | None:
        return "dag_run_id"  # Airflow answers 409 to a second DAG run of the same id


QUEUE_URL = r"^https?://[^/]+/\d{12}/[A-Za-z0-9_-]{1,75}(\.fifo)?$"


def queue_arn(queue_url: str, region: str) -> str:
    url = urlparse(queue_url)
    account, name = url.path.strip("/").split("/")
    host = url.hostname or ""
    queue_region = host.split(".")[1] if host.startswith("sqs.") else region
    return f"arn:aws:sqs:{queue_region}:{account}:{name}"


# SQS and SNS FIFO drop a repeated deduplication id for 5 minutes; a repeat later than that is a duplicate
FIFO_WINDOW_S = 300.0


class SqsMwaaTarget(_Dag):
    """Seed 003's MWAA-over-SQS: a {dag_id, conf} message the event_dispatcher DAG turns into a DAG run."""

    type: Literal["sqs_mwaa"]
    queue_url: Annotated[str, StringConstraints(pattern=QUEUE_URL)] | None = Field(
        default=None, description="default: the config's sqs_mwaa_queue_url"
    )
    message_group_id: str | None = Field(default=None, max_length=128, description="FIFO queue; default the dag_id")

    def dedup(self, window_s: float | None = None) -> str | None:
        fifo = (self.queue_url or "").endswith(".fifo")
        return "FIFO deduplication id" if fifo and (window_s is None or window_s < FIFO_WINDOW_S) else None


class SqsTarget(_Trigger):
    type: Literal["sqs"]
    queue_url: Annotated[str, StringConstraints(pattern=QUEUE_URL)]
    message_group_id: str | None = Field(default=None, max_length=128, description="required for a FIFO queue")

    @model_validator(mode="after")
    def _fifo_needs_group(self) -> SqsTarget:
        if self.queue_url.endswith(".fifo") and not self.message_group_id:
            raise ValueError("message_group_id: required for a FIFO queue")
        return self

    def dedup(self, window_s: float | None = None) -> str | None:
        fifo = self.queue_url.endswith(".fifo")
        return "FIFO deduplication id" if fifo and (window_s is None or window_s < FIFO_WINDOW_S) else None


class SnsTarget(_Trigger):
    type: Literal["sns"]
    topic_arn: Annotated[
        str, StringConstraints(pattern=r"^arn:aws[A-Za-z0-9_-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+(\.fifo)?$")
    ]
    subject: str | None = Field(default=None, max_length=100)
    message_group_id: str | None = Field(default=None, max_length=128)

    @model_validator(mode="after")
    def _fifo_needs_group(self) -> SnsTarget:
        if self.topic_arn.endswith(".fifo") and not self.message_group_id:
            raise ValueError("message_group_id: required for a FIFO topic")
        return self

    def dedup(self, window_s: float | None = None) -> str | None:
        fifo = self.topic_arn.endswith(".fifo")
        return "FIFO deduplication id" if fifo and (window_s is None or window_s < FIFO_WINDOW_S) else None


Trigger = Annotated[
    GlueJobTarget | StepFunctionTarget | EventBridgeTarget | MwaaDagTarget | SqsMwaaTarget | SqsTarget | SnsTarget,
    Field(discriminator="type"),
]
TARGET_TYPES = ("glue_job", "step_function", "eventbridge", "mwaa_dag", "sqs_mwaa", "sqs", "sns")


# --- workflows ------------------------------------------------------------------------------------------
class Gate(_Strict):
    """One quality check of a COMPLETED run; failing any sends the run to PENDING_APPROVAL."""

    field: str
    above: float | None = Field(default=None, description="fails when the value is above this")
    below: float | None = Field(default=None, description="fails when the value is below this")

    @model_validator(mode="after")
    def _one_bound(self) -> Gate:
        if self.field not in GATE_PATHS:
            raise ValueError(f"field {self.field!r} is not a number of the source event; use one of {list(GATE_PATHS)}")
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above / below")
        return self

    def failure(self, event: dict[str, Any]) -> str | None:
        value = lookup(event, self.field)
        if value is None:
            return f"{self.field} is missing"
        if self.above is not None and float(value) > self.above:
            return f"{self.field} = {value} > {self.above}"
        if self.below is not None and float(value) < self.below:
            return f"{self.field} = {value} < {self.below}"
        return None


class Approval(_Strict):
    # None: every COMPLETED run waits for a decision; else only runs failing one of these gates
    when: list[Gate] | None = Field(default=None, min_length=1)
    expires_after_hours: float = Field(default=24.0, gt=0, le=24 * 30)

    def reasons(self, event: dict[str, Any]) -> list[str]:
        if self.when is None:
            return ["every run of this workflow needs approval"]
        return [reason for gate in self.when if (reason := gate.failure(event))]


class Workflow(_Strict):
    description: str = Field(default="", max_length=1024)
    on_success: list[Trigger] = Field(default_factory=list)
    on_failure: list[Trigger] = Field(default_factory=list, description="jobgraph: the run FAILED")
    on_approval: list[Trigger] = Field(default_factory=list)
    approval: Approval | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Workflow:
        if self.on_approval and self.approval is None:
            raise ValueError("on_approval: needs approval (when does a run wait for a decision?)")
        if self.approval is not None and not self.on_approval:
            raise ValueError("approval: needs on_approval (what fires once a run is approved?)")
        if self.approval is not None and self.approval.when is None and self.on_success:
            raise ValueError("on_success: never fires, every run of this workflow waits for approval")
        for kind in ("on_success", "on_failure", "on_approval"):
            ids = [t.trigger_id for t in getattr(self, kind)]
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                raise ValueError(f"{kind}: trigger(s) {repeated} appear twice (give each a distinct name)")
        return self

    def triggers(self, kind: Kind) -> list[Trigger]:
        return list(getattr(self, f"on_{kind}"))


JobNamePattern = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:/=+@*?\[\]-]{1,128}$")]


class WorkflowConfig(_Strict):
    version: Literal[2] = 2
    # seed 003's MWAA_TRIGGER_QUEUE_URL, kept in the document so that changing it needs no redeploy either
    sqs_mwaa_queue_url: Annotated[str, StringConstraints(pattern=QUEUE_URL)] | None = None
    workflows: dict[JobNamePattern, Workflow] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _not_version_1(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("triggers" in data or data.get("version") == 1):
            raise ValueError(
                "this is a version-1 trigger config (a `triggers:` list); jobgraph now reads seed 003's "
                "`workflows:` keyed by job name - see docs/triggers.md, 'Migrating from version 1'"
            )
        return data

    @model_validator(mode="after")
    def _queue_for_sqs_mwaa(self) -> WorkflowConfig:
        for key, workflow in self.workflows.items():
            for kind in ("success", "failure", "approval"):
                for trigger in workflow.triggers(kind):
                    if trigger.type == "sqs_mwaa" and not (trigger.queue_url or self.sqs_mwaa_queue_url):
                        raise ValueError(f"workflows.{key}.on_{kind}: sqs_mwaa needs queue_url or sqs_mwaa_queue_url")
        return self

    def workflow_for(self, job_name: str) -> tuple[str, Workflow] | None:
        """The workflow of a job name: its exact key, else the first glob key that matches it."""
        if job_name in self.workflows:
            return job_name, self.workflows[job_name]
        for key, workflow in self.workflows.items():
            if any(c in key for c in "*?[") and fnmatch.fnmatchcase(job_name, key):
                return key, workflow
        return None

    def queue_url_of(self, trigger: SqsMwaaTarget) -> str:
        return trigger.queue_url or self.sqs_mwaa_queue_url or ""

    def all_triggers(self) -> list[tuple[str, str, Any]]:
        """(workflow key, kind, trigger) for every trigger, in document order."""
        return [
            (key, kind, trigger)
            for key, workflow in self.workflows.items()
            for kind in ("success", "failure", "approval")
            for trigger in workflow.triggers(kind)
        ]


@dataclass(frozen=True)
class Plan:
    """What a run's end (or its approval) does under a config."""

    workflow: str | None
    kind: Kind | None
    triggers: list[Trigger]
    approval_reasons: list[str]  # non-empty: the run waits for approval instead (nothing fires now)
    approval_hours: float = 0.0  # how long that approval stays open


def plan(config: WorkflowConfig, event: dict[str, Any]) -> Plan:
    found = config.workflow_for(str(event.get("job_name") or ""))
    if found is None:
        return Plan(None, None, [], [])
    key, workflow = found
    status = event.get("status")
    if status == "APPROVED":
        return Plan(key, "approval", workflow.triggers("approval"), [])
    if status == "FAILED":
        return Plan(key, "failure", workflow.triggers("failure"), [])
    reasons = workflow.approval.reasons(event) if workflow.approval else []
    if workflow.approval and reasons:
        return Plan(key, "success", [], reasons, workflow.approval.expires_after_hours)
    return Plan(key, "success", workflow.triggers("success"), [])


def dedup_token(run_id: str, workflow: str, kind: str, trigger_id: str) -> str:
    """One id per (run, workflow, list, trigger), the same on every attempt: the Step Functions execution name,
    the FIFO deduplication id, the Airflow dag_run_id and the Glue --jobgraph_trigger_id. At most 64
    characters of [A-Za-z0-9_-] (Step Functions allows 80)."""
    digest = hashlib.sha256(f"{run_id}\0{workflow}\0{kind}\0{trigger_id}".encode()).hexdigest()[:22]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '-', run_id)[:41]}-{digest}"


# --- what each target receives (seed 003) -----------------------------------------------------------------
def orchestration_input(event: dict[str, Any]) -> dict[str, Any]:
    """Step Functions input, EventBridge detail, SQS/SNS message: the seed's shape."""
    return {"triggered_by_job": event["job_name"], "triggered_by_run_id": event["job_run_id"], "source_event": event}


def glue_arguments(trigger: GlueJobTarget, event: dict[str, Any], token: str) -> dict[str, str]:
    arguments = {k: text(v) for k, v in render(trigger.arguments, event).items()}
    return {
        **arguments,
        "--triggered_by_job": str(event["job_name"]),
        "--triggered_by_run_id": str(event["job_run_id"]),
        "--source_artifacts": json.dumps(event.get("artifacts") or {}, separators=(",", ":")),
        "--jobgraph_trigger_id": token,
    }


def dag_conf(trigger: _Dag, event: dict[str, Any]) -> dict[str, Any]:
    """The DAG run's conf: who triggered it, the mapped parameters, the run's artifacts and metrics, then the
    trigger's own conf (which wins on a name clash: it is what the config asked for)."""
    return {
        "triggered_by_job": event["job_name"],
        "triggered_by_run_id": event["job_run_id"],
        **{parameter: lookup(event, path) for parameter, path in trigger.parameter_mapping.items()},
        "source_artifacts": event.get("artifacts") or {},
        "source_metrics": event.get("metrics") or {},
        **render(trigger.conf, event),
    }


def sqs_mwaa_message(trigger: SqsMwaaTarget, event: dict[str, Any], token: str) -> dict[str, Any]:
    """Seed 003's {dag_id, conf} message, plus the dag_run_id an event_dispatcher DAG can pass to Airflow so
    that a repeated message cannot start a second DAG run."""
    return {"dag_id": trigger.dag_id, "conf": dag_conf(trigger, event), "dag_run_id": token}


def config_from_json(text: str) -> WorkflowConfig:
    return WorkflowConfig.model_validate_json(text or "{}")


def compact_json(config: WorkflowConfig) -> str:
    """The config as stored (defaults left out: loading puts them back)."""
    return json.dumps(config.model_dump(mode="json", exclude_defaults=True), separators=(",", ":"))
