"""The cost of one run, in USD, from its usage counters and a price table (prices.py).

Usage (``run.json["usage"]``) is what was measured, by service:
- ``lambda``: per function ``{"requests", "duration_ms", "init_ms", "memory_mb", "architecture"}`` —
  billed duration is the sum of invocation durations (each rounded up to 1 ms) plus INIT durations;
- ``sqs``: ``{"requests_64kb"}``; ``dynamodb``: ``{"wru", "rru"}``; ``s3``: ``{"put", "get"}``;
- ``stepfunctions``: ``{"transitions"}``; ``fargate``: ``{"vcpu_hours", "gb_hours", "architecture"}``, and
  ``"by_architecture": {arch: {"vcpu_hours", "gb_hours"}}`` when measured (a run may mix both architectures).
Every line item says how it was computed, so a report can show the formula next to the figure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LineItem:
    service: str
    item: str
    quantity: float
    unit: str
    unit_price: float

    @property
    def usd(self) -> float:
        return self.quantity * self.unit_price


def lambda_gb_seconds(duration_ms: float, memory_mb: int) -> float:
    return duration_ms / 1000 * memory_mb / 1024


def line_items(usage: dict, prices: dict) -> list[LineItem]:
    items = []
    for name, fn in sorted(usage.get("lambda", {}).items()):
        arch = fn.get("architecture", "x86_64")
        rate = prices["lambda_gb_second"][arch]
        items.append(LineItem("Lambda", f"{name} requests", fn["requests"], "requests", prices["lambda_request"]))
        gb_s = lambda_gb_seconds(fn["duration_ms"], fn["memory_mb"])
        items.append(LineItem("Lambda", f"{name} duration ({fn['memory_mb']} MB, {arch})", gb_s, "GB-s", rate))
        if fn.get("init_ms"):
            init = lambda_gb_seconds(fn["init_ms"], fn["memory_mb"])
            items.append(LineItem("Lambda", f"{name} INIT ({fn['memory_mb']} MB, {arch})", init, "GB-s", rate))
    sqs = usage.get("sqs", {})
    if sqs.get("requests_64kb"):
        items.append(
            LineItem("SQS", "FIFO requests", sqs["requests_64kb"], "64 KB requests", prices["sqs_fifo_request"])
        )
    dynamodb = usage.get("dynamodb", {})
    if dynamodb.get("wru"):
        items.append(LineItem("DynamoDB", "writes", dynamodb["wru"], "WRU", prices["dynamodb_write_request_unit"]))
    if dynamodb.get("rru"):
        items.append(LineItem("DynamoDB", "reads", dynamodb["rru"], "RRU", prices["dynamodb_read_request_unit"]))
    s3 = usage.get("s3", {})
    if s3.get("put"):
        items.append(LineItem("S3", "PUT/LIST requests", s3["put"], "requests", prices["s3_put_request"]))
    if s3.get("get"):
        items.append(LineItem("S3", "GET requests", s3["get"], "requests", prices["s3_get_request"]))
    sfn = usage.get("stepfunctions", {})
    if sfn.get("transitions"):
        items.append(
            LineItem(
                "Step Functions",
                "state transitions",
                sfn["transitions"],
                "transitions",
                prices["stepfunctions_transition"],
            )
        )
    fargate = usage.get("fargate", {})
    if fargate.get("vcpu_hours"):
        by_architecture = fargate.get("by_architecture") or {fargate.get("architecture", "x86_64"): fargate}
        for arch, hours in sorted(by_architecture.items()):
            items.append(
                LineItem("Fargate", f"vCPU ({arch})", hours["vcpu_hours"], "vCPU-h", prices["fargate_vcpu_hour"][arch])
            )
            items.append(
                LineItem("Fargate", f"memory ({arch})", hours["gb_hours"], "GB-h", prices["fargate_gb_hour"][arch])
            )
    return items


def run_cost(usage: dict, table: dict, route_jobs: int) -> dict:
    """Total, per service, per 1,000 route jobs (the headline), with every line item and the table's date."""
    items = line_items(usage, table["prices"])
    total = sum(item.usd for item in items)
    by_service: dict[str, float] = {}
    for item in items:
        by_service[item.service] = by_service.get(item.service, 0.0) + item.usd
    return {
        "usd": total,
        "per_1000_route_jobs_usd": total / route_jobs * 1000 if route_jobs else None,
        "by_service_usd": by_service,
        "price_table": {"version": table["version"], "region": table["region"]},
        "items": [
            {
                "service": i.service,
                "item": i.item,
                "quantity": i.quantity,
                "unit": i.unit,
                "unit_price_usd": i.unit_price,
                "usd": i.usd,
            }
            for i in items
        ],
    }
