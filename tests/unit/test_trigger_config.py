"""Workflow configs (seed 003): strict validation, job-name lookup, what each target receives, approval gates,
IAM grants, and the `jobgraph triggers validate` command (and the old `jobgraph triggers FILE`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from jobgraph.core.errors import ConfigurationError
from jobgraph.core.trigger_event import approved_event, render, source_event
from jobgraph.core.triggers import (
    WorkflowConfig,
    dag_conf,
    dedup_token,
    glue_arguments,
    orchestration_input,
    plan,
    sqs_mwaa_message,
)
from jobgraph.sam.triggers import load_trigger_config, missing_grants, required_grants, template_parameters

ROOT = Path(__file__).resolve().parents[2]
DETAIL = {
    "run_id": "r1",
    "outcome": "COMPLETED",
    "test_run_id": "nightly",
    "scenario": 1,
    "stack": "scenario-1-dev",
    "sequences_total": 20,
    "jobs_total": 120,
    "scenarios": 1000,
    "seed": 42,
    "started_at": "2026-12-01T01:00:00.000Z",
    "completed_at": "2026-12-01T01:15:00.000Z",
    "duration_s": 900.0,
    "results_uri": "s3://bucket/r1/",
    "merged_percentiles_uri": "s3://bucket/r1/merged_percentiles.json",
    "error": None,
}
MERGED = {
    "curfew_breach_probability": 0.31,
    "final_arrival_delay_min": {"p50": 12.0, "p75": 30.0, "p90": 55.0, "p95": 71.5, "p99": 120.0, "mean": 20.0, "max": 300.0},
    "total_departure_delay_min": {"p50": 10.0, "p75": 25.0, "p90": 50.0, "p95": 60.0, "p99": 100.0, "mean": 15.0, "max": 250.0},
}  # fmt: skip
GLUE = {"type": "glue_job", "job_name": "load_images_to_redshift"}


def config(**workflows) -> WorkflowConfig:
    return WorkflowConfig.model_validate({"workflows": workflows})


def test_the_seeds_example_configuration_validates():
    # seed 003's "Example Configuration", as it is
    seed = {
        "workflows": {
            "transform_images": {
                "description": "Image transformation pipeline",
                "on_success": [{**GLUE, "description": "Load transformed images to Redshift"}],
                "on_approval": [{**GLUE, "description": "Load approved images", "arguments": {"--approval_required": "true"}}],
                "approval": {},
            },
            "load_promos": {
                "description": "Promotions load pipeline",
                "on_success": [
                    {"type": "eventbridge", "event_bus": "default", "detail_type": "PromoLoadComplete", "source": "dwh.load_promos"}
                ],
            },
        }
    }  # fmt: skip
    with pytest.raises(ValidationError, match="on_success: never fires"):
        WorkflowConfig.model_validate(seed)  # approval for every run and an on_success: contradictory
    seed["workflows"]["transform_images"]["approval"] = {"when": [{"field": "duration_s", "above": 3600}]}
    loaded = WorkflowConfig.model_validate(seed)
    assert [t.type for t in loaded.workflows["load_promos"].on_success] == ["eventbridge"]


def test_the_example_file_validates_and_names_every_grant():
    loaded = load_trigger_config(ROOT / "docs" / "triggers.example.yaml")
    grants = required_grants(loaded, "eu-west-1", "123456789012")
    assert grants["TriggerGlueJobArns"] == ["arn:aws:glue:eu-west-1:123456789012:job/load-delay-percentiles"]
    assert grants["TriggerQueueArns"] == [
        "arn:aws:sqs:eu-west-1:123456789012:mwaa-triggers",  # the config's default sqs_mwaa queue
        "arn:aws:sqs:eu-west-1:123456789012:run-results.fifo",
    ]
    assert grants["TriggerEventBusArns"] == ["arn:aws:events:eu-west-1:123456789012:event-bus/analytics"]
    assert grants["TriggerMwaaRoleArns"] == ["arn:aws:airflow:eu-west-1:123456789012:role/analytics/User"]
    assert grants["TriggerStateMachineArns"] == ["arn:aws:states:eu-west-1:123456789012:stateMachine:after-run"]


@pytest.mark.parametrize(
    "workflow, says",
    [
        ({"on_success": [{**GLUE, "arguments": {"run": "x"}}]}, "--name"),
        ({"on_success": [{**GLUE, "arguments": {"--triggered_by_job": "x"}}]}, "added automatically"),
        ({"on_success": [{**GLUE, "arguments": {"--p": "${artifacts.nope}"}}]}, "artifacts.nope"),
        ({"on_success": [{"type": "mwaa_dag", "environment_name": "e", "dag_id": "d",
                          "parameter_mapping": {"x": "created_by"}}]}, "created_by"),
        ({"on_success": [{"type": "sqs", "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q.fifo"}]},
         "message_group_id"),
        ({"on_success": [{"type": "eventbridge", "source": "jobgraph"}]}, "reserved"),
        ({"on_success": [{"type": "lambda"}]}, "type"),
        ({"on_success": [{**GLUE, "colour": "red"}]}, "colour"),
        ({"on_success": [GLUE, GLUE]}, "appear twice"),
        ({"on_approval": [GLUE]}, "needs approval"),
        ({"approval": {"when": [{"field": "duration_s", "above": 1}]}}, "needs on_approval"),
        ({"approval": {"when": [{"field": "metrics.colour", "above": 1}]}, "on_approval": [GLUE]}, "not a number"),
        ({"approval": {"when": [{"field": "duration_s"}]}, "on_approval": [GLUE]}, "exactly one"),
        ({"on_success": [{"type": "sqs_mwaa", "dag_id": "d"}]}, "sqs_mwaa_queue_url"),
    ],
)  # fmt: skip
def test_bad_workflows_are_rejected_naming_the_problem(workflow, says):
    with pytest.raises(ValidationError, match=says):
        config(job=workflow)


def test_a_version_1_config_gets_a_migration_note():
    with pytest.raises(ValidationError, match=r"version-1 trigger config.*Migrating"):
        WorkflowConfig.model_validate({"version": 1, "triggers": []})


def test_an_exact_job_name_wins_then_the_first_matching_pattern():
    loaded = config(**{"nightly-*": {"on_success": [GLUE]}, "*": {}, "nightly-7": {}})
    assert loaded.workflow_for("nightly-7")[0] == "nightly-7"
    assert loaded.workflow_for("nightly-8")[0] == "nightly-*"
    assert loaded.workflow_for("adhoc")[0] == "*"
    assert config(nightly={}).workflow_for("nightly-1") is None


def test_the_source_event_has_the_seeds_shape_and_the_merged_figures():
    event = source_event(DETAIL, MERGED)
    assert event["job_name"] == "nightly" and event["job_run_id"] == "r1" and event["status"] == "SUCCESS"
    assert event["start_date"] == DETAIL["started_at"] and event["end_date"] == DETAIL["completed_at"]
    assert event["artifacts"]["output_path"] == "s3://bucket/r1/"
    assert event["metrics"]["curfew_breach_probability"] == 0.31 and event["metrics"]["jobs_total"] == 120
    failed = source_event({**DETAIL, "outcome": "FAILED", "error": "job x dead-lettered"})
    assert failed["status"] == "FAILED" and failed["event_type"] == "run_failed"
    assert "curfew_breach_probability" not in failed["metrics"]


def test_placeholders_fill_from_dot_paths_keeping_a_lone_placeholders_type():
    event = source_event(DETAIL, MERGED)
    assert render({"a": "${metrics.scenarios}", "b": "run ${run_id} p95=${metrics.final_arrival_delay_min.p95}"}, event) == {
        "a": 1000,
        "b": "run r1 p95=71.5",
    }  # fmt: skip


def test_each_target_receives_what_the_seed_says():
    event = source_event(DETAIL, MERGED)
    token = dedup_token("r1", "nightly", "success", "t")
    glue = config(j={"on_success": [{**GLUE, "arguments": {"--source_path": "${artifacts.output_path}"}}]})
    arguments = glue_arguments(glue.workflows["j"].on_success[0], event, token)
    assert arguments == {
        "--source_path": "s3://bucket/r1/",
        "--triggered_by_job": "nightly",
        "--triggered_by_run_id": "r1",
        "--source_artifacts": json.dumps(event["artifacts"], separators=(",", ":")),
        "--jobgraph_trigger_id": token,
    }
    assert orchestration_input(event) == {
        "triggered_by_job": "nightly",
        "triggered_by_run_id": "r1",
        "source_event": event,
    }
    dag = config(j={"on_success": [{"type": "mwaa_dag", "environment_name": "e", "dag_id": "d", "conf": {"custom_param": "value"},
                                    "parameter_mapping": {"start_date": "start_date", "output_path": "artifacts.output_path",
                                                          "record_count": "metrics.jobs_total"}}]})  # fmt: skip
    conf = dag_conf(dag.workflows["j"].on_success[0], event)
    assert conf == {
        "triggered_by_job": "nightly",
        "triggered_by_run_id": "r1",
        "start_date": DETAIL["started_at"],
        "output_path": "s3://bucket/r1/",
        "record_count": 120,
        "source_artifacts": event["artifacts"],
        "source_metrics": event["metrics"],
        "custom_param": "value",
    }
    sqs = WorkflowConfig.model_validate(
        {"sqs_mwaa_queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/mwaa",
         "workflows": {"j": {"on_success": [{"type": "sqs_mwaa", "dag_id": "filter_images",
                                             "parameter_mapping": {"end_date": "end_date"}}]}}}
    )  # fmt: skip
    trigger = sqs.workflows["j"].on_success[0]
    message = sqs_mwaa_message(trigger, event, token)
    assert message["dag_id"] == "filter_images" and message["dag_run_id"] == token
    assert message["conf"]["triggered_by_job"] == "nightly" and message["conf"]["end_date"] == DETAIL["completed_at"]
    assert sqs.queue_url_of(trigger).endswith("/mwaa")


def test_tokens_are_stable_distinct_and_fit_every_target():
    a = dedup_token("r" * 64, "nightly", "success", "glue_job-1")
    assert a == dedup_token("r" * 64, "nightly", "success", "glue_job-1")
    assert a != dedup_token("r" * 64, "nightly", "approval", "glue_job-1")
    assert len(a) <= 64 and set(a) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def test_approval_gates_route_a_completed_run_to_pending_approval():
    gated = config(
        nightly={
            "on_success": [GLUE],
            "on_approval": [{**GLUE, "name": "approved"}],
            "on_failure": [{"type": "sns", "topic_arn": "arn:aws:sns:eu-west-1:123456789012:oncall"}],
            "approval": {"when": [{"field": "metrics.curfew_breach_probability", "above": 0.2},
                                  {"field": "metrics.final_arrival_delay_min.p95", "above": 90}]},
        }
    )  # fmt: skip
    risky = plan(gated, source_event(DETAIL, MERGED))
    assert risky.triggers == [] and risky.approval_reasons == ["metrics.curfew_breach_probability = 0.31 > 0.2"]
    calm = plan(gated, source_event(DETAIL, {**MERGED, "curfew_breach_probability": 0.01}))
    assert [t.type for t in calm.triggers] == ["glue_job"] and calm.kind == "success"
    # no merged percentiles (unreadable): a gate cannot pass on a missing figure
    assert plan(gated, source_event(DETAIL)).approval_reasons == [
        "metrics.curfew_breach_probability is missing",
        "metrics.final_arrival_delay_min.p95 is missing",
    ]
    failed = plan(gated, source_event({**DETAIL, "outcome": "FAILED"}))
    assert failed.kind == "failure" and [t.type for t in failed.triggers] == ["sns"]
    approved = plan(gated, approved_event(source_event(DETAIL, MERGED), {"decided_by": "ops", "decision": "APPROVED"}))
    assert approved.kind == "approval" and [t.trigger_id for t in approved.triggers] == ["approved"]
    assert plan(gated, {**source_event(DETAIL), "job_name": "other"}).workflow is None


def test_grants_cover_a_config_through_iam_patterns():
    loaded = config(
        j={
            "on_success": [
                GLUE,
                {"type": "step_function", "arn": "arn:aws:states:eu-west-1:123456789012:stateMachine:m"},
            ]
        }
    )
    exact = {k: v.split(",") if v else [] for k, v in template_parameters(loaded, "eu-west-1", "123456789012").items()}
    assert missing_grants(loaded, exact, "eu-west-1", "123456789012") == {}
    pattern = {"TriggerGlueJobArns": ["arn:aws:glue:eu-west-1:123456789012:job/load_*"]}
    assert missing_grants(loaded, pattern, "eu-west-1", "123456789012") == {
        "TriggerStateMachineArns": ["arn:aws:states:eu-west-1:123456789012:stateMachine:m"]
    }
    # IAM patterns know * and ? only: brackets and dots are literal
    assert missing_grants(loaded, {"TriggerGlueJobArns": ["arn:aws:glue:eu-west-1:123456789012:job/load.images*"]},
                          "eu-west-1", "123456789012")["TriggerGlueJobArns"]  # fmt: skip


def test_a_bad_file_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("workflows:\n  job:\n    on_success:\n      - {type: sns, topic_arn: nope}\n")
    with pytest.raises(ConfigurationError, match=r"bad.yaml: workflows.job.on_success\[0\].sns.topic_arn"):
        load_trigger_config(path)


def test_no_size_cap_but_s3s():
    many = config(
        **{f"job-{i}": {"on_success": [{**GLUE, "arguments": {"--x" + "y" * 50: "${run_id}"}}]} for i in range(200)}
    )
    assert len(json.dumps(many.model_dump(mode="json"))) > 30_000  # far past Lambda's 4 KB environment


def test_validate_lists_workflows_and_prints_the_deploy_line(capsys):
    from jobgraph.cli.main import main

    assert main(["triggers", "validate", str(ROOT / "docs" / "triggers.example.yaml")]) == 0
    out = capsys.readouterr().out
    assert "nightly: Nightly delay run" in out and "approval when metrics.curfew_breach_probability > 0.2" in out
    assert "  on_success   load-warehouse -> glue_job" in out
    assert "TriggerGlueJobArns=arn:aws:glue:eu-west-1:123456789012:job/load-delay-percentiles" in out.splitlines()[-1]


def test_the_old_command_still_validates_and_says_what_changed(tmp_path, capsys):
    from jobgraph.cli.main import main

    assert main(["triggers", str(ROOT / "docs" / "triggers.example.yaml")]) == 0
    captured = capsys.readouterr()
    assert "is now `jobgraph triggers validate CONFIG`" in captured.err and "push" in captured.err
    bad = tmp_path / "old.yaml"
    bad.write_text("version: 1\ntriggers: []\n")
    assert main(["triggers", "validate", str(bad)]) == 1
    assert "version-1 trigger config" in capsys.readouterr().err
