"""The bill of a run's usage, priced here by hand from AWS's published prices — not by bench/cost.py.

Used by the end-to-end tests to assert a run record's cost exactly: the record's figure must be its own
measured usage times the published prices, service by service.
"""

from __future__ import annotations

import pytest

# eu-west-1, on demand, as published on AWS's pricing pages when the 2026-11-01 table was taken
EU_WEST_1 = {
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
    "sqs_fifo_request": 0.50 / 1e6,
    "dynamodb_wru": 0.7068 / 1e6,
    "dynamodb_rru": 0.1413 / 1e6,
    "s3_put": 0.005 / 1e3,
    "s3_get": 0.0004 / 1e3,
    "sfn_transition": 0.025 / 1e3,
    "fargate_vcpu_h": {"x86_64": 0.04048, "arm64": 0.03238},
    "fargate_gb_h": {"x86_64": 0.004445, "arm64": 0.00356},
}


def bill(usage: dict) -> dict[str, float]:
    """USD per service for ``usage`` (run.json's "usage" section)."""
    p = EU_WEST_1
    out: dict[str, float] = {}
    for fn in usage.get("lambda", {}).values():
        arch = fn.get("architecture", "x86_64")
        gb_s = (fn["duration_ms"] + fn.get("init_ms", 0)) / 1000 * fn["memory_mb"] / 1024
        out["Lambda"] = out.get("Lambda", 0.0) + fn["requests"] * p["lambda_request"] + gb_s * p["lambda_gb_s"][arch]
    if sqs := usage.get("sqs", {}).get("requests_64kb"):
        out["SQS"] = sqs * p["sqs_fifo_request"]
    dynamodb = usage.get("dynamodb", {})
    if dynamodb.get("wru") or dynamodb.get("rru"):
        out["DynamoDB"] = dynamodb.get("wru", 0) * p["dynamodb_wru"] + dynamodb.get("rru", 0) * p["dynamodb_rru"]
    s3 = usage.get("s3", {})
    if s3.get("put") or s3.get("get"):
        out["S3"] = s3.get("put", 0) * p["s3_put"] + s3.get("get", 0) * p["s3_get"]
    if transitions := usage.get("stepfunctions", {}).get("transitions"):
        out["Step Functions"] = transitions * p["sfn_transition"]
    fargate = usage.get("fargate", {})
    if fargate.get("vcpu_hours"):
        arch = fargate.get("architecture", "x86_64")
        out["Fargate"] = (
            fargate["vcpu_hours"] * p["fargate_vcpu_h"][arch] + fargate["gb_hours"] * p["fargate_gb_h"][arch]
        )
    return out


def assert_cost_is_the_priced_usage(record: dict) -> dict[str, float]:
    """The record's cost is exactly its usage at the published eu-west-1 prices; returns the bill by service."""
    assert record["cost"]["price_table"] == {"version": "2026-11-01", "region": "eu-west-1"}
    expected = bill(record["usage"])
    assert record["cost"]["by_service_usd"] == pytest.approx(expected, rel=1e-9)
    assert record["cost"]["usd"] == pytest.approx(sum(expected.values()), rel=1e-9)
    route_jobs = record["route_jobs"]
    assert record["cost"]["per_1000_route_jobs_usd"] == pytest.approx(
        sum(expected.values()) / route_jobs * 1000, rel=1e-9
    )
    return expected
