"""PrepareRun Lambda (scenario 3, the state machine's first task): validate the run request, store its
sequences, write the run record and the plan the Distributed Map reads. Returns REJECTED on bad input."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobgraph.services.observability import logger, tracer
from jobgraph.services.step_tasks import prepare_run, prepare_run_deps


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return prepare_run(event, prepare_run_deps())
