"""The approval routes of the status API (seed 003's PENDING_APPROVAL flow): read and decide a run's approval.

Kept apart from api/app.py's routes: ``add_approval_routes(app, deps)`` adds them and their error
mapping. On AWS the decider is the caller's IAM identity (the HTTP API's IAM authorizer), which a body
cannot override; locally (no auth) it is the body's ``decided_by``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from jobgraph.api.schemas import ErrorBody, RunIdPath
from jobgraph.core.errors import ApprovalConflictError, ApprovalExpiredError, ApprovalNotFoundError
from jobgraph.services import approvals
from jobgraph.services.status import ApiDeps

ApprovalStatus = Literal["PENDING_APPROVAL", "APPROVED", "REJECTED", "EXPIRED"]


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["APPROVED", "REJECTED"] = "APPROVED"
    decided_by: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_ .@:/+=,-]{1,256}$")] | None = Field(
        default=None, description="who decides (on AWS: the caller's IAM identity instead)"
    )
    comment: str = Field(default="", max_length=2000)


class ApprovalBody(BaseModel):
    run_id: str
    workflow: str = Field(description="the workflow (job name key) whose on_approval triggers fire")
    status: ApprovalStatus
    reasons: list[str] = Field(description="the approval gates the run failed")
    requested_at: str
    expires_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    comment: str | None = None
    announced: bool = Field(description="an approval was published for the trigger function")


def _error(status_code: int, code: str, message: str) -> JSONResponse:
    body = ErrorBody(error=code, message=message, errors=[{"field": "path.run_id", "message": message}])
    return JSONResponse(status_code=status_code, content=body.model_dump())


def caller_identity(request: Request) -> str | None:
    """The IAM principal API Gateway authenticated (Mangum passes the Lambda event as aws.event)."""
    context = (request.scope.get("aws.event") or {}).get("requestContext") or {}
    iam = (context.get("authorizer") or {}).get("iam") or {}
    return iam.get("userArn")


def add_approval_routes(app: FastAPI, deps: Callable[[], ApiDeps]) -> None:
    """``deps()`` gives the API's dependencies (services.status.ApiDeps: its table and run events)."""

    @app.exception_handler(ApprovalNotFoundError)
    async def _no_approval(_request: Request, exc: ApprovalNotFoundError) -> JSONResponse:
        return _error(404, "not_found", str(exc))

    @app.exception_handler(ApprovalExpiredError)
    async def _expired(_request: Request, exc: ApprovalExpiredError) -> JSONResponse:
        return _error(410, "expired", str(exc))

    @app.exception_handler(ApprovalConflictError)
    async def _decided(_request: Request, exc: ApprovalConflictError) -> JSONResponse:
        return _error(409, "conflict", str(exc))

    not_found = {
        404: {"model": ErrorBody, "description": "no approval for this run"},
        422: {"model": ErrorBody, "description": "invalid input; errors[].field names each field"},
    }

    @app.get(
        "/runs/{run_id}/approval",
        response_model=ApprovalBody,
        responses=not_found,
        summary="The run's approval: PENDING_APPROVAL, APPROVED, REJECTED or EXPIRED",
    )
    def get_approval(run_id: RunIdPath) -> dict:
        return approvals.get_approval(deps().table, run_id)

    @app.post(
        "/runs/{run_id}/approval",
        response_model=ApprovalBody,
        responses={
            **not_found,
            409: {"model": ErrorBody, "description": "decided before, the other way"},
            410: {"model": ErrorBody, "description": "expired: on_approval will not fire"},
        },
        summary="Approve (fires the workflow's on_approval triggers) or reject a pending run",
    )
    def decide(run_id: RunIdPath, body: ApprovalRequest, request: Request) -> dict:
        api = deps()
        decided_by = caller_identity(request) or body.decided_by or "anonymous"
        return approvals.decide(api.table, api.events, run_id, body.decision, decided_by, body.comment)
