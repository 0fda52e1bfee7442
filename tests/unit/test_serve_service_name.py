"""`jobgraph serve`: the status API's log lines name the ApiFunction's service, as on AWS (not "service_undefined")."""

from __future__ import annotations

import io
import json

import boto3
import pytest

from jobgraph.runs.serve import api_deps
from jobgraph.services.observability import logger

ENVIRONMENT = {  # the ApiFunction's deployed environment (templates/shared/status-api.yaml), as the stack resolves it
    "TABLE_NAME": "jobs-table",
    "BUCKET_NAME": "results-bucket",
    "INCOMING_QUEUE_URL": "http://127.0.0.1:9/000000000000/incoming.fifo",
}


class Clients:  # never called here: building the API's dependencies makes no request
    def client(self, name: str):
        return boto3.client(name, region_name="eu-west-1", endpoint_url="http://127.0.0.1:9")


@pytest.fixture
def logged():
    """What the Powertools logger writes (its handler's stream, bound when it was made), its service put back."""
    before = logger.registered_formatter.log_format.get("service")
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    yield stream
    logger.registered_handler.setStream(previous)
    logger.append_keys(service=before)


@pytest.mark.parametrize(("given", "named"), [({"POWERTOOLS_SERVICE_NAME": "status-api"}, "status-api"), ({}, "api")])
def test_the_served_apis_log_lines_name_its_service(logged, given, named):
    api_deps({**ENVIRONMENT, **given}, Clients())
    logger.info("served")
    line = json.loads(logged.getvalue().strip().splitlines()[-1])
    assert (line["message"], line["service"]) == ("served", named)
