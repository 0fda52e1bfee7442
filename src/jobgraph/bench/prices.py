"""Versioned AWS price tables (USD, on-demand, no free tier) for the services a job graph run uses.

A table is plain data: ``PRICE_TABLES[version][region]``. The version is the date the prices were taken
from AWS's public pricing pages; reports print it, so a figure can always be traced to its prices. A
user can pass their own table (same shape, JSON) with ``jobgraph cost --prices FILE``.

Not priced (small or outside the run): CloudWatch Logs ingestion and metrics, S3 storage and transfer,
KMS, data transfer. Free tiers are ignored: a performance test compares runs, not a monthly bill.
"""

from __future__ import annotations

from pathlib import Path

from jobgraph.core.bounds import read_json
from jobgraph.core.errors import JobGraphError

DEFAULT_VERSION = "2026-11-01"
DEFAULT_REGION = "eu-west-1"

# Lambda: https://aws.amazon.com/lambda/pricing/ (per GB-second by architecture; requests; INIT is billed
# like invocation time for on-demand functions since 2025-08-01). SQS: https://aws.amazon.com/sqs/pricing/
# (FIFO, per request, each 64 KB chunk of a payload is one request). DynamoDB on-demand (after the
# 2024-11 price cut): https://aws.amazon.com/dynamodb/pricing/on-demand/. S3 Standard requests:
# https://aws.amazon.com/s3/pricing/. Step Functions Standard: https://aws.amazon.com/step-functions/pricing/.
# Fargate Linux: https://aws.amazon.com/fargate/pricing/.
_COMMON = {
    "lambda_gb_second": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
    "lambda_request": 0.20 / 1_000_000,
    "sqs_fifo_request": 0.50 / 1_000_000,
    "s3_put_request": 0.005 / 1_000,
    "s3_get_request": 0.0004 / 1_000,
    "stepfunctions_transition": 0.025 / 1_000,
    "fargate_vcpu_hour": {"x86_64": 0.04048, "arm64": 0.03238},
    "fargate_gb_hour": {"x86_64": 0.004445, "arm64": 0.00356},
}

PRICE_TABLES: dict[str, dict[str, dict]] = {
    "2026-11-01": {
        "us-east-1": {
            **_COMMON,
            "dynamodb_write_request_unit": 0.625 / 1_000_000,
            "dynamodb_read_request_unit": 0.125 / 1_000_000,
        },
        "eu-west-1": {
            **_COMMON,
            "dynamodb_write_request_unit": 0.7068 / 1_000_000,
            "dynamodb_read_request_unit": 0.1413 / 1_000_000,
        },
    }
}


class PriceTableError(JobGraphError):
    """A price table is missing, unreadable or lacks a price the cost model needs."""


REQUIRED = set(PRICE_TABLES[DEFAULT_VERSION][DEFAULT_REGION])


def price_table(region: str = DEFAULT_REGION, version: str = DEFAULT_VERSION, path: Path | None = None) -> dict:
    """``{"version", "region", "prices"}`` from the built-in tables or a JSON file of the same shape."""
    if path is not None:
        try:
            tables = read_json(path)
        except (OSError, ValueError) as exc:
            raise PriceTableError(f"{path}: not a readable JSON price table ({exc})") from None
        version = next(iter(tables), version) if version not in tables else version
    else:
        tables = PRICE_TABLES
    try:
        prices = tables[version][region]
    except (KeyError, TypeError):
        where = path or "the built-in tables"
        raise PriceTableError(f"{where}: no prices for version {version!r}, region {region!r}") from None
    missing = sorted(REQUIRED - set(prices))
    if missing:
        raise PriceTableError(f"{path or 'price table'} {version}/{region} lacks {', '.join(missing)}")
    return {"version": version, "region": region, "prices": prices}
