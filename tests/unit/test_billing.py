"""Billed cost from Cost Explorer (issue 15.7), against botocore Stubbers: every request is checked against the
ce service model and answered with responses of the real API's shapes (GetCostAndUsage's ResultsByTime with
Groups and an empty Total when grouped, NextPageToken pages, Estimated days; ListCostAllocationTags and
UpdateCostAllocationTagsStatus with their Errors list). Cost Explorer has no moto backend worth trusting here."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from jobgraph.bench import billing
from jobgraph.bench.billing import BillingError, activate_tags, billed_cost, billed_lines, reconcile, run_window

START = datetime(2026, 11, 30, 23, 50, tzinfo=UTC)
END = datetime(2026, 12, 1, 0, 20, tzinfo=UTC)  # a run across midnight UTC: two days
LATER = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
REQUEST = {
    "TimePeriod": {"Start": "2026-11-30", "End": "2026-12-02"},
    "Granularity": "DAILY",
    "Metrics": ["UnblendedCost"],
    "Filter": {"Tags": {"Key": "PerfTestRun", "Values": ["nightly"]}},
    "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
}


@pytest.fixture
def ce():
    client = boto3.client("ce", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        client.stubber = stubber
        yield client
        stubber.assert_no_pending_responses()


def day(start: str, end: str, groups: dict[str, str], estimated: bool) -> dict:
    return {
        "TimePeriod": {"Start": start, "End": end},
        "Total": {},  # empty when results are grouped
        "Groups": [
            {"Keys": [k], "Metrics": {"UnblendedCost": {"Amount": v, "Unit": "USD"}}} for k, v in groups.items()
        ],
        "Estimated": estimated,
    }


def page(days: list[dict], token: str | None = None) -> dict:
    response = {
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
        "ResultsByTime": days,
        "DimensionValueAttributes": [],
    }
    return {**response, "NextPageToken": token} if token else response


def test_billed_cost_sums_each_service_over_the_days_and_follows_every_page(ce):
    ce.stubber.add_response(
        "get_cost_and_usage",
        page([day("2026-11-30", "2026-12-01", {"AWS Lambda": "0.0000412", "Amazon Simple Queue Service": "0.00002"}, False)],
             token="page-2"),
        REQUEST,
    )  # fmt: skip
    ce.stubber.add_response(
        "get_cost_and_usage",
        page([day("2026-12-01", "2026-12-02", {"AWS Lambda": "0.0001422", "AmazonCloudWatch": "0.0003"}, True)]),
        {**REQUEST, "NextPageToken": "page-2"},
    )
    billed = billed_cost(ce, "nightly", START, END, now=LATER)
    assert billed.available and billed.estimated
    assert billed.by_service == pytest.approx(
        {"AWS Lambda": 0.0001834, "Amazon Simple Queue Service": 0.00002, "AmazonCloudWatch": 0.0003}
    )
    assert billed.total == pytest.approx(0.0005034)


def test_reconcile_gives_the_difference_per_service_in_the_estimates_names():
    billed = billing.Billed("nightly", START.date(), END.date(), {"AWS Lambda": 0.0002, "AmazonCloudWatch": 0.0003})
    rows = {r["service"]: r for r in reconcile({"Lambda": 0.00015, "SQS": 0.0001}, billed)}
    assert rows["Lambda"]["difference"] == pytest.approx(0.00005)
    assert rows["SQS"]["billed"] == 0.0 and rows["SQS"]["difference"] == pytest.approx(-0.0001)
    assert rows["AmazonCloudWatch"]["estimated"] is None  # billed, never estimated
    lines = billed_lines({"cost": {"by_service_usd": {"Lambda": 0.00015, "SQS": 0.0001}}}, billed)
    assert lines[0] == "  billed (Cost Explorer UnblendedCost, PerfTestRun=nightly, UTC days 2026-11-30..2026-11-30):"
    (lambda_line,) = [line for line in lines if line.strip().startswith("Lambda")]
    assert lambda_line.split() == ["Lambda", "$0.000150", "$0.000200", "+0.000050", "(+33%)"]
    (total,) = [line for line in lines if line.strip().startswith("total")]
    assert total.split() == ["total", "$0.000250", "$0.000500", "+0.000250"]
    assert sum("caveat:" in line for line in lines) == 4


def test_a_run_younger_than_a_day_is_not_available_yet_and_an_old_empty_one_says_why(ce):
    empty = page([day("2026-11-30", "2026-12-01", {}, True), day("2026-12-01", "2026-12-02", {}, True)])
    ce.stubber.add_response("get_cost_and_usage", empty, REQUEST)
    soon = billed_cost(ce, "nightly", START, END, now=datetime(2026, 12, 1, 2, 0, tzinfo=UTC))
    assert not soon.available and "try after ~2026-12-02T00:20" in soon.note
    assert billed_lines({}, soon) == [
        "  billed (Cost Explorer UnblendedCost, PerfTestRun=nightly, UTC days 2026-11-30..2026-12-01): not available "
        "yet: the run ended 2026-12-01T00:20+00:00; try after ~2026-12-02T00:20+00:00"
    ]
    ce.stubber.add_response("get_cost_and_usage", empty, REQUEST)
    old = billed_cost(ce, "nightly", START, END, now=datetime(2026, 12, 20, tzinfo=UTC))
    assert old.available and old.total == 0 and "is the tag active (make bootstrap)" in old.note


def test_data_unavailable_is_not_an_error(ce):
    ce.stubber.add_client_error("get_cost_and_usage", "DataUnavailableException", "Data is not available.", 400)
    billed = billed_cost(ce, "nightly", START, END, now=LATER)
    assert not billed.available and "not available yet" in billed.note


def test_a_refusal_is_one_clear_line(ce):
    ce.stubber.add_client_error("get_cost_and_usage", "AccessDeniedException", "User is not authorized", 400)
    with pytest.raises(BillingError, match=r"^GetCostAndUsage: AccessDeniedException: User is not authorized$"):
        billed_cost(ce, "nightly", START, END, now=LATER)


def test_the_window_ends_today_at_the_latest(ce):
    ce.stubber.add_response(
        "get_cost_and_usage", page([]), {**REQUEST, "TimePeriod": {"Start": "2026-11-30", "End": "2026-12-01"}}
    )
    billed_cost(ce, "nightly", START, END, now=datetime(2026, 11, 30, 23, 59, tzinfo=UTC))


def tags(*entries: tuple[str, str], token: str | None = None) -> dict:
    response = {
        "CostAllocationTags": [
            {"TagKey": key, "Type": "UserDefined", "Status": status, "LastUpdatedDate": "2026-11-02T10:00:00Z",
             "LastUsedDate": "2026-12-01T00:00:00Z"}
            for key, status in entries
        ]
    }  # fmt: skip
    return {**response, "NextToken": token} if token else response


LIST = {"TagKeys": ["PerfTestRun", "Purpose", "Environment", "Project"], "Type": "UserDefined"}


def test_activation_activates_what_is_inactive_and_says_when_it_counts(ce):
    ce.stubber.add_response(
        "list_cost_allocation_tags", tags(("PerfTestRun", "Inactive"), ("Purpose", "Active"), token="t2"), LIST
    )
    ce.stubber.add_response(
        "list_cost_allocation_tags",
        tags(("Environment", "Inactive"), ("Project", "Active")),
        {**LIST, "NextToken": "t2"},
    )
    ce.stubber.add_response(
        "update_cost_allocation_tags_status",
        {"Errors": []},
        {"CostAllocationTagsStatus": [{"TagKey": "PerfTestRun", "Status": "Active"}, {"TagKey": "Environment", "Status": "Active"}]},
    )  # fmt: skip
    lines = activate_tags(ce)
    assert lines[0] == (
        "Purpose: already active (since 2026-11-02T10:00:00Z); costs of resources tagged with it count from then on"
    )
    assert [line.split(":")[0] for line in lines] == ["Purpose", "Project", "PerfTestRun", "Environment"]
    assert "activated now; costs incurred from now on" in lines[2] and "up to 24 h" in lines[2]


def test_activation_twice_changes_nothing(ce):
    ce.stubber.add_response("list_cost_allocation_tags", tags(*[(k, "Active") for k in LIST["TagKeys"]]), LIST)
    assert all("already active" in line for line in activate_tags(ce))  # and no UpdateCostAllocationTagsStatus call


def test_a_tag_key_billing_has_not_seen_yet_is_explained(ce):
    ce.stubber.add_response("list_cost_allocation_tags", tags(("Purpose", "Active")), LIST)
    with pytest.raises(BillingError, match=r"PerfTestRun, Environment, Project: not known to billing yet.*make deploy"):
        activate_tags(ce)


def test_a_refused_activation_names_the_key(ce):
    ce.stubber.add_response(
        "list_cost_allocation_tags", tags(("PerfTestRun", "Inactive")), {**LIST, "TagKeys": ["PerfTestRun"]}
    )
    ce.stubber.add_response(
        "update_cost_allocation_tags_status",
        {"Errors": [{"TagKey": "PerfTestRun", "Code": "TagKeysNotFoundException", "Message": "tag key not found"}]},
        {"CostAllocationTagsStatus": [{"TagKey": "PerfTestRun", "Status": "Active"}]},
    )  # fmt: skip
    with pytest.raises(BillingError, match="PerfTestRun: not activated: TagKeysNotFoundException"):
        activate_tags(ce, ("PerfTestRun",))


def test_the_window_comes_from_the_runs_own_timestamps_else_the_wall_time():
    record = {"recorded_at": "2026-12-01T00:21:00+00:00", "wall_seconds": 1800.0,
              "window": {"started_at": "2026-11-30T23:50:00.000Z", "completed_at": "2026-12-01T00:20:00.000Z"}}  # fmt: skip
    assert run_window(record) == (START, END)
    assert run_window({**record, "window": {}})[0] == datetime(2026, 11, 30, 23, 51, tzinfo=UTC)


def write_record(folder, mode: str) -> None:
    folder.mkdir()
    record = {
        "schema": "jobgraph.run/1", "run_id": folder.name, "kind": "graph", "scenario": 1, "scenario_name": "lambda",
        "mode": mode, "route_jobs": 1000, "recorded_at": "2026-12-01T00:21:00+00:00", "wall_seconds": 1800.0,
        "test_run_id": "nightly", "window": {"started_at": "2026-11-30T23:50:00Z", "completed_at": "2026-12-01T00:20:00Z"},
        "usage": {"lambda": {"ProcessorFunction": {"requests": 1000, "duration_ms": 120000, "memory_mb": 512}},
                  "sqs": {"requests_64kb": 3000}},
        "cost": {"price_table": {"version": "2026-11-01", "region": "eu-west-1"}},
    }  # fmt: skip
    (folder / "run.json").write_text(json.dumps(record))


def test_cost_billed_prints_the_comparison_for_an_aws_run_and_a_note_for_a_local_one(tmp_path, capsys, monkeypatch, ce):
    from jobgraph.cli.main import main

    write_record(tmp_path / "on-aws", "AWS")
    write_record(tmp_path / "local-run", "local")
    ce.stubber.add_response(
        "get_cost_and_usage",
        page(
            [day("2026-11-30", "2026-12-01", {"AWS Lambda": "0.0011", "Amazon Simple Queue Service": "0.0012"}, False)]
        ),
        REQUEST,
    )
    monkeypatch.setattr(billing, "cost_explorer", lambda session=None: ce)
    assert main(["cost", str(tmp_path / "on-aws"), str(tmp_path / "local-run"), "--billed"]) == 0
    out = capsys.readouterr().out
    assert "billed (Cost Explorer UnblendedCost, PerfTestRun=nightly, UTC days 2026-11-30..2026-12-01):" in out
    billed_section = out.split("billed (Cost Explorer", 1)[1].split("local-run:", 1)[0].splitlines()
    (sqs,) = [line for line in billed_section if line.strip().startswith("SQS ")]
    # 3000 FIFO requests priced at $0.50 per million (bench/prices.py), against what the stub says was billed
    assert sqs.split() == ["SQS", "$0.001500", "$0.001200", "-0.000300", "(-20%)"]
    assert "billed: nothing - run local-run ran on the local cloud, not on AWS" in out


def test_cost_activate_tags_is_what_make_bootstrap_runs(monkeypatch, capsys, ce):
    from jobgraph.cli.main import main
    from tests.lambda_support import ROOT

    assert "\t$(BIN)/jobgraph cost --activate-tags" in (ROOT / "Makefile").read_text().split("\nbootstrap:", 1)[1]
    ce.stubber.add_response("list_cost_allocation_tags", tags(*[(k, "Active") for k in LIST["TagKeys"]]), LIST)
    monkeypatch.setattr(billing, "cost_explorer", lambda session=None: ce)
    assert main(["cost", "--activate-tags"]) == 0
    assert capsys.readouterr().out.count("already active") == 4
    assert main(["cost"]) == 2  # nothing to price: a missing argument (docs/cli.md)
