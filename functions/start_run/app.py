"""StartRun Lambda (invoked directly): validate sequences, store them, write the run record, seed FIRST jobs.

sam remote invoke StartRunFunction --event-file events/start-run.json
"""

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobgraph.services.observability import logger, tracer
from jobgraph.services.start_run import start_run, start_run_deps


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return start_run(event, start_run_deps())
