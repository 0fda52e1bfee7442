"""One settings model per function, read from the environment once and validated (fail fast)."""

from __future__ import annotations

from functools import cache

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobgraph.core.bounds import MAX_SCENARIOS
from jobgraph.core.errors import ConfigurationError
from jobgraph.core.models import CARRY_STATE_MAX_BYTES
from jobgraph.core.retry import MAX_VISIBILITY_S


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    bucket_name: str = Field(min_length=3, validation_alias="BUCKET_NAME")
    table_name: str = Field(min_length=3, validation_alias="TABLE_NAME")
    test_run_id: str = Field(default="default", min_length=1, validation_alias="TEST_RUN_ID")
    results_prefix: str = Field(default="", validation_alias="RESULTS_PREFIX")
    record_ttl_days: int = Field(default=30, ge=0, validation_alias="RECORD_TTL_DAYS")


class QueueConsumerSettings(CommonSettings):
    """Functions fed by an SQS event source (and the ECS worker): retries and concurrency per batch."""

    # A failed message is visible again after base x 2^(attempt-1) seconds (jittered), at most the cap
    # (core/retry.py), instead of the queue's visibility timeout. 0: visible again at once.
    retry_backoff_base_s: float = Field(default=5, ge=0, le=3600, validation_alias="RETRY_BACKOFF_BASE_SECONDS")
    retry_backoff_max_s: int = Field(
        default=300, ge=1, le=MAX_VISIBILITY_S, validation_alias="RETRY_BACKOFF_MAX_SECONDS"
    )
    # Message groups of one batch processed at once (each group in order); 1: one record at a time.
    group_concurrency: int = Field(default=10, ge=1, le=100, validation_alias="GROUP_CONCURRENCY")


class ProcessorSettings(QueueConsumerSettings):
    outgoing_queue_url: str = Field(min_length=1, validation_alias="OUTGOING_QUEUE_URL")
    # The largest route state that travels in the messages instead of an S3 object (models.py has the
    # line where S3 becomes cheaper); 0: always S3. Below SQS's 1 MiB message limit.
    carry_state_max_bytes: int = Field(
        default=CARRY_STATE_MAX_BYTES, ge=0, le=900 * 1024, validation_alias="STATE_IN_MESSAGE_MAX_BYTES"
    )


class WorkerSettings(ProcessorSettings):
    """The ECS worker (scenario 2): the Processor's settings plus how it polls the incoming queue."""

    incoming_queue_url: str = Field(min_length=1, validation_alias="INCOMING_QUEUE_URL")
    # SQS long poll: at most 20 s and 10 messages per ReceiveMessage
    wait_time_s: int = Field(default=20, ge=0, le=20, validation_alias="WAIT_TIME_SECONDS")
    max_messages: int = Field(default=10, ge=1, le=10, validation_alias="MAX_MESSAGES")
    # Messages in hand stay invisible this long after each heartbeat; a crashed task's batch comes back
    # after at most this, and the job claims it holds (their lease) end after it too.
    visibility_timeout_s: int = Field(default=120, ge=2, le=43200, validation_alias="VISIBILITY_TIMEOUT_SECONDS")
    heartbeat_s: float = Field(default=30, gt=0, validation_alias="HEARTBEAT_SECONDS")

    @model_validator(mode="after")
    def _heartbeat_within_visibility(self) -> WorkerSettings:
        if self.heartbeat_s * 2 > self.visibility_timeout_s:
            raise ValueError(
                f"HEARTBEAT_SECONDS ({self.heartbeat_s:g}) must be at most half of "
                f"VISIBILITY_TIMEOUT_SECONDS ({self.visibility_timeout_s})"
            )
        return self


class RunEndSettings(CommonSettings):
    """Functions that announce a run's end (the Scheduler in scenarios 1/2, StepTask in scenario 3)."""

    # where a run's end is announced for the downstream triggers; empty: not announced
    event_bus_name: str = Field(default="", validation_alias="RUN_EVENTS_BUS_NAME")
    scenario: int = Field(default=1, ge=1, validation_alias="SCENARIO")
    stack_name: str = Field(default="", validation_alias="STACK_NAME")


class SchedulerSettings(QueueConsumerSettings, RunEndSettings):
    incoming_queue_url: str = Field(min_length=1, validation_alias="INCOMING_QUEUE_URL")
    # the incoming queue's maxReceiveCount: a job failed that often is dead-lettered, so its run FAILED; 0: never
    job_max_attempts: int = Field(default=0, ge=0, validation_alias="JOB_MAX_ATTEMPTS")


class RunSettings(CommonSettings):
    """Functions that register a run (StartRun in scenario 1, PrepareRun in scenario 3)."""

    default_scenarios: int = Field(default=1000, ge=1, le=MAX_SCENARIOS, validation_alias="DEFAULT_SCENARIOS")


class StartRunSettings(RunSettings):
    incoming_queue_url: str = Field(min_length=1, validation_alias="INCOMING_QUEUE_URL")


class PrepareRunSettings(RunSettings):
    pass


class StepTaskSettings(RunEndSettings):
    pass


class ApiSettings(RunSettings):
    """The status API (templates/shared/status-api.yaml): it starts runs (POST /runs) and tasks (POST /tasks) on
    its scenario's runner — the incoming queue in scenarios 1 and 2, the state machine and StepTask in 3."""

    scenario: int = Field(default=1, ge=1, le=3, validation_alias="SCENARIO")
    incoming_queue_url: str = Field(default="", validation_alias="INCOMING_QUEUE_URL")
    state_machine_arn: str = Field(default="", validation_alias="STATE_MACHINE_ARN")
    step_task_function: str = Field(default="", validation_alias="STEP_TASK_FUNCTION")
    # jobs the runner works on at once: the divisor of estimated_time_seconds (0, scaled to zero: 1)
    runner_concurrency: int = Field(default=10, ge=0, validation_alias="RUNNER_CONCURRENCY")
    url_expiry_s: int = Field(default=3600, ge=60, le=7 * 86400, validation_alias="RESULT_URL_EXPIRY_SECONDS")
    # approvals (POST /runs/{run_id}/approval) announce "Run Approved" here for the trigger function
    event_bus_name: str = Field(default="", validation_alias="RUN_EVENTS_BUS_NAME")
    # the correlation id (FIFO message group) of a task that names none
    task_correlation_id: str = Field(
        default="api-tasks", min_length=1, max_length=128, validation_alias="TASK_GROUP_ID"
    )

    @model_validator(mode="after")
    def _runner_of_the_scenario(self) -> ApiSettings:
        if self.scenario == 3 and not (self.state_machine_arn and self.step_task_function):
            raise ValueError("scenario 3: STATE_MACHINE_ARN and STEP_TASK_FUNCTION are needed")
        if self.scenario != 3 and not self.incoming_queue_url:
            raise ValueError(f"scenario {self.scenario}: INCOMING_QUEUE_URL is needed")
        return self


class TriggerSettings(CommonSettings):
    """The downstream-trigger function: where its workflow config is read at run time (docs/triggers.md)."""

    # S3 first (bucket default: the stack's results bucket), then the SSM parameter, then this default
    config_bucket: str = Field(default="", validation_alias="TRIGGER_CONFIG_BUCKET")
    config_key: str = Field(default="config/triggers.json", validation_alias="TRIGGER_CONFIG_KEY")
    config_parameter: str = Field(default="", validation_alias="TRIGGER_CONFIG_PARAMETER")
    trigger_config: str = Field(default="{}", validation_alias="TRIGGER_CONFIG")
    config_cache_s: float = Field(default=10.0, ge=0, le=3600, validation_alias="TRIGGER_CONFIG_CACHE_SECONDS")
    # a claim older than this has a dead holder: more than the function's timeout, less than the trigger
    # queue's visibility timeout (so the first redelivery can take it over, inside a FIFO target's 5-minute
    # deduplication window)
    claim_stale_s: float = Field(default=90.0, gt=0, le=3600, validation_alias="TRIGGER_CLAIM_STALE_SECONDS")
    # "Run Pending Approval" goes here for whoever must decide; empty: not published
    event_bus_name: str = Field(default="", validation_alias="RUN_EVENTS_BUS_NAME")


def load_settings[S: CommonSettings](model: type[S]) -> S:
    """Validate the environment into ``model``; ConfigurationError names every bad variable."""
    try:
        return model()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{name}: {'not set' if error['type'] == 'missing' else error['msg']}")
        raise ConfigurationError(f"{model.__name__} from environment: " + "; ".join(problems)) from None


@cache
def cached_settings[S: CommonSettings](model: type[S]) -> S:
    return load_settings(model)
