"""The status API as a FastAPI app: HTTP onto jobgraph.services (status, listings, tasks, start_run), errors
onto status codes.

Served on AWS by functions/api/app.py (Mangum, API Gateway HTTP API with IAM auth) and locally by
`jobgraph serve` (uvicorn). Client mistakes are 4xx with an ErrorBody naming the field, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from jobgraph.api.approvals import add_approval_routes
from jobgraph.api.limits import BodyLimits
from jobgraph.api.schemas import (
    ClientKey,
    ErrorBody,
    FileType,
    IsoTime,
    JobId,
    JobPage,
    JobStatusBody,
    JobStatusName,
    ResultLinks,
    RunIdPath,
    RunPage,
    RunRequest,
    RunStartedBody,
    RunStatusBody,
    RunStatusName,
    TaskId,
    TaskRequest,
    TaskStatus,
    TestRunId,
)
from jobgraph.core.errors import (
    BadTokenError,
    InvalidSequenceError,
    JobNotFoundError,
    NoSuchFileError,
    NotReadyError,
    RunExistsError,
    RunNotFoundError,
    TaskConflictError,
    TaskNotFoundError,
)
from jobgraph.services import listings, status, tasks
from jobgraph.services.start_run import run_spec, unique_ids

API_VERSION = "1.1.0"
# the parameters several routes share
PageLimit = Annotated[int, Query(ge=1, le=100)]
NextToken = Annotated[str | None, Query(max_length=4096, description="from the previous page")]
JobIdPath = Annotated[JobId, Path(description="job id (or task id)")]
ERRORS = {
    400: {"model": ErrorBody, "description": "bad request (e.g. a foreign next_token)"},
    404: {"model": ErrorBody, "description": "unknown run"},
    422: {"model": ErrorBody, "description": "invalid input; errors[].field names each field"},
}
JOB_ERRORS = {**ERRORS, 404: {"model": ErrorBody, "description": "no record of this job (not started, or no such job)"}}
TASK_ERRORS = {**ERRORS, 404: {"model": ErrorBody, "description": "unknown task"}}


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


# a domain error -> (HTTP status, error code, the field at fault, what is wrong with it (None: the error's text))
DOMAIN_ERRORS: tuple[tuple[type[Exception], int, str, str, str | None], ...] = (
    (RunNotFoundError, 404, "not_found", "path.run_id", "no such run"),
    (TaskNotFoundError, 404, "not_found", "path.task_id", "no such task"),
    (JobNotFoundError, 404, "not_found", "path.job_id", "no record of this job"),
    (NoSuchFileError, 404, "not_found", "path.file_type", None),
    (NotReadyError, 409, "not_ready", "path.job_id", "not COMPLETED yet"),
    (RunExistsError, 409, "conflict", "body.run_id", "a run with this id exists"),
    (TaskConflictError, 409, "conflict", "client_key", None),
    (BadTokenError, 400, "bad_request", "query.next_token", None),
)


def add_limits(app: FastAPI, trusted_hosts: Sequence[str] | None) -> None:
    """Body limits before parsing (api/limits.py) and, on a local server, the Host header checked first:
    a web page a browser was tricked into sending to 127.0.0.1 (DNS rebinding) names its own host."""
    app.add_middleware(BodyLimits)
    if trusted_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(trusted_hosts))


def create_app(
    deps: Callable[[], status.ApiDeps] = status.api_deps,
    cors_origins: tuple[str, ...] = (),
    trusted_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """``deps`` is called per request (cached in production), so tests can hand in their own stack.

    ``cors_origins``: browser origins allowed to call the app when it serves HTTP itself (`jobgraph serve`);
    on AWS the HTTP API answers CORS (ApiCorsAllowOrigins), before IAM auth. ``trusted_hosts``: the Host
    names a local server answers (API Gateway checks them on AWS)."""
    app = FastAPI(
        title="jobgraph status API",
        version=API_VERSION,
        description=(
            "Start and list runs, follow their jobs, fetch their results, queue single tasks and follow them, "
            "read any job's status and download its file. On AWS every route needs SigV4 (IAM auth, service "
            "execute-api)."
        ),
    )
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", "idempotency-key"],
            max_age=600,
        )
    add_limits(app, trusted_hosts)
    add_error_handlers(app)
    add_run_routes(app, deps)
    add_job_routes(app, deps)
    add_task_routes(app, deps)
    add_approval_routes(app, deps)
    return app


def _domain_error(
    status_code: int, code: str, field: str, message: str | None
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        return error(status_code, code, str(exc), [{"field": field, "message": message or str(exc)}])

    return handle


def add_error_handlers(app: FastAPI) -> None:
    """Client mistakes and domain errors as ErrorBody (4xx naming the field), never a 500."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [item for e in exc.errors() for item in field_errors(e)]
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("application/json"):
            # FastAPI reads a body as JSON only when it says so: `curl -d '{...}'` sends a form, which fails as
            # "not a valid dictionary" — name the header instead
            said = f"{content_type[:40]!r}" if content_type else "none"
            for item in errors:
                if item["field"] == "body":
                    item["message"] = f"send the JSON object with content-type: application/json (this one: {said})"
        return error(422, "validation_error", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return error(exc.status_code, code, str(exc.detail))

    for exc_type, status_code, code, field, message in DOMAIN_ERRORS:
        app.add_exception_handler(exc_type, _domain_error(status_code, code, field, message))

    @app.exception_handler(InvalidSequenceError)
    async def _invalid_sequences(_request: Request, exc: InvalidSequenceError) -> JSONResponse:
        errors = [{"field": "body." + p.split(":", 1)[0], "message": p.split(":", 1)[-1].strip()} for p in exc.problems]
        return error(422, "validation_error", "; ".join(exc.problems), errors)


def add_run_routes(app: FastAPI, deps: Callable[[], status.ApiDeps]) -> None:
    """POST /runs, GET /runs, GET /runs/{run_id}, its jobs and its results."""

    @app.post(
        "/runs",
        status_code=202,
        response_model=RunStartedBody,
        responses={**ERRORS, 409: {"model": ErrorBody, "description": "run_id exists"}},
        summary="Start a run from sequences or a generator spec (on the stack's runner)",
    )
    def start_run(body: RunRequest, request: Request) -> RunStartedBody:
        if body.generate is not None:
            from jobgraph.core.generator import generate_sequences  # numpy: only when asked to generate

            sequences = generate_sequences(body.generate.count, body.generate.seed)
        else:
            # already valid one by one (the body model): not validated again; duplicate ids are a property of
            # the whole list
            sequences = unique_ids(body.sequences or [])
        api = deps()
        run_id = body.run_id or status.new_run_id()
        started = api.runner.start_run(
            run_spec(api.settings, run_id, body.scenarios, body.seed, body.test_run_id), sequences
        )
        status_url = str(request.url_for("get_run", run_id=started.run_id))
        # nothing of it has run yet: no median to estimate from (GET /runs/{run_id} has one once jobs complete)
        return RunStartedBody(
            **started.model_dump(), scenario=api.settings.scenario, status_url=status_url, estimated_time_seconds=None
        )

    @app.get(
        "/runs",
        response_model=RunPage,
        responses={400: ERRORS[400], 422: ERRORS[422]},
        summary="Runs newest first: by status, by test run, or all of a date range (default: the last 7 days)",
    )
    def list_runs(
        run_status: Annotated[
            RunStatusName | None, Query(alias="status", description="only runs in this status")
        ] = None,
        test_run_id: Annotated[TestRunId | None, Query(description="only runs of this test run")] = None,
        since: Annotated[IsoTime | None, Query(description="created at or after (ISO date or UTC time)")] = None,
        until: Annotated[IsoTime | None, Query(description="created at or before (a date: all of that day)")] = None,
        limit: PageLimit = 50,
        next_token: NextToken = None,
    ) -> dict:
        return listings.list_runs(deps(), run_status, test_run_id, since, until, limit, next_token)

    @app.get("/runs/{run_id}", response_model=RunStatusBody, responses=ERRORS, summary="Status, progress, timings")
    def get_run(run_id: RunIdPath) -> dict:
        return status.run_status(deps(), run_id)

    @app.get("/runs/{run_id}/jobs", response_model=JobPage, responses=ERRORS, summary="Job records, paginated")
    def list_jobs(
        run_id: RunIdPath,
        job_status: Annotated[
            JobStatusName | None, Query(alias="status", description="only jobs in this status")
        ] = None,
        limit: PageLimit = 50,
        next_token: NextToken = None,
    ) -> dict:
        return listings.list_jobs(deps(), run_id, job_status, limit, next_token)

    @app.get("/runs/{run_id}/results", response_model=ResultLinks, responses=ERRORS, summary="Presigned result URLs")
    def get_results(run_id: RunIdPath) -> dict:
        return status.result_links(deps(), run_id)


def add_job_routes(app: FastAPI, deps: Callable[[], status.ApiDeps]) -> None:
    """GET /status/{job_id} and GET /download/{job_id}/{file_type}: any job, a run's or a task's."""

    @app.get(
        "/status/{job_id}",
        response_model=JobStatusBody,
        responses=JOB_ERRORS,
        summary="Any job's status (a run's job or a task), with its file's URL once completed",
    )
    def get_job_status(job_id: JobIdPath) -> dict:
        return status.job_status(deps(), job_id)

    @app.get(
        "/download/{job_id}/{file_type}",
        status_code=302,
        response_class=RedirectResponse,
        responses={
            302: {"description": "redirect to a presigned GET URL of the file (Location)"},
            **JOB_ERRORS,
            409: {"model": ErrorBody, "description": "the job has not completed: no file yet"},
        },
        summary="Redirect to a job's file: delays (routes), percentiles, merged_percentiles, data (tasks), or output",
    )
    def download(
        job_id: JobIdPath,
        file_type: Annotated[FileType, Path(description="the job's file, or 'output' for whichever it has")],
    ) -> RedirectResponse:
        return RedirectResponse(status.download_url(deps(), job_id, file_type), status_code=302)


def idempotency_key(body: TaskRequest, header: str | None) -> str | JSONResponse:
    """The task's client key (the body's or the Idempotency-Key header, not two different ones), else a 422."""
    if body.client_key and header and body.client_key != header:
        return error(
            422,
            "validation_error",
            "Idempotency-Key header and client_key differ",
            [{"field": "body.client_key", "message": "differs from the Idempotency-Key header"}],
        )
    key = body.client_key or header
    if key is None:
        return error(
            422,
            "validation_error",
            "give an idempotency key: the Idempotency-Key header or client_key",
            [{"field": "header.Idempotency-Key", "message": "required (or body.client_key)"}],
        )
    return key


def add_task_routes(app: FastAPI, deps: Callable[[], status.ApiDeps]) -> None:
    """POST /tasks (idempotent per client key) and GET /tasks/{task_id} (seed 004)."""

    @app.post(
        "/tasks",
        status_code=202,
        response_model=TaskStatus,
        responses={
            200: {"model": TaskStatus, "description": "replay of a key already accepted: the first task, as it is now"},
            **ERRORS,
            409: {"model": ErrorBody, "description": "key reused with another body"},
        },
        summary="Queue one task (a SYNTHETIC job) on the stack's runner, idempotent per client key",
    )
    def submit_task(
        body: TaskRequest,
        request: Request,
        idempotency_key_header: Annotated[ClientKey | None, Header(alias="Idempotency-Key")] = None,
    ) -> JSONResponse:
        key = idempotency_key(body, idempotency_key_header)
        if isinstance(key, JSONResponse):
            return key
        task, created = tasks.submit_task(deps(), key, body.work_duration_ms, body.data_size_kb, body.correlation_id)
        task["status_url"] = str(request.url_for("get_task", task_id=task["task_id"]))
        return JSONResponse(status_code=202 if created else 200, content=TaskStatus(**task).model_dump())

    @app.get(
        "/tasks/{task_id}",
        response_model=TaskStatus,
        responses=TASK_ERRORS,
        summary="A task's status (QUEUED, PROCESSING, COMPLETED, FAILED), estimate, and download URL once done",
    )
    def get_task(task_id: Annotated[TaskId, Path(description="from POST /tasks")], request: Request) -> dict:
        task = tasks.task_status(deps(), task_id)
        return {**task, "status_url": str(request.url_for("get_task", task_id=task_id))}


def openapi_document() -> str:
    """docs/openapi.json: the app's OpenAPI document, stable text (tests fail when the file is stale)."""
    import json

    return json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"
