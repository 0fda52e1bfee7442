"""Processor Lambda: incoming FIFO queue → one stage per job → S3, DynamoDB, outgoing FIFO queue."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobgraph.services.observability import logger, metrics, tracer
from jobgraph.services.processor import processor_runtime


@logger.inject_lambda_context(correlation_id_path="Records[0].attributes.MessageGroupId")
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    runtime = processor_runtime()
    metrics.add_dimension(name="TestRunId", value=runtime.settings.test_run_id)
    return runtime.run_batch(event, context)
