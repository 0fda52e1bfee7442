"""The TriggerFunction's role grants one action per configured target type, on exactly the configured
resources (the Trigger*Arns parameters `jobgraph triggers validate` derives from the config), and nothing without
them; it reads its workflow config from exactly the S3 object and SSM parameter of its stack."""

from __future__ import annotations

import pytest

from jobgraph.sam.template import load_template, transform_tree
from jobgraph.sam.triggers import load_trigger_config, template_parameters
from tests.iam_policy import Permission, bindings_for, is_allowed, tree_role_statements
from tests.lambda_support import ROOT

REGION, ACCOUNT = "eu-west-1", "123456789012"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/jobs"
CONFIGURED = [
    Permission("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/analytics"),
    Permission("glue:StartJobRun", f"arn:aws:glue:{REGION}:{ACCOUNT}:job/load-delay-percentiles"),
    Permission("airflow:InvokeRestApi", f"arn:aws:airflow:{REGION}:{ACCOUNT}:role/analytics/User"),
    Permission("states:StartExecution", f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:after-run"),
    Permission("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:run-results.fifo"),
    Permission("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:mwaa-triggers"),  # sqs_mwaa's default queue
    Permission("sns:Publish", f"arn:aws:sns:{REGION}:{ACCOUNT}:oncall"),
    # a stale claim's earlier Glue run is looked up before anything is started again
    Permission("glue:GetJobRuns", f"arn:aws:glue:{REGION}:{ACCOUNT}:job/load-delay-percentiles"),
]
OTHERS = [
    Permission("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"),
    Permission("glue:StartJobRun", f"arn:aws:glue:{REGION}:{ACCOUNT}:job/other"),
    Permission("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:other"),
    Permission("sns:Publish", f"arn:aws:sns:{REGION}:{ACCOUNT}:other"),
    Permission("dynamodb:PutItem", TABLE, ("RUN#r1",)),
    Permission("dynamodb:DeleteItem", TABLE, ("RUN#r1",)),
    Permission("dynamodb:DeleteItem", TABLE, ("TRIGGER#r1",)),
    Permission("s3:GetObject", "arn:aws:s3:::bucket/r1/delays/j.parquet"),
    Permission("s3:PutObject", "arn:aws:s3:::bucket/config/triggers.json"),
    Permission("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/other"),
]
# the config at run time (S3 first, then SSM), and a completed run's headline figures
READS = [
    Permission("s3:GetObject", "arn:aws:s3:::bucket/config/triggers.json"),
    Permission("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/jobgraph/scenario-1-dev/trigger-config"),
    Permission("s3:GetObject", "arn:aws:s3:::bucket/r1/merged_percentiles.json"),
    Permission("dynamodb:GetItem", TABLE, ("TRIGGER#r1",)),
    Permission("dynamodb:UpdateItem", TABLE, ("APPROVAL#r1",)),
    Permission("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/runs"),  # Run Pending Approval
]


def statements(parameters: dict) -> list:
    """The TriggerFunction's role (templates/shared/triggers.yaml, nested in template.yaml) for these parameters."""
    tree = transform_tree(ROOT / "template.yaml", parameters, REGION)
    bindings = bindings_for("bucket", "jobs", {"TriggerQueue": "trigger", "TriggerDlq": "trigger-dlq"}, REGION, ACCOUNT)
    return tree_role_statements(tree, "TriggerFunction", bindings, parameters)


def test_without_triggers_the_function_can_reach_no_target():
    granted = statements({})
    for permission in CONFIGURED + OTHERS:
        assert not is_allowed(granted, permission), permission
    for permission in [Permission("dynamodb:PutItem", TABLE, ("TRIGGER#r1",)), *READS]:
        assert is_allowed(granted, permission), permission


def test_a_config_bucket_and_parameter_of_your_own_are_the_only_ones_read():
    granted = statements({"TriggerConfigBucket": "my-configs", "TriggerConfigKey": "jobgraph/workflows.json",
                          "TriggerConfigParameterName": "/team/workflows"})  # fmt: skip
    assert is_allowed(granted, Permission("s3:GetObject", "arn:aws:s3:::my-configs/jobgraph/workflows.json"))
    assert is_allowed(
        granted, Permission("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/team/workflows")
    )
    assert not is_allowed(granted, READS[0]) and not is_allowed(granted, READS[1])


def test_the_example_config_grants_exactly_its_targets():
    config = load_trigger_config(ROOT / "docs" / "triggers.example.yaml")
    granted = statements(template_parameters(config, REGION, ACCOUNT))
    for permission in CONFIGURED:
        assert is_allowed(granted, permission), permission
    for permission in OTHERS:
        assert not is_allowed(granted, permission), permission


@pytest.mark.parametrize("kind", ["HasTriggerEventBuses", "HasTriggerMwaaRoles"])
def test_each_target_type_has_its_own_condition(kind):
    template = load_template(ROOT / "templates" / "shared" / "triggers.yaml")
    assert kind in template["Conditions"]
