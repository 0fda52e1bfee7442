"""template.yaml (scenario 1): offline SAM transform, parameters, deletion policies, IAM, queues, alarms and
layers — no AWS, no Docker. What every scenario's template must hold (lint, tags, IAM hygiene, TLS, encryption)
is checked once over the three in test_templates.py.

template.yaml nests the shared pieces (templates/shared/*.yaml: status API, triggers, dashboard); the checks
that concern every resource of the deployed stack run over the whole tree (``Stack.walk``).
"""

from __future__ import annotations

import fnmatch

import pytest
from cfnlint.api import ManualArgs, lint, lint_file
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from jobgraph.sam.template import ARTIFACT_BUCKET, load_template, transform_template, transform_tree
from tests.cfn_eval import Stack
from tests.iam_policy import (
    Bindings,
    Permission,
    bindings_for,
    is_allowed,
    tree_role_statements,
)
from tests.lambda_support import ROOT

TEMPLATE = ROOT / "template.yaml"
REGION = "eu-west-1"
CUSTOM = {
    "TestRunId": "memory-1024mb",
    "Stage": "prod",
    "ProjectPrefix": "jobgraph-perf",
    "ProcessorTimeout": "120",
    "ProcessorMemorySize": "1024",
    "Architecture": "arm64",
    "AlarmEmail": "ops@example.com",
    "ResultsRetentionDays": "7",
    "SchedulerReservedConcurrency": "50",
    "StartRunReservedConcurrency": "2",
}
FUNCTIONS = ("ProcessorFunction", "SchedulerFunction", "StartRunFunction")


@pytest.fixture(scope="module")
def sam_template() -> dict:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def transformed(sam_template) -> dict:
    return transform_template(sam_template, {}, REGION)[0]


@pytest.fixture(scope="module")
def tree():
    return transform_tree(TEMPLATE, {}, REGION)


@pytest.fixture(scope="module", params=["default", "custom"])
def stack(request) -> Stack:
    """The transformed template (and its nested ones) evaluated for the default parameters and a non-default set."""
    parameters = {} if request.param == "default" else CUSTOM
    return Stack.from_tree(transform_tree(TEMPLATE, parameters, REGION), parameters)


# ------------------------------------------------------------------------------------------- lint
def test_every_stateful_resource_says_what_deletion_does_to_it(tree):
    """cfn-lint's informational I3011 knows which types are stateful; the policies are the reviewed ones."""
    for _trail, node in tree.walk():
        matches = lint_file(node.path, config=ManualArgs(regions=[REGION], include_checks=["I"]))
        assert [f"{m.message} ({node.path.name} line {m.linenumber})" for m in matches if m.rule.id == "I3011"] == []
    policies = {
        logical_id: (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy"))
        for _trail, node in tree.walk()
        for logical_id, resource in node.template["Resources"].items()
        if "DeletionPolicy" in resource or "UpdateReplacePolicy" in resource
    }
    # Fixed physical names: anything retained on deletion would block the next deploy of the stack.
    # Results and run records are kept over a replacement (which their fixed names rule out anyway).
    assert policies == {
        **{q: ("Delete", "Delete") for q in ("IncomingDlq", "IncomingQueue", "OutgoingDlq", "OutgoingQueue")},
        **{g: ("Delete", "Delete") for g in ("ProcessorLogGroup", "SchedulerLogGroup", "StartRunLogGroup")},
        **{q: ("Delete", "Delete") for q in ("TriggerDlq", "TriggerQueue")},
        **{g: ("Delete", "Delete") for g in ("StatusApiAccessLogGroup", "ApiLogGroup", "TriggerLogGroup")},
        "ResultsBucket": ("Delete", "Retain"),
        "JobsTable": ("Delete", "Retain"),
        "AlarmTopicKey": ("Delete", "Delete"),
    }


def test_each_function_has_its_own_log_group_with_bounded_retention(stack):
    for function in FUNCTIONS:
        log_group = function.removesuffix("Function") + "LogGroup"
        properties = stack.properties(log_group)
        assert properties["LogGroupName"] == f"/aws/lambda/<{function}>"
        assert properties["RetentionInDays"] == 14


def test_cfn_lint_gate_does_catch_errors():
    """The check above is only worth something if the linter really validates this template's resources."""
    broken = TEMPLATE.read_text().replace("      FifoQueue: true\n", "      FifoQueue: true\n      Fifo: yes\n", 1)
    matches = lint(broken, regions=[REGION])
    assert any(m.rule.id == "E3002" and "Fifo" in m.message for m in matches)


# -------------------------------------------------------------------------------------- transform
def test_transform_rewrites_code_locations(sam_template, tree):
    transformed, locations = transform_template(sam_template, {}, REGION)
    assert locations == {
        "CoreLayer": "src",
        "ScientificLayer": "layers/scientific",
        "ProcessorFunction": "functions/processor",
        "SchedulerFunction": "functions/scheduler",
        "StartRunFunction": "functions/start_run",
    }
    # the nested templates' code: keys relative to template.yaml's folder too (one upload serves all)
    assert {trail: node.code_locations for trail, node in tree.walk()} == {
        (): locations,
        ("StatusApiStack",): {"ApiFunction": "functions/api"},
        ("TriggersStack",): {"TriggerFunction": "functions/triggers"},
        ("DashboardStack",): {},
    }
    for trail, node in tree.walk():
        if trail:
            stack_resource = transformed["Resources"][trail[-1]]
            assert stack_resource["Type"] == "AWS::CloudFormation::Stack"
            assert stack_resource["Properties"]["TemplateURL"] == node.path.relative_to(ROOT).as_posix()
    for function in FUNCTIONS:
        assert transformed["Resources"][function]["Properties"]["Code"] == {
            "S3Bucket": ARTIFACT_BUCKET,
            "S3Key": locations[function],
        }
    layers = {k: v for k, v in transformed["Resources"].items() if v["Type"] == "AWS::Lambda::LayerVersion"}
    assert sorted(v["Properties"]["Content"]["S3Key"] for v in layers.values()) == ["layers/scientific", "src"]
    assert "Transform" not in transformed
    assert not [r for r in transformed["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]


def test_transform_with_default_parameters(transformed):
    stack = Stack(transformed)
    assert stack.properties("IncomingQueue")["VisibilityTimeout"] == 360
    for function in FUNCTIONS:
        properties = stack.properties(function)
        assert properties["Runtime"] == "python3.13" and properties["Handler"] == "app.lambda_handler"
        assert properties["Architectures"] == ["x86_64"]
        assert properties["TracingConfig"] == {"Mode": "Active"}
    assert stack.properties("ProcessorFunction")["Timeout"] == "60"
    assert stack.properties("ProcessorFunction")["MemorySize"] == "256"
    assert not stack.active("AlarmEmailSubscription")
    assert "LifecycleConfiguration" not in stack.properties("ResultsBucket")
    # point-in-time recovery is on unless a throwaway stack turns it off
    assert stack.properties("JobsTable")["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": "true"}
    assert stack.properties("SchedulerFunction")["ReservedConcurrentExecutions"] == "10"
    assert stack.properties("SchedulerFunctionCompletedJobs")["ScalingConfig"] == {"MaximumConcurrency": "10"}
    assert stack.properties("StartRunFunction")["ReservedConcurrentExecutions"] == "1"


def test_transform_with_non_default_parameters(sam_template):
    transformed, _ = transform_template(sam_template, CUSTOM, REGION)
    stack = Stack(transformed, CUSTOM)
    assert stack.properties("IncomingQueue")["VisibilityTimeout"] == 720
    assert stack.properties("ProcessorFunction")["Timeout"] == "120"
    assert stack.properties("ProcessorFunction")["MemorySize"] == "1024"
    for function in FUNCTIONS:
        assert stack.properties(function)["Architectures"] == ["arm64"]
    for layer in stack.resources_of_type("AWS::Lambda::LayerVersion"):
        assert stack.properties(layer)["CompatibleArchitectures"] == ["arm64"]
    assert stack.active("AlarmEmailSubscription")
    subscription = stack.properties("AlarmEmailSubscription")
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == "ops@example.com"
    assert subscription["TopicArn"] == "<AlarmTopic>"
    assert stack.properties("ResultsBucket")["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == "7"
    # prod keeps point-in-time recovery (a Rule refuses turning it off: tests/unit/test_template_parameters.py)
    assert stack.properties("JobsTable")["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": "true"}
    assert stack.properties("SchedulerFunction")["ReservedConcurrentExecutions"] == "50"
    assert stack.properties("SchedulerFunctionCompletedJobs")["ScalingConfig"] == {"MaximumConcurrency": "50"}
    assert stack.properties("StartRunFunction")["ReservedConcurrentExecutions"] == "2"


def test_parameter_validation_rejects_bad_values(transformed):
    """The evaluator used above enforces AllowedValues/patterns, so CUSTOM is a deployable set."""
    with pytest.raises(ValueError, match="ProcessorTimeout"):
        Stack(transformed, {"ProcessorTimeout": "90"})
    with pytest.raises(ValueError, match="AlarmEmail"):
        Stack(transformed, {"AlarmEmail": "not-an-address"})
    # it is also a ScalingConfig.MaximumConcurrency, whose minimum is 2
    with pytest.raises(ValueError, match="SchedulerReservedConcurrency"):
        Stack(transformed, {"SchedulerReservedConcurrency": "1"})
    with pytest.raises(ValueError, match="StartRunReservedConcurrency"):
        Stack(transformed, {"StartRunReservedConcurrency": "0"})


# ------------------------------------------------------------------------------------------- tags
# -------------------------------------------------------------------------------------------- IAM
def _stack_bindings() -> Bindings:
    queues = {
        "IncomingQueue": "scenario-1-dev-incoming.fifo",
        "OutgoingQueue": "scenario-1-dev-outgoing.fifo",
        "TriggerQueue": "scenario-1-dev-trigger",
        "TriggerDlq": "scenario-1-dev-trigger-dlq",
    }
    return bindings_for("scenario-1-dev-data-123456789012", "scenario-1-dev-jobs", queues, REGION, "123456789012")


@pytest.mark.parametrize(
    ("mapping", "function", "queue"),
    [("ProcessorFunctionIncomingJobs", "ProcessorFunction", "IncomingQueue"),
     ("SchedulerFunctionCompletedJobs", "SchedulerFunction", "OutgoingQueue"),
     ("TriggerFunctionRunEnds", "TriggerFunction", "TriggerQueue")],
)  # fmt: skip
def test_event_source_mapping_can_poll_only_its_own_queue(tree, mapping, function, queue):
    resources = {k: v for _t, node in tree.walk() for k, v in node.transformed["Resources"].items()}
    properties = resources[mapping]["Properties"]
    assert properties["FunctionName"] == {"Ref": function}
    assert properties["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    bindings = _stack_bindings()
    statements = tree_role_statements(tree, function, bindings)
    own = bindings.attributes[f"{queue}.Arn"]
    other = bindings.attributes[f"{'Outgoing' if queue == 'IncomingQueue' else 'Incoming'}Queue.Arn"]
    # what Lambda's poller does with the function's role (AWSLambdaSQSQueueExecutionRole's actions)
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert is_allowed(statements, Permission(action, own)), action
        assert not is_allowed(statements, Permission(action, other)), action
    # the poller never changes a message's visibility; the job loop's consumers do, on their own queue: a failed
    # message's retry backoff (services/records.py)
    backoff = function in ("ProcessorFunction", "SchedulerFunction")
    assert is_allowed(statements, Permission("sqs:ChangeMessageVisibility", own)) == backoff
    assert not is_allowed(statements, Permission("sqs:ChangeMessageVisibility", other))
    # and none of the functions polls anything else: the mappings are the only three
    mappings = [k for k, v in resources.items() if v["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert sorted(mappings) == [
        "ProcessorFunctionIncomingJobs",
        "SchedulerFunctionCompletedJobs",
        "TriggerFunctionRunEnds",
    ]


# ----------------------------------------------------------------------------------------- alarms
def _key_policy(stack: Stack) -> dict[str, dict]:
    return {s["Sid"]: s for s in stack.properties("AlarmTopicKey")["KeyPolicy"]["Statement"]}


def test_alarm_topic_is_encrypted_with_a_key_the_alarms_may_use(stack):
    """alias/aws/sns would encrypt the topic too, but CloudWatch alarms cannot publish to it."""
    assert stack.template["Resources"]["AlarmTopicKey"]["Type"] == "AWS::KMS::Key"
    assert stack.properties("AlarmTopic")["KmsMasterKeyId"] == "<AlarmTopicKey>"
    assert stack.properties("AlarmTopicKey")["EnableKeyRotation"] is True
    cloudwatch = _key_policy(stack)["CloudWatchAlarmsPublishToTheTopic"]
    assert cloudwatch["Effect"] == "Allow" and cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    source_arn = cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"]
    # An alarm outside the condition could not notify anyone, and nothing would say so (nested ones too).
    alarms = [(nested, a) for _t, nested in stack.walk() for a in nested.resources_of_type("AWS::CloudWatch::Alarm")]
    assert len(alarms) == 9  # 6 of the job loop, the status API's errors, the trigger DLQ, triggers in doubt
    for nested, alarm in alarms:
        properties = nested.properties(alarm)
        arn = f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{properties['AlarmName']}"
        assert fnmatch.fnmatchcase(arn, source_arn), (arn, source_arn)
        assert properties["AlarmActions"] == properties["OKActions"] == ["<AlarmTopic>"]


def test_alarm_topic_key_policy_lets_the_account_administer_but_not_use_the_key(stack):
    statements = _key_policy(stack)
    assert set(statements) == {"AccountAdministersTheKey", "CloudWatchAlarmsPublishToTheTopic"}
    for statement in statements.values():
        assert statement["Effect"] == "Allow" and "NotAction" not in statement and "NotPrincipal" not in statement
        assert not [a for a in statement["Action"] if a == "*" or a.split(":", 1)[1] == "*"]
        assert statement["Resource"] == "*"  # in a key policy: this key
    administer = statements["AccountAdministersTheKey"]
    assert administer["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    # CloudFormation changes and deletes the key with the deployer's credentials: every permission its
    # AWS::KMS::Key handlers need on an existing key must be delegable, or updates and deletes would fail.
    handlers = PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, "AWS::KMS::Key").schema["handlers"]
    needed = {p for h in ("create", "read", "update", "delete") for p in handlers[h]["permissions"]}
    assert needed - {"kms:CreateKey"} <= set(administer["Action"])
    assert not {a for a in administer["Action"] if a.startswith(("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"))}


# ----------------------------------------------------------------------------------------- queues
@pytest.mark.parametrize("queue", ["IncomingQueue", "OutgoingQueue"])
def test_each_queue_dead_letters_to_a_fifo_dlq_after_three_receives(stack, queue):
    properties = stack.properties(queue)
    assert properties["FifoQueue"] is True and properties["QueueName"].endswith(".fifo")
    redrive = stack.template["Resources"][queue]["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 3
    dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
    dlq_properties = stack.properties(dlq)
    assert dlq_properties["FifoQueue"] is True and dlq_properties["QueueName"].endswith(".fifo")
    assert dlq != queue and "RedrivePolicy" not in dlq_properties


@pytest.mark.parametrize("timeout", ["30", "60", "120", "180", "300", "600", "900"])
def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(sam_template, timeout):
    assert timeout in sam_template["Parameters"]["ProcessorTimeout"]["AllowedValues"]
    root = Stack.from_tree(
        transform_tree(TEMPLATE, {"ProcessorTimeout": timeout}, REGION), {"ProcessorTimeout": timeout}
    )
    checked = []
    for _trail, stack in root.walk():
        for mapping in stack.resources_of_type("AWS::Lambda::EventSourceMapping"):
            properties = stack.properties(mapping)
            function = properties["FunctionName"].strip("<>")
            queue = properties["EventSourceArn"].strip("<>").removesuffix(".Arn")
            function_timeout = int(stack.properties(function)["Timeout"])
            visibility = int(stack.properties(queue)["VisibilityTimeout"])
            assert visibility >= 6 * function_timeout, (mapping, visibility, function_timeout)
            checked.append(mapping)
    assert len(checked) == 3


def test_every_allowed_processor_timeout_has_a_visibility_row(sam_template):
    allowed = sam_template["Parameters"]["ProcessorTimeout"]["AllowedValues"]
    assert set(sam_template["Mappings"]["ProcessorTimeoutToVisibility"]) == set(allowed)


def test_event_source_batch_sizes_fit_fifo_limits(stack):
    mappings = [(n, m) for _t, n in stack.walk() for m in n.resources_of_type("AWS::Lambda::EventSourceMapping")]
    assert len(mappings) == 3
    for nested, mapping in mappings:
        properties = nested.properties(mapping)
        assert 1 <= int(properties["BatchSize"]) <= 10
        assert "MaximumBatchingWindowInSeconds" not in properties
        if "ScalingConfig" in properties:
            assert 2 <= int(properties["ScalingConfig"]["MaximumConcurrency"]) <= 1000


# ------------------------------------------------------------------------------------ concurrency
def test_no_event_source_polls_more_batches_than_its_function_may_run(stack):
    """A batch beyond a function's reserved concurrency is throttled and counts as a receive (-> DLQ)."""
    reserved = {}
    for function in FUNCTIONS:
        properties = stack.properties(function)
        if "ReservedConcurrentExecutions" in properties:
            reserved[function] = int(properties["ReservedConcurrentExecutions"])
    assert set(reserved) == {"SchedulerFunction", "StartRunFunction"}  # the Processor: its mapping's cap only
    for mapping in stack.resources_of_type("AWS::Lambda::EventSourceMapping"):
        properties = stack.properties(mapping)
        function = properties["FunctionName"].strip("<>")
        maximum = int(properties["ScalingConfig"]["MaximumConcurrency"])
        assert maximum <= reserved.get(function, maximum), mapping


# ----------------------------------------------------------------------------------------- layers
def test_only_the_processor_gets_the_scientific_layer(stack):
    layers = {
        resource["Properties"]["LayerName"]["Fn::Sub"].rsplit("-", 1)[1]: logical_id
        for logical_id, resource in stack.template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::LayerVersion"
    }
    assert set(layers) == {"core", "scientific"}
    used = {f: [ref["Ref"] for ref in stack.template["Resources"][f]["Properties"]["Layers"]] for f in FUNCTIONS}
    assert used == {
        "ProcessorFunction": [layers["core"], layers["scientific"]],
        "SchedulerFunction": [layers["core"]],
        "StartRunFunction": [layers["core"]],
    }


# ------------------------------------------------------------------------------ local endpoint variable


def test_boto3_ignores_an_empty_aws_endpoint_url(monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    client = boto3.client("s3", region_name=REGION)  # making a client sends no request
    assert client.meta.endpoint_url == f"https://s3.{REGION}.amazonaws.com"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert boto3.client("s3", region_name=REGION).meta.endpoint_url == "http://127.0.0.1:9"
