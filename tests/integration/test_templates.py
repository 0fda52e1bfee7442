"""What every scenario template must hold, one suite over the three (template.yaml, templates/scenario-2.yaml,
templates/scenario-3.yaml), each with the shared pieces it nests (templates/shared/*.yaml): lint, tags, IAM
hygiene, TLS-only queues and buckets, encrypted topics, the local endpoint variable. What is particular to one
scenario stays in its own test_sam_template*.py; least privilege against recorded calls is in test_iam_*.py
and test_step_tasks.py, the scanners in test_scan.py.
"""

from __future__ import annotations

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from jobgraph.sam.template import load_template, transform_tree
from tests.cfn_eval import Stack
from tests.iam_grants import LOG_DELIVERY_ACTIONS
from tests.iam_policy import MANAGED_POLICY_ACTIONS
from tests.lambda_support import ROOT

REGION = "eu-west-1"
COMMON = {"Stage": "prod", "ProjectPrefix": "jobgraph-perf", "Architecture": "arm64", "AlarmEmail": "ops@example.com"}
# a non-default, deployable parameter set per scenario (the evaluator enforces AllowedValues and patterns)
SCENARIOS = {
    "template.yaml": {
        **COMMON, "TestRunId": "memory-1024mb", "ProcessorTimeout": "120", "ProcessorMemorySize": "1024",
        "ResultsRetentionDays": "7", "SchedulerReservedConcurrency": "50", "StartRunReservedConcurrency": "2",
    },
    "templates/scenario-2.yaml": {
        **COMMON, "TestRunId": "fargate-1vcpu", "WorkerCpu": "1024", "WorkerMemory": "2048", "DesiredCount": "3",
        "ImageTag": "0123abcd",
    },
    "templates/scenario-3.yaml": {
        **COMMON, "TestRunId": "sfn-512mb", "StepTaskMemorySize": "512", "SequenceConcurrency": "100",
    },
}  # fmt: skip
SHARED = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "templates" / "shared").glob("*.yaml"))
TAG_KEYS = ("PerfTestRun", "Purpose", "Environment", "Project")
# Resource types CloudFormation cannot tag (checked against cfn-lint's schemas below).
UNTAGGABLE = {
    "AWS::Lambda::LayerVersion", "AWS::SNS::Subscription", "AWS::S3::BucketPolicy", "AWS::Lambda::Permission",
    "AWS::SQS::QueuePolicy", "AWS::EC2::VPCGatewayAttachment", "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation",
}  # fmt: skip
# What every scenario's stack tags (each has more: its runner's resources)
TAGGED_EVERYWHERE = {
    "AWS::Lambda::Function", "AWS::IAM::Role", "AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SNS::Topic",
    "AWS::KMS::Key", "AWS::Logs::LogGroup", "AWS::CloudWatch::Alarm", "AWS::ApiGatewayV2::Api",
    "AWS::CloudWatch::Dashboard", "AWS::Events::EventBus", "AWS::Events::Rule", "AWS::SQS::Queue",
    "AWS::CloudFormation::Stack",
}  # fmt: skip
TAGGED_BY_SCENARIO = {
    "template.yaml": {"AWS::Lambda::EventSourceMapping", "AWS::ApiGatewayV2::Stage"},
    "templates/scenario-2.yaml": {
        "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::InternetGateway", "AWS::EC2::RouteTable",
        "AWS::EC2::SecurityGroup", "AWS::ECS::Cluster", "AWS::ECS::Service", "AWS::ECS::TaskDefinition",
        "AWS::ECR::Repository", "AWS::Lambda::EventSourceMapping",
    },
    "templates/scenario-3.yaml": {"AWS::StepFunctions::StateMachine"},
}  # fmt: skip
# Actions whose only valid resource is "*": an ECS task's image pull, and a state machine's log delivery.
RESOURCE_STAR_ACTIONS = {"ecr:GetAuthorizationToken", *LOG_DELIVERY_ACTIONS}


@pytest.fixture(scope="module", params=list(SCENARIOS))
def tree(request):
    """A scenario's template and its nested ones, transformed with the default parameters."""
    return transform_tree(ROOT / request.param, {}, REGION)


@pytest.fixture(scope="module", params=[(path, variant) for path in SCENARIOS for variant in ("default", "custom")])
def stack(request) -> tuple[str, Stack]:
    """A scenario's stack (nested ones included) evaluated for its defaults and for a non-default set."""
    path, variant = request.param
    parameters = {} if variant == "default" else SCENARIOS[path]
    return path, Stack.from_tree(transform_tree(ROOT / path, parameters, REGION), parameters)


def listify(value) -> list:
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------------------------------------- lint
@pytest.mark.parametrize("path", [*SCENARIOS, *SHARED])
def test_cfn_lint_reports_no_errors_or_warnings(path):
    matches = lint_file(ROOT / path, config=ManualArgs(regions=["us-east-1", REGION]))
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches if m.rule.id[0] in "EW"] == []


# ------------------------------------------------------------------------------------------- tags
def test_every_taggable_resource_carries_the_four_tags(stack):
    path, root = stack
    expected = {
        "PerfTestRun": root.parameters["TestRunId"],
        "Purpose": "PerformanceTesting",
        "Environment": root.parameters["Stage"],
        "Project": root.parameters["ProjectPrefix"],
    }
    untagged, checked = {}, set()
    for _trail, nested in root.walk():
        for logical_id, resource in nested.template["Resources"].items():
            if resource["Type"] in UNTAGGABLE or not nested.active(logical_id):
                continue
            checked.add(resource["Type"])
            properties = resource.get("Properties", {})  # only the tags are resolved (subnets use Fn::Select)
            tags = nested.resolve(properties.get("Tags", []))
            if resource["Type"] == "AWS::ApiGatewayV2::Api" and "Body" in properties:
                # SAM writes an HTTP API's tags into its OpenAPI body, which API Gateway applies on import
                body_tags = nested.resolve(properties["Body"].get("tags", []))
                tags = {t["name"]: t["x-amazon-apigateway-tag-value"] for t in body_tags}
            # a list of {Key, Value} (SAM converts the function map form), except API Gateway V2's and nested
            # applications' maps
            pairs = tags.items() if isinstance(tags, dict) else ((t["Key"], t["Value"]) for t in tags)
            found = {key: value for key, value in pairs if key in TAG_KEYS}
            if found != expected:
                untagged[logical_id] = found
    assert untagged == {}
    assert checked >= TAGGED_EVERYWHERE | TAGGED_BY_SCENARIO[path]


@pytest.mark.parametrize("resource_type", sorted(UNTAGGABLE))
def test_exempt_types_really_cannot_be_tagged(resource_type):
    """cfn-lint validates against us-east-1 (and sam validate too): tags there must not be possible."""
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    assert "Tags" not in schema["properties"]


# -------------------------------------------------------------------------------------------- IAM
def policy_statements(template: dict):
    """(logical id, statement) of every role, IAM policy, bucket and queue policy; both branches of an Fn::If."""
    for logical_id, resource in template["Resources"].items():
        documents = []
        if resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
        elif resource["Type"] in (
            "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy",
        ):  # fmt: skip
            documents = [resource["Properties"]["PolicyDocument"]]
        for document in documents:
            for statement in listify(document["Statement"]):
                # a conditional statement (TriggerFunction: one per configured target type): both branches
                branches = statement["Fn::If"][1:] if "Fn::If" in statement else [statement]
                yield from ((logical_id, b) for b in branches if "Effect" in b)


def test_no_allow_statement_grants_a_wildcard_action(tree):
    statements = [s for _trail, node in tree.walk() for s in policy_statements(node.transformed)]
    allows = [(logical_id, s) for logical_id, s in statements if s["Effect"] == "Allow"]
    assert len(allows) >= 10
    offending = []
    for logical_id, statement in allows:
        assert "NotAction" not in statement and "NotResource" not in statement, logical_id
        actions = listify(statement["Action"])
        offending += [(logical_id, a) for a in actions if a == "*" or a.split(":", 1)[1] == "*"]
        if "*" in listify(statement["Resource"]):
            offending += [(logical_id, f"Resource * for {a}") for a in actions if a not in RESOURCE_STAR_ACTIONS]
    assert offending == []
    # "s3:*" and "sqs:*" sit only in the TLS-only Denies of the bucket's and the queues' policies
    assert {s["Sid"] for _, s in statements if s["Effect"] == "Deny"} == {"DenyInsecureTransport"}


def test_roles_attach_only_known_managed_policies(tree):
    roles = [(n.path.name, k, r) for _t, n in tree.walk() for k, r in n.transformed["Resources"].items()]
    checked = 0
    for template, logical_id, resource in roles:
        if resource["Type"] == "AWS::IAM::Role":
            arns = set(resource["Properties"].get("ManagedPolicyArns", []))
            assert arns <= set(MANAGED_POLICY_ACTIONS), (template, logical_id, arns)
            checked += 1
    assert checked >= 4  # every function's role, the API's and the trigger function's among them


# ------------------------------------------------------------------------ TLS, encryption, recovery
def of_type(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def tls_guarded(template: dict, policy_type: str, targets_key: str) -> set[str]:
    """Logical ids of the resources a policy of ``policy_type`` guards with a Deny of every action unless TLS."""
    guarded = set()
    for policy in of_type(template, policy_type).values():
        properties = policy["Properties"]
        for statement in listify(properties["PolicyDocument"]["Statement"]):
            if (
                statement["Effect"] == "Deny"
                and statement["Principal"] == "*"
                and listify(statement["Action"]) in (["sqs:*"], ["s3:*"])
                and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            ):
                arns = {r["Fn::GetAtt"][0] for r in listify(statement["Resource"]) if "Fn::GetAtt" in r}
                targets = {t["Ref"] for t in listify(properties[targets_key])}
                guarded |= targets & arns  # the policy is attached to the queue and its Deny names it
    return guarded


@pytest.mark.parametrize("path", [*SCENARIOS, *SHARED])
def test_every_queue_and_bucket_refuses_requests_without_tls(path):
    template = load_template(ROOT / path)
    queues = set(of_type(template, "AWS::SQS::Queue"))
    assert tls_guarded(template, "AWS::SQS::QueuePolicy", "Queues") == queues
    buckets = set(of_type(template, "AWS::S3::Bucket"))
    assert tls_guarded(template, "AWS::S3::BucketPolicy", "Bucket") == buckets


def test_every_queue_is_checked_somewhere():
    """Guards the test above against templates without queues only."""
    counts = {path: len(of_type(load_template(ROOT / path), "AWS::SQS::Queue")) for path in [*SCENARIOS, *SHARED]}
    assert counts["template.yaml"] == counts["templates/scenario-2.yaml"] == 4
    assert counts["templates/shared/triggers.yaml"] == 2


@pytest.mark.parametrize("path", [*SCENARIOS, *SHARED])
def test_every_topic_is_encrypted(path):
    for name, topic in of_type(load_template(ROOT / path), "AWS::SNS::Topic").items():
        assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}, name


def test_the_three_scenarios_encrypt_their_alarm_topic_with_the_same_key():
    """Scenario 1's key and topic (tests/integration/test_sam_template.py checks its policy) copied as they are:
    alias/aws/sns would not let CloudWatch alarms publish."""
    first, *others = (load_template(ROOT / path)["Resources"] for path in SCENARIOS)
    for resources in others:
        assert resources["AlarmTopicKey"] == first["AlarmTopicKey"]
        assert resources["AlarmTopic"] == first["AlarmTopic"]


def test_point_in_time_recovery_is_on_unless_turned_off(stack):
    """Prod cannot turn it off (the templates' Rule: tests/unit/test_template_parameters.py)."""
    _path, root = stack
    assert root.properties("JobsTable")["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": "true"}


# ------------------------------------------------------------------------------ local endpoint variable
def test_every_function_declares_an_empty_aws_endpoint_url(tree):
    """`sam local invoke --env-vars` sets only declared variables; empty keeps deployed functions on AWS."""
    functions = [
        (node.path.name, name, resource)
        for _trail, node in tree.walk()
        for name, resource in node.transformed["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    ]
    assert len(functions) >= 4
    for template, name, resource in functions:
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        assert variables.get("AWS_ENDPOINT_URL") == "", (template, name)
