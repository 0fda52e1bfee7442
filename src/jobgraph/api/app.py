"""The status API as a FastAPI app: HTTP onto jobgraph.services.status / start_run, errors onto status codes.

Served on AWS by functions/api/app.py (Mangum, API Gateway HTTP API with IAM auth) and locally by
`jobgraph serve` (uvicorn). Client mistakes are 4xx with an ErrorBody naming the field, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Annotated

from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from jobgraph.adapters.dynamodb import RunExistsError, RunNotFoundError
from jobgraph.api.approvals import add_approval_routes
from jobgraph.api.limits import BodyLimits
from jobgraph.api.schemas import (
    ClientKey,
    ErrorBody,
    JobPage,
    JobStatusName,
    ResultLinks,
    RunRequest,
    RunStarted,
    RunStatusBody,
    TaskAccepted,
    TaskRequest,
)
from jobgraph.core.errors import InvalidSequenceError
from jobgraph.core.models import RUN_ID_PATTERN
from jobgraph.services import status
from jobgraph.services.start_run import launch_run, parse_sequences

API_VERSION = "1.0.0"
RunIdPath = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="run id")]
ERRORS = {
    400: {"model": ErrorBody, "description": "bad request (e.g. a foreign next_token)"},
    404: {"model": ErrorBody, "description": "unknown run"},
    422: {"model": ErrorBody, "description": "invalid input; errors[].field names each field"},
}


def _field(loc: tuple | list) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# "routes[1].origin_iata: unknown IATA airport code 'XXX'" — one problem of a whole-sequence check
_NESTED_PROBLEM = re.compile(r"^([A-Za-z_][\w]*(?:\[\d+\])?(?:\.[A-Za-z_]\w*(?:\[\d+\])?)*): (.+)$")


def field_errors(error: dict) -> list[dict]:
    """One entry per field: a model-level check (a sequence's chain/time rules) names several fields in
    one message, split here so each names its own field under the model's location."""
    where = _field(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    parts = [_NESTED_PROBLEM.match(part) for part in message.split("; ")]
    if error["type"] == "value_error" and all(parts):
        return [{"field": f"{where}.{m.group(1)}", "message": m.group(2)} for m in parts if m]
    return [{"field": where, "message": message}]


def error(status_code: int, code: str, message: str, errors: list[dict] | None = None) -> JSONResponse:
    body = ErrorBody(error=code, message=message, errors=errors or [])
    return JSONResponse(status_code=status_code, content=body.model_dump())


def add_limits(app: FastAPI, trusted_hosts: Sequence[str] | None) -> None:
    """Body limits before parsing (api/limits.py) and, on a local server, the Host header checked first:
    a web page a browser was tricked into sending to 127.0.0.1 (DNS rebinding) names its own host."""
    app.add_middleware(BodyLimits)
    if trusted_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(trusted_hosts))


def create_app(
    deps: Callable[[], status.ApiDeps] = status.api_deps, trusted_hosts: Sequence[str] | None = None
) -> FastAPI:
    """``deps`` is called per request (cached in production), so tests can hand in their own stack;
    ``trusted_hosts``: the Host names a local server answers (API Gateway checks them on AWS)."""
    app = FastAPI(
        title="jobgraph status API",
        version=API_VERSION,
        description=(
            "Start runs, follow their jobs, fetch their results, queue single tasks. On AWS every route "
            "needs SigV4 (IAM auth, service execute-api)."
        ),
    )

    add_limits(app, trusted_hosts)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [item for e in exc.errors() for item in field_errors(e)]
        return error(422, "validation_error", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RunNotFoundError)
    async def _not_found(_request: Request, exc: RunNotFoundError) -> JSONResponse:
        return error(404, "not_found", str(exc), [{"field": "path.run_id", "message": "no such run"}])

    @app.exception_handler(RunExistsError)
    async def _exists(_request: Request, exc: RunExistsError) -> JSONResponse:
        return error(409, "conflict", str(exc), [{"field": "body.run_id", "message": "a run with this id exists"}])

    @app.exception_handler(status.TaskConflictError)
    async def _task_conflict(_request: Request, exc: status.TaskConflictError) -> JSONResponse:
        return error(409, "conflict", str(exc), [{"field": "client_key", "message": str(exc)}])

    @app.exception_handler(status.BadTokenError)
    async def _bad_token(_request: Request, exc: status.BadTokenError) -> JSONResponse:
        return error(400, "bad_request", str(exc), [{"field": "query.next_token", "message": str(exc)}])

    @app.exception_handler(InvalidSequenceError)
    async def _invalid_sequences(_request: Request, exc: InvalidSequenceError) -> JSONResponse:
        errors = [{"field": "body." + p.split(":", 1)[0], "message": p.split(":", 1)[-1].strip()} for p in exc.problems]
        return error(422, "validation_error", "; ".join(exc.problems), errors)

    @app.post(
        "/runs",
        status_code=202,
        response_model=RunStarted,
        responses={**ERRORS, 409: {"model": ErrorBody, "description": "run_id exists"}},
        summary="Start a run from sequences or a generator spec",
    )
    def start_run(body: RunRequest, request: Request) -> RunStarted:
        if body.generate is not None:
            from jobgraph.core.generator import generate_sequences  # numpy: only when asked to generate

            sequences = generate_sequences(body.generate.count, body.generate.seed)
        else:
            # already valid one by one (the body model); duplicate ids are a property of the whole list
            sequences = parse_sequences([s.model_dump(mode="json") for s in body.sequences or []])
        started = launch_run(
            body.run_id or status.new_run_id(),
            sequences,
            deps().run,
            scenarios=body.scenarios,
            seed=body.seed,
            test_run_id=body.test_run_id,
        )
        return RunStarted(**asdict(started), status_url=str(request.url_for("get_run", run_id=started.run_id)))

    @app.get("/runs/{run_id}", response_model=RunStatusBody, responses=ERRORS, summary="Status, progress, timings")
    def get_run(run_id: RunIdPath) -> dict:
        return status.run_status(deps(), run_id)

    @app.get("/runs/{run_id}/jobs", response_model=JobPage, responses=ERRORS, summary="Job records, paginated")
    def list_jobs(
        run_id: RunIdPath,
        job_status: Annotated[
            JobStatusName | None, Query(alias="status", description="only jobs in this status")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        next_token: Annotated[str | None, Query(max_length=4096, description="from the previous page")] = None,
    ) -> dict:
        return status.list_jobs(deps(), run_id, job_status, limit, next_token)

    @app.get("/runs/{run_id}/results", response_model=ResultLinks, responses=ERRORS, summary="Presigned result URLs")
    def get_results(run_id: RunIdPath) -> dict:
        return status.result_links(deps(), run_id)

    @app.post(
        "/tasks",
        status_code=202,
        response_model=TaskAccepted,
        responses={
            200: {"model": TaskAccepted, "description": "replay of a key already accepted: the first task"},
            **ERRORS,
            409: {"model": ErrorBody, "description": "key reused with another body"},
        },
        summary="Queue one task on the incoming FIFO queue (idempotent per client key)",
    )
    def submit_task(
        body: TaskRequest,
        idempotency_key: Annotated[ClientKey | None, Header(alias="Idempotency-Key")] = None,
    ) -> JSONResponse:
        key = body.client_key or idempotency_key
        if key is None:
            return error(
                422,
                "validation_error",
                "give an idempotency key: the Idempotency-Key header or client_key",
                [{"field": "header.Idempotency-Key", "message": "required (or body.client_key)"}],
            )
        if body.client_key and idempotency_key and body.client_key != idempotency_key:
            return error(
                422,
                "validation_error",
                "Idempotency-Key header and client_key differ",
                [{"field": "body.client_key", "message": "differs from the Idempotency-Key header"}],
            )
        task, created = status.submit_task(
            deps(), key, body.work_duration_ms, body.data_size_kb, body.run_id, body.message_group_id
        )
        return JSONResponse(status_code=202 if created else 200, content=TaskAccepted(**task).model_dump())

    add_approval_routes(app, deps)
    return app


def openapi_document() -> str:
    """docs/openapi.json: the app's OpenAPI document, stable text (tests fail when the file is stale)."""
    import json

    return json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"
