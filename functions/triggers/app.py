"""Trigger Lambda: run-end events (EventBridge rule → trigger queue) → the configured downstream triggers."""

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobgraph.services.observability import logger, metrics, tracer
from jobgraph.services.triggers import trigger_runtime


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    runtime = trigger_runtime()
    return process_partial_response(
        event=event, record_handler=runtime.handle_record, processor=runtime.batch, context=context
    )
