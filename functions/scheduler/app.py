"""Scheduler Lambda: outgoing FIFO queue → next route, AGGREGATION, the run's one MERGE, run COMPLETED.

Imports no pandas/pyarrow (it deploys without the scientific layer).
"""

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobgraph.services.observability import logger, metrics, tracer
from jobgraph.services.scheduler import scheduler_runtime


@logger.inject_lambda_context(correlation_id_path="Records[0].attributes.MessageGroupId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    runtime = scheduler_runtime()
    metrics.add_dimension(name="TestRunId", value=runtime.settings.test_run_id)
    return runtime.run_batch(event, context)
