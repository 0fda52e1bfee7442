"""StepTask Lambda (scenario 3): runs one job of the plan — a route, an AGGREGATION or the MERGE — for the
state machine, through the Processor's stage code and job records; exactly once per job id (a claim on its record)."""

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobgraph.services.observability import logger, metrics, tracer
from jobgraph.services.step_tasks import StepTaskEvent, step_task_runtime


@logger.inject_lambda_context(correlation_id_path="job.correlation_id")
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@event_parser(model=StepTaskEvent)
def lambda_handler(event: StepTaskEvent, context: LambdaContext) -> dict:
    runtime = step_task_runtime()
    metrics.add_dimension(name="TestRunId", value=runtime.settings.test_run_id)
    return runtime.handle(event, context)
