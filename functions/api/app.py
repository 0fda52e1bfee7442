"""Status API Lambda (API Gateway HTTP API, IAM auth): the FastAPI app of jobgraph.api through Mangum."""

from mangum import Mangum

from jobgraph.api.app import create_app
from jobgraph.services.observability import logger

app = create_app()
_asgi = Mangum(app, lifespan="off")


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict, context) -> dict:
    return _asgi(event, context)
