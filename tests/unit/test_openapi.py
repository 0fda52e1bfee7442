"""docs/openapi.json is what the code generates: regenerate with `jobgraph openapi --out docs/openapi.json`."""

from __future__ import annotations

import json

from jobgraph.api.app import openapi_document
from tests.lambda_support import ROOT


def test_committed_openapi_document_is_current():
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == openapi_document(), "docs/openapi.json is stale: run `jobgraph openapi --out docs/openapi.json`"


def test_every_route_documents_its_client_errors():
    document = json.loads(openapi_document())
    routes = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == {
        ("/runs", "post"),
        ("/runs", "get"),
        ("/runs/{run_id}", "get"),
        ("/runs/{run_id}/jobs", "get"),
        ("/runs/{run_id}/results", "get"),
        ("/runs/{run_id}/approval", "get"),
        ("/runs/{run_id}/approval", "post"),
        ("/tasks", "post"),
        ("/tasks/{task_id}", "get"),
        ("/status/{job_id}", "get"),
        ("/download/{job_id}/{file_type}", "get"),
    }
    # the template routes exactly these to the function (API Gateway refuses the rest before invoking it)
    from jobgraph.sam.template import load_template

    events = load_template(ROOT / "templates" / "shared" / "status-api.yaml")["Resources"]["ApiFunction"]["Properties"]
    declared = {(e["Properties"]["Path"], e["Properties"]["Method"].lower()) for e in events["Events"].values()}
    assert declared == routes
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "422" in operation["responses"], (path, method)
            assert operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
