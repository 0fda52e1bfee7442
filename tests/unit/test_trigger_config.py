"""Trigger configs (seed 003): strict validation, payload templates, filters, template parameters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobgraph.core.errors import ConfigurationError
from jobgraph.core.triggers import TriggerConfig, render
from jobgraph.sam.triggers import load_trigger_config, template_parameters

BUS = "arn:aws:events:eu-west-1:123456789012:event-bus/downstream"
RUN = {"run_id": "r1", "outcome": "COMPLETED", "test_run_id": "nightly-7", "scenario": 1, "sequences_total": 20}


def trigger(name="t", outcomes=("COMPLETED",), target=None, **extra) -> dict:
    return {
        "name": name,
        "outcomes": list(outcomes),
        "target": target or {"type": "eventbridge", "event_bus_arn": BUS},
        **extra,
    }


def test_a_full_config_validates_every_target_type():
    config = TriggerConfig.model_validate(
        {
            "triggers": [
                trigger("bus"),
                trigger("queue", target={"type": "sqs", "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q"}),
                trigger("sfn", target={"type": "stepfunctions", "state_machine_arn": "arn:aws:states:eu-west-1:123456789012:stateMachine:m"}),
                trigger("glue", target={"type": "glue", "job_name": "load"}, payload={"--run": "${run_id}"}),
                trigger("sns", target={"type": "sns", "topic_arn": "arn:aws:sns:eu-west-1:123456789012:t"}),
                trigger("dag", outcomes=["FAILED"], target={"type": "mwaa", "environment_name": "env", "dag_id": "d"}),
            ]
        }
    )  # fmt: skip
    assert [t.target.type for t in config.triggers] == ["eventbridge", "sqs", "stepfunctions", "glue", "sns", "mwaa"]


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (trigger(payload={"x": "${nope}"}), "unknown placeholder"),
        (trigger(target={"type": "sqs", "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q.fifo"}), "message_group_id"),
        (trigger(target={"type": "glue", "job_name": "j"}, payload={"run": "x"}), "'--name' keys"),
        (trigger(outcomes=[]), "outcomes"),
        (trigger(outcomes=["DONE"]), "outcomes"),
        (trigger(target={"type": "lambda"}), "target"),
        (trigger(colour="red"), "colour"),
        (trigger(target={"type": "eventbridge", "event_bus_arn": "default"}), "event_bus_arn"),
    ],
)  # fmt: skip
def test_bad_triggers_are_rejected_naming_the_field(bad, says):
    with pytest.raises(ValidationError, match=says):
        TriggerConfig.model_validate({"triggers": [bad]})


def test_duplicate_names_are_rejected():
    with pytest.raises(ValidationError, match="duplicate"):
        TriggerConfig.model_validate({"triggers": [trigger("a"), trigger("a")]})


def test_render_fills_placeholders_and_keeps_types():
    payload = {
        "id": "${run_id}",
        "n": "${sequences_total}",
        "text": "run ${run_id} of ${test_run_id}",
        "k": [1, "${scenario}"],
    }
    assert render(payload, RUN) == {"id": "r1", "n": 20, "text": "run r1 of nightly-7", "k": [1, 1]}


def test_filters_select_by_outcome_scenario_and_test_run_prefix():
    config = TriggerConfig.model_validate(
        {
            "triggers": [
                trigger("any"),
                trigger("failed", outcomes=["FAILED"]),
                trigger("nightly", filter={"test_run_id_prefix": "nightly-"}),
                trigger("adhoc", filter={"test_run_id_prefix": "adhoc-"}),
                trigger("scenario2", filter={"scenario": [2]}),
            ]
        }
    )
    assert [t.name for t in config.for_run(RUN)] == ["any", "nightly"]
    assert [t.name for t in config.for_run({**RUN, "outcome": "FAILED"})] == ["failed"]


def test_yaml_file_to_template_parameters(tmp_path):
    path = tmp_path / "triggers.yaml"
    path.write_text(
        "version: 1\n"
        "triggers:\n"
        "  - name: q\n    outcomes: [COMPLETED]\n"
        "    target: {type: sqs, queue_url: 'https://sqs.us-east-1.amazonaws.com/111122223333/downstream'}\n"
        "  - name: g\n    outcomes: [COMPLETED]\n    target: {type: glue, job_name: load}\n"
        "    payload: {'--run': '${run_id}'}\n"
        "  - name: a\n    outcomes: [FAILED]\n    target: {type: mwaa, environment_name: env1, dag_id: d}\n"
    )
    parameters = template_parameters(load_trigger_config(path), "eu-west-1", "123456789012")
    assert parameters["TriggerQueueArns"] == "arn:aws:sqs:us-east-1:111122223333:downstream"
    assert parameters["TriggerGlueJobArns"] == "arn:aws:glue:eu-west-1:123456789012:job/load"
    assert parameters["TriggerMwaaRoleArns"] == "arn:aws:airflow:eu-west-1:123456789012:role/env1/User"
    assert parameters["TriggerEventBusArns"] == "" and parameters["TriggerTopicArns"] == ""
    assert TriggerConfig.model_validate_json(parameters["TriggerConfig"]).triggers[1].name == "g"


def test_yaml_on_key_pitfall_and_bad_files_are_clear_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("triggers:\n  - name: x\n    on: [COMPLETED]\n    target: {type: sns, topic_arn: nope}\n")
    with pytest.raises(ConfigurationError, match=r"bad.yaml: triggers\[0\]"):
        load_trigger_config(path)


def test_a_config_too_big_for_the_lambda_environment_is_refused():
    many = TriggerConfig.model_validate(
        {"triggers": [trigger(f"t{i}", payload={"x" * 50: "${run_id}"}) for i in range(40)]}
    )
    with pytest.raises(ConfigurationError, match="environment"):
        template_parameters(many, "eu-west-1", "123456789012")


def test_the_triggers_command_lists_triggers_and_prints_parameters_for_sam_and_make(capsys):
    from jobgraph.cli.main import main
    from tests.lambda_support import ROOT

    assert main(["triggers", str(ROOT / "docs" / "triggers.example.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "load-warehouse: on COMPLETED where {'scenario': [1], 'test_run_id_prefix': 'nightly-'} -> glue" in lines
    sam_line, make_line = lines[-3], lines[-1]
    assert "TriggerGlueJobArns=arn:aws:glue:eu-west-1:123456789012:job/load-delay-percentiles" in sam_line
    assert "${run_id}" in sam_line and "$${run_id}" in make_line and make_line.replace("$$", "$") == sam_line


def test_the_triggers_command_names_a_bad_field(tmp_path, capsys):
    from jobgraph.cli.main import main

    bad = tmp_path / "t.yaml"
    bad.write_text(
        "triggers:\n  - {name: x, outcomes: [COMPLETED], target: {type: glue, job_name: j}, payload: {a: b}}\n"
    )
    assert main(["triggers", str(bad)]) == 1
    assert "'--name' keys" in capsys.readouterr().err
