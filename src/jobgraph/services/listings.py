"""GET /runs and GET /runs/{run_id}/jobs: runs and job records a page at a time, behind signed tokens.

A token carries the question it answers (filters, run) and the index key to go on from, signed with the
deployment's secret (services/page_tokens.py); a token handed out for another listing, edited or made up is a
BadTokenError (400), never a query of someone else's keys.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobgraph.core.errors import BadTokenError
from jobgraph.core.models import RunStatus
from jobgraph.services import page_tokens
from jobgraph.services.status import ApiDeps, job_view

DATE_RANGE_DAYS = 7  # GET /runs without a filter or range: the last week
RUN_STATUSES = tuple(status.value for status in RunStatus)  # the status index's run partitions
FOREIGN_TOKEN = "next_token: not a token this listing handed out (or it was for another run/filter)"


# --- GET /runs ----------------------------------------------------------------------------------------
_TOKEN_SECRETS: dict[str, bytes] = {}  # per table: read once per process (a cold start)


def _token_secret(deps: ApiDeps) -> bytes:
    table = deps.table
    if table.table_name not in _TOKEN_SECRETS:
        _TOKEN_SECRETS[table.table_name] = table.page_token_secret()
    return _TOKEN_SECRETS[table.table_name]


def _encode_token(deps: ApiDeps, payload: dict[str, Any]) -> str:
    """A token signed with this deployment's secret (services/page_tokens.py)."""
    return page_tokens.encode(_token_secret(deps), payload)


def _decode_token(deps: ApiDeps, token: str, expected: dict[str, Any]) -> dict[str, Any]:
    """The token's payload if this API signed it for the listing ``expected`` describes, else BadTokenError:
    a forged or edited token is refused before its start key reaches DynamoDB."""
    try:
        payload = page_tokens.decode(_token_secret(deps), token)
    except page_tokens.ForgedTokenError:
        raise BadTokenError("next_token: not a token this API handed out") from None
    if any(payload.get(k) != v for k, v in expected.items()):
        raise BadTokenError(FOREIGN_TOKEN)
    return payload


def _key_of(value: object) -> dict[str, Any] | None:
    """A token's DynamoDB key: a map of attribute name to {"S": ...} (nothing else this API hands out)."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not value
        or not all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in value.values())
    ):
        raise BadTokenError(FOREIGN_TOKEN)
    return value


INDEX_KEY = ("pk", "sk", "gsi1pk", "gsi1sk")  # where a query of the status index continues from
RUN_FIELDS = ("status", "test_run_id", "created_at", "started_at", "completed_at", "duration_s", "sequences_total",
              "jobs_total", "scenarios", "error")  # fmt: skip


def _run_summary(item: dict[str, Any]) -> dict[str, Any]:
    summary = {"run_id": item["run_id"], **{field: item[field] for field in RUN_FIELDS if field in item}}
    summary.setdefault("created_at", item.get("started_at"))
    for field in ("sequences_total", "jobs_total", "scenarios"):
        if field in summary:
            summary[field] = int(summary[field])
    if "duration_s" in summary:
        summary["duration_s"] = float(summary["duration_s"])
    return summary


def list_runs(
    deps: ApiDeps,
    status: str | None,
    test_run_id: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    next_token: str | None,
) -> dict[str, Any]:
    """Runs newest first, by status (the status index), by test run (by-test-run), or all in a date range
    (the status index's three run partitions, merged), paginated."""
    filters: dict[str, Any] = {
        "f": [status, test_run_id, since, until]
    }  # as asked: a token is valid for the same question
    state = _decode_token(deps, next_token, filters) if next_token else None
    if since is None and until is None and status is None and test_run_id is None:
        # the last week, as of the first page (the token carries it: later pages list the same runs)
        default_since = (datetime.now(UTC) - timedelta(days=DATE_RANGE_DAYS)).isoformat(timespec="seconds")[:19]
        since = state.get("since") if state else default_since
        if not isinstance(since, str):
            raise BadTokenError(FOREIGN_TOKEN)
        filters["since"] = since
    until_bound = (until or "") + "~" if until and len(until) == 10 else until  # a date: all of that day
    value = test_run_id if test_run_id is not None else status
    if value is not None:
        index = "test_run" if test_run_id is not None else "status"
        start = _key_of(state.get("k")) if state else None
        items: list[dict[str, Any]] = []
        last = start
        while len(items) < limit:  # a status filter on the test-run index may thin a page
            page, last = deps.table.run_page(index, value, limit - len(items), last, since, until_bound)
            items += [i for i in page if status is None or i.get("status") == status]
            if last is None:
                break
        return {
            "runs": [_run_summary(i) for i in items],
            "next_token": _encode_token(deps, {**filters, "k": last}) if last else None,
        }
    # every status: each partition's next page from its own cursor, merged newest first
    cursors = state["c"] if state else dict.fromkeys(RUN_STATUSES)
    if not isinstance(cursors, dict) or set(cursors) != set(RUN_STATUSES):
        raise BadTokenError(FOREIGN_TOKEN)
    pages = {}
    for name, cursor in cursors.items():
        if cursor != "done":
            pages[name] = deps.table.run_page("status", name, limit, _key_of(cursor), since, until_bound)
    merged = sorted(
        ((item, name) for name, (page, _last) in pages.items() for item in page),
        key=lambda pair: (pair[0].get("gsi1sk", ""), pair[0]["run_id"]),
        reverse=True,
    )[:limit]
    for name, (page, last) in pages.items():
        taken = [item for item, status_name in merged if status_name == name]
        if taken:
            whole_page = len(taken) == len(page)
            cursors[name] = "done" if whole_page and last is None else {k: {"S": taken[-1][k]} for k in INDEX_KEY}
        elif not page:
            cursors[name] = "done"
    more = any(cursor != "done" for cursor in cursors.values())
    return {
        "runs": [_run_summary(item) for item, _name in merged],
        "next_token": _encode_token(deps, {**filters, "c": cursors}) if more else None,
    }


# --- GET /runs/{run_id}/jobs --------------------------------------------------------------------------
def list_jobs(deps: ApiDeps, run_id: str, status: str | None, limit: int, next_token: str | None) -> dict[str, Any]:
    listing = {"r": run_id, "s": status}
    start = _key_of(_decode_token(deps, next_token, listing).get("k")) if next_token else None
    if start is not None and start.get("pk") != {"S": f"RUN#{run_id}"}:
        raise BadTokenError(FOREIGN_TOKEN)
    deps.table.get_run(run_id)  # 404 for an unknown run, not an empty list
    items, last = deps.table.job_page(run_id, status, limit, start)
    return {
        "run_id": run_id,
        "status": status,
        "jobs": [job_view(item["sk"].removeprefix("JOB#"), run_id, item) for item in items],
        "next_token": _encode_token(deps, {**listing, "k": last}) if last else None,
    }
