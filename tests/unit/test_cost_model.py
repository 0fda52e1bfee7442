"""The cost model against hand-computed examples from AWS's published price formulas."""

from __future__ import annotations

import json

import pytest

from jobgraph.bench.cost import run_cost
from jobgraph.bench.prices import PriceTableError, price_table

TABLE = price_table("eu-west-1", "2026-11-01")


def usd(usage: dict, route_jobs: int = 1000) -> float:
    return run_cost(usage, TABLE, route_jobs)["usd"]


def test_lambda_pricing_page_example_x86_and_arm64():
    # Lambda's pricing page: 3 million requests of 1 s at 512 MB = 1.5M GB-s; no free tier here
    x86 = {"requests": 3_000_000, "duration_ms": 3_000_000 * 1000, "memory_mb": 512, "architecture": "x86_64"}
    assert usd({"lambda": {"Fn": x86}}) == pytest.approx(1_500_000 * 0.0000166667 + 0.60)  # $25.60
    arm = {**x86, "architecture": "arm64"}
    assert usd({"lambda": {"Fn": arm}}) == pytest.approx(1_500_000 * 0.0000133334 + 0.60)  # $20.60


def test_lambda_init_is_billed_like_duration():
    # 10 cold starts of 800 ms INIT at 1024 MB: 8 GB-s on top of the invocations
    base = {"requests": 10, "duration_ms": 10 * 100, "memory_mb": 1024, "architecture": "x86_64"}
    with_init = usd({"lambda": {"Fn": {**base, "init_ms": 8000}}})
    assert with_init - usd({"lambda": {"Fn": base}}) == pytest.approx(8 * 0.0000166667)


def test_sqs_dynamodb_s3_stepfunctions_fargate():
    assert usd({"sqs": {"requests_64kb": 4_000_000}}) == pytest.approx(2.00)  # FIFO $0.50 per million
    assert usd({"dynamodb": {"wru": 1_000_000, "rru": 1_000_000}}) == pytest.approx(0.7068 + 0.1413)
    assert usd({"s3": {"put": 1000, "get": 1000}}) == pytest.approx(0.005 + 0.0004)
    assert usd({"stepfunctions": {"transitions": 10_000}}) == pytest.approx(0.25)  # $0.025 per 1,000
    # one task of 1 vCPU / 2 GB for an hour on x86_64: 0.04048 + 2 x 0.004445
    fargate = {"vcpu_hours": 1.0, "gb_hours": 2.0, "architecture": "x86_64"}
    assert usd({"fargate": fargate}) == pytest.approx(0.04937)


def test_headline_per_1000_route_jobs_and_split_by_service():
    cost = run_cost({"sqs": {"requests_64kb": 2000}, "s3": {"put": 1000}}, TABLE, route_jobs=500)
    assert cost["usd"] == pytest.approx(0.001 + 0.005)
    assert cost["per_1000_route_jobs_usd"] == pytest.approx(0.012)
    assert cost["by_service_usd"] == pytest.approx({"SQS": 0.001, "S3": 0.005})
    assert cost["price_table"] == {"version": "2026-11-01", "region": "eu-west-1"}


def test_us_east_1_dynamodb_prices_differ_from_eu_west_1():
    table = price_table("us-east-1")
    assert run_cost({"dynamodb": {"wru": 1_000_000}}, table, 1)["usd"] == pytest.approx(0.625)


def test_a_price_table_file_of_your_own_and_its_errors(tmp_path):
    own = {"2027-01-01": {"eu-west-1": {**TABLE["prices"], "sqs_fifo_request": 1.0 / 1_000_000}}}
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(own))
    table = price_table("eu-west-1", path=path)
    assert table["version"] == "2027-01-01"
    assert run_cost({"sqs": {"requests_64kb": 1_000_000}}, table, 1)["usd"] == pytest.approx(1.0)
    with pytest.raises(PriceTableError, match=r"no prices for version .* region 'mars-1'"):
        price_table("mars-1", path=path)
    del own["2027-01-01"]["eu-west-1"]["s3_get_request"]
    path.write_text(json.dumps(own))
    with pytest.raises(PriceTableError, match="lacks s3_get_request"):
        price_table("eu-west-1", path=path)
    path.write_text("{not json")
    with pytest.raises(PriceTableError, match="not a readable JSON price table"):
        price_table("eu-west-1", path=path)


def test_cost_of_a_folder_without_a_record_is_a_clear_error(tmp_path, capsys):
    from jobgraph.cli.main import main

    assert main(["cost", str(tmp_path)]) == 2
    assert f"error: {tmp_path}/run.json: no run record" in capsys.readouterr().err
