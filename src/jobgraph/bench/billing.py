"""What AWS actually billed for a run, from Cost Explorer, beside jobgraph's estimate (bench/cost.py).

Every resource of a stack carries the ``PerfTestRun`` tag (the stack's TestRunId). Once that tag is an active
cost allocation tag (``activate_tags``, run by ``make bootstrap``), Cost Explorer can filter costs by it:
``billed_cost`` asks GetCostAndUsage for UnblendedCost filtered on ``PerfTestRun=<value>``, grouped by service,
at DAILY granularity over the UTC days the run touched, following NextPageToken.

What this can and cannot say (printed with every comparison):
- Days, not runs: DAILY is the finest granularity that needs no opt-in (HOURLY is a paid, opt-in feature
  covering 14 days), so everything tagged with the same value on those days is in the figure. One
  TestRunId per test window keeps runs apart.
- Late: Cost Explorer refreshes its data at least once every 24 hours; a run's costs appear up to a day
  later, and the current month's figures are marked estimated until the bill is final.
- Tags from activation on: costs incurred before the tag was activated are not attributed (unless a
  backfill is requested), and a newly created tag key shows up in billing up to 24 hours after first use.
- Coverage: the estimate leaves out free tiers, storage, logs, data transfer and monitoring; those show up
  as billed-only services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from jobgraph.core.errors import JobGraphError

TAG_KEYS = ("PerfTestRun", "Purpose", "Environment", "Project")
COST_TAG = "PerfTestRun"
CE_REGION = "us-east-1"  # Cost Explorer's one endpoint
METRIC = "UnblendedCost"
MAX_PAGES = 50
DATA_DELAY = timedelta(hours=24)
# the estimate's service names (bench/cost.py) -> Cost Explorer's SERVICE dimension values
CE_SERVICES = {
    "Lambda": "AWS Lambda",
    "SQS": "Amazon Simple Queue Service",
    "DynamoDB": "Amazon DynamoDB",
    "S3": "Amazon Simple Storage Service",
    "Step Functions": "AWS Step Functions",
    "Fargate": "Amazon Elastic Container Service",
}
CAVEATS = (
    "days, not runs: DAILY granularity counts everything tagged with this value on these UTC days",
    "late: Cost Explorer refreshes within 24 h, and the current month stays estimated until the bill is final",
    "from activation on: costs before the PerfTestRun tag was activated (make bootstrap) are not attributed",
    "coverage: the estimate leaves out free tiers, storage, logs, data transfer and monitoring",
)


class BillingError(JobGraphError):
    """Cost Explorer refused (no access from this account, the tag key unknown to billing, ...)."""


def cost_explorer(session=None):
    import boto3

    return (session or boto3).client("ce", region_name=CE_REGION)


def _error(exc) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code')}: {error.get('Message')}"


# --- make bootstrap ------------------------------------------------------------------------------------
def activate_tags(ce, keys: tuple[str, ...] = TAG_KEYS) -> list[str]:
    """Make ``keys`` active cost allocation tags (idempotent); lines saying what changed and when it counts.

    BillingError when a key is not known to billing yet (no tagged resource was used yet, or it was created
    less than ~24 h ago) or Cost Explorer refuses (e.g. a member account of an organization).
    """
    from botocore.exceptions import ClientError

    try:
        known = _listed_tags(ce, keys)
    except ClientError as exc:
        raise BillingError(f"ListCostAllocationTags: {_error(exc)}") from None
    lines, missing, inactive = [], [], []
    for key in keys:
        tag = known.get(key)
        if tag is None:
            missing.append(key)
        elif tag["Status"] == "Active":
            since = tag.get("LastUpdatedDate", "an earlier date")
            lines.append(f"{key}: already active (since {since}); costs of resources tagged with it count from then on")
        else:
            inactive.append(key)
    if inactive:
        try:
            response = ce.update_cost_allocation_tags_status(
                CostAllocationTagsStatus=[{"TagKey": key, "Status": "Active"} for key in inactive]
            )
        except ClientError as exc:
            raise BillingError(f"UpdateCostAllocationTagsStatus: {_error(exc)}") from None
        failed = {e["TagKey"]: f"{e.get('Code')}: {e.get('Message')}" for e in response.get("Errors", [])}
        for key in inactive:
            if key in failed:
                raise BillingError(f"{key}: not activated: {failed[key]}")
            lines.append(
                f"{key}: activated now; costs incurred from now on are attributed to it (activation can take up to "
                "24 h to apply, and Cost Explorer shows a day's costs up to 24 h later)"
            )
    if missing:
        raise BillingError(
            f"{', '.join(missing)}: not known to billing yet; a tag key appears up to 24 h after a resource carrying "
            "it was first used: deploy a stack (make deploy), run something, then run make bootstrap again"
            + (f" ({'; '.join(lines)})" if lines else "")
        )
    return lines


def _listed_tags(ce, keys: tuple[str, ...]) -> dict[str, dict]:
    tags, kwargs = {}, {}
    for _ in range(MAX_PAGES):
        response = ce.list_cost_allocation_tags(TagKeys=list(keys), Type="UserDefined", **kwargs)
        tags.update({t["TagKey"]: t for t in response.get("CostAllocationTags", [])})
        if not response.get("NextToken"):
            break
        kwargs = {"NextToken": response["NextToken"]}
    return tags


# --- jobgraph cost --billed ------------------------------------------------------------------------------
@dataclass
class Billed:
    tag: str
    start: date  # first UTC day (inclusive)
    end: date  # day after the last (exclusive), as Cost Explorer takes it
    by_service: dict[str, float] = field(default_factory=dict)  # Cost Explorer's service names
    unit: str = "USD"
    estimated: bool = False
    available: bool = True
    note: str = ""

    @property
    def total(self) -> float:
        return sum(self.by_service.values())


def run_window(record: dict) -> tuple[datetime, datetime]:
    """The run's start and end (UTC) from its record: the run's own timestamps, else recorded_at - wall time."""
    window = record.get("window") or {}

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)

    end = parse(window.get("completed_at") or record["recorded_at"])
    start = parse(window["started_at"]) if window.get("started_at") else end - timedelta(seconds=record["wall_seconds"])
    return start, end


def billed_cost(ce, tag: str, start: datetime, end: datetime, now: datetime | None = None) -> Billed:
    """UnblendedCost under ``PerfTestRun=tag`` by service over the UTC days from ``start`` to ``end``."""
    from botocore.exceptions import ClientError

    now = now or datetime.now(UTC)
    first, last = start.date(), end.date()
    billed = Billed(tag, first, min(last, now.date()) + timedelta(days=1))
    request = {
        "TimePeriod": {"Start": first.isoformat(), "End": billed.end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": [METRIC],
        "Filter": {"Tags": {"Key": COST_TAG, "Values": [tag]}},  # EQUALS, case-sensitive: the defaults
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    groups = 0
    for _ in range(MAX_PAGES):
        try:
            response = ce.get_cost_and_usage(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "DataUnavailableException":
                billed.available, billed.note = False, f"not available yet: Cost Explorer has no data for {first} on"
                return billed
            raise BillingError(f"GetCostAndUsage: {_error(exc)}") from None
        for day in response.get("ResultsByTime", []):
            billed.estimated |= bool(day.get("Estimated"))
            for group in day.get("Groups", []):
                groups += 1
                metric = group["Metrics"][METRIC]
                billed.unit = metric.get("Unit", billed.unit)
                service = group["Keys"][0]
                billed.by_service[service] = billed.by_service.get(service, 0.0) + float(metric["Amount"])
        if not response.get("NextPageToken"):
            break
        request["NextPageToken"] = response["NextPageToken"]
    if groups == 0:
        if now - end < DATA_DELAY * 2:
            ready = (end + DATA_DELAY).isoformat(timespec="minutes")
            billed.available = False
            billed.note = f"not available yet: the run ended {end.isoformat(timespec='minutes')}; try after ~{ready}"
        else:
            billed.note = (
                f"nothing billed under {COST_TAG}={tag} on these days: is the tag active (make bootstrap), and did "
                "the stack carry this TestRunId?"
            )
    return billed


def reconcile(estimate_by_service: dict[str, float], billed: Billed) -> list[dict]:
    """One row per service in either: estimated, billed, difference (billed - estimated), in the estimate's names."""
    names = {ce_name: ours for ours, ce_name in CE_SERVICES.items()}
    rows: dict[str, dict] = {}
    for service, usd in estimate_by_service.items():
        rows[service] = {"service": service, "estimated": usd, "billed": 0.0}
    for ce_name, usd in billed.by_service.items():
        service = names.get(ce_name, ce_name)
        row = rows.setdefault(service, {"service": service, "estimated": None, "billed": 0.0})
        row["billed"] += usd
    for row in rows.values():
        row["difference"] = row["billed"] - (row["estimated"] or 0.0)
    return sorted(rows.values(), key=lambda r: (r["estimated"] is None, r["service"]))


def billed_lines(record: dict, billed: Billed) -> list[str]:
    """The comparison as `jobgraph cost --billed` prints it."""
    days = f"{billed.start}..{billed.end - timedelta(days=1)}"
    unit = "" if billed.unit == "USD" else f", amounts in {billed.unit}"
    head = f"  billed (Cost Explorer {METRIC}, {COST_TAG}={billed.tag}, UTC days {days}{unit})"
    if not billed.available:
        return [f"{head}: {billed.note}"]
    lines = [head + (": estimated by AWS, not final" if billed.estimated else ":")]
    if billed.note:
        lines.append(f"    {billed.note}")
    estimate = (record.get("cost") or {}).get("by_service_usd", {})
    lines.append(f"    {'service':<38}{'estimated':>14}{'billed':>14}{'difference':>14}")
    for row in reconcile(estimate, billed):
        estimated = "-" if row["estimated"] is None else f"${row['estimated']:.6f}"
        share = f" ({row['difference'] / row['estimated']:+.0%})" if row["estimated"] else ""
        lines.append(
            f"    {row['service']:<38}{estimated:>14}{'$' + format(row['billed'], '.6f'):>14}"
            f"{format(row['difference'], '+.6f'):>14}{share}"
        )
    total_estimate = sum(estimate.values())
    lines.append(
        f"    {'total':<38}{'$' + format(total_estimate, '.6f'):>14}{'$' + format(billed.total, '.6f'):>14}"
        f"{format(billed.total - total_estimate, '+.6f'):>14}"
    )
    lines.extend(f"    caveat: {caveat}" for caveat in CAVEATS)
    return lines
