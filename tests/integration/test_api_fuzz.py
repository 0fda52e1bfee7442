"""Property-based fuzzing of the status API from its OpenAPI document (schemathesis) on moto: no 5xx.

Every operation gets schema-valid and schema-violating requests (bodies, paths, query strings, headers);
whatever they are, the answer is a 2xx/4xx, never a server error. Examples are kept few so the suite stays fast.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from jobgraph.api.app import create_app
from jobgraph.core.models import CompletedJob, ExecType, JobStatus
from jobgraph.services import status
from jobgraph.services.settings import ApiSettings, load_settings

EXAMPLES = 25


@pytest.fixture
def api_app(fake_stack, monkeypatch):
    from jobgraph.core import generator

    # generating and storing up to MAX_GENERATED sequences per example on moto would make the fuzz slow;
    # the size limit itself is the schema's (tested in test_status_api.py)
    real = generator.generate_sequences
    monkeypatch.setattr(generator, "generate_sequences", lambda count, seed: real(min(count, 2), seed))
    status.api_deps.cache_clear()
    deps = status.ApiDeps.from_settings(load_settings(ApiSettings))
    # one known run, so GET /runs/{run_id}... also reaches the found paths, and one of its jobs
    deps.table.create_run("fuzz", "default", 1, 4, 10, 42)
    deps.table.record_job(
        CompletedJob(
            job_id="fuzz-s0-r0", status=JobStatus.COMPLETED, processing_time_ms=1.0, test_run_id="default",
            run_id="fuzz", correlation_id="fuzz-s0", exec_type=ExecType.FIRST, sequence_id=0, route_index=0,
            output_key="fuzz/delays/fuzz-s0-r0.parquet",
        )
    )  # fmt: skip
    yield create_app(lambda: deps)
    status.api_deps.cache_clear()


schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_request_makes_the_api_fail(case, api_app):
    response = case.call(app=api_app)
    case.validate_response(response, checks=[not_a_server_error])
