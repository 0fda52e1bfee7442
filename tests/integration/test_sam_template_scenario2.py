"""templates/scenario-2.yaml: lint, offline SAM transform, tags, IAM hygiene, network, ECS — no AWS, no Docker.

The generic checks are those of test_sam_template.py (scenario 1), applied to this template.
"""

from __future__ import annotations

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from jobgraph.runs.outputs import QUEUE_OUTPUTS
from jobgraph.sam.template import ARTIFACT_BUCKET, load_template, transform_template, transform_tree
from jobgraph.services.settings import WorkerSettings
from tests.cfn_eval import Stack
from tests.integration.test_sam_template import TAG_KEYS, UNTAGGABLE, _allow_statements
from tests.lambda_support import ROOT

TEMPLATE = ROOT / "templates" / "scenario-2.yaml"
REGION = "eu-west-1"
CUSTOM = {
    "TestRunId": "fargate-1vcpu",
    "Stage": "prod",
    "ProjectPrefix": "jobgraph-perf",
    "Architecture": "arm64",
    "WorkerCpu": "1024",
    "WorkerMemory": "2048",
    "DesiredCount": "3",
    "ImageTag": "0123abcd",
}
# Types CloudFormation cannot tag, beyond scenario 1's (checked against cfn-lint's schemas below).
UNTAGGABLE_HERE = UNTAGGABLE | {
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation",
}
# ecr:GetAuthorizationToken has no resource-level permissions: "*" is its only valid resource.
RESOURCE_STAR_ALLOWED = {"ecr:GetAuthorizationToken"}


@pytest.fixture(scope="module")
def sam_template() -> dict:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module", params=["default", "custom"])
def transformed(request, sam_template) -> tuple[dict, dict]:
    parameters = {} if request.param == "default" else CUSTOM
    return transform_template(sam_template, parameters, REGION)[0], parameters


def test_cfn_lint_reports_no_errors_or_warnings():
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1", REGION]))
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches if m.rule.id[0] in "EW"] == []


def test_transform_rewrites_code_locations_relative_to_the_template(sam_template):
    transformed, locations = transform_template(sam_template, {}, REGION)
    assert locations == {
        "CoreLayer": "../src",
        "ScientificLayer": "../layers/scientific",  # the status API's numpy (POST /runs generate)
        "SchedulerFunction": "../functions/scheduler",
        "StartRunFunction": "../functions/start_run",
    }
    for function in ("SchedulerFunction", "StartRunFunction"):
        code = transformed["Resources"][function]["Properties"]["Code"]
        assert code == {"S3Bucket": ARTIFACT_BUCKET, "S3Key": locations[function]}
        assert (TEMPLATE.parent / locations[function] / "app.py").is_file()
    assert not [r for r in transformed["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]
    # the same Scheduler code as scenario 1, unchanged; no Processor function at all
    assert "ProcessorFunction" not in transformed["Resources"]


def test_every_taggable_resource_carries_the_four_tags(transformed):
    template, parameters = transformed
    root = Stack.from_tree(transform_tree(TEMPLATE, parameters, REGION), parameters)
    expected = {
        "PerfTestRun": root.parameters["TestRunId"],
        "Purpose": "PerformanceTesting",
        "Environment": root.parameters["Stage"],
        "Project": root.parameters["ProjectPrefix"],
    }
    untagged, checked = {}, set()
    for _trail, stack in root.walk():  # with the nested shared pieces (status API, triggers, dashboard)
        for logical_id, resource in stack.template["Resources"].items():
            if resource["Type"] in UNTAGGABLE_HERE or not stack.active(logical_id):
                continue
            checked.add(resource["Type"])
            properties = resource["Properties"]  # only the tags are resolved (subnets use Fn::Select)
            tags = stack.resolve(properties.get("Tags", []))
            if resource["Type"] == "AWS::ApiGatewayV2::Api" and "Body" in properties:
                body_tags = stack.resolve(properties["Body"].get("tags", []))
                tags = {t["name"]: t["x-amazon-apigateway-tag-value"] for t in body_tags}
            pairs = tags.items() if isinstance(tags, dict) else ((t["Key"], t["Value"]) for t in tags)
            found = {key: value for key, value in pairs if key in TAG_KEYS}
            if found != expected:
                untagged[logical_id] = found
    assert untagged == {}
    assert checked >= {
        "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::InternetGateway", "AWS::EC2::RouteTable",
        "AWS::EC2::SecurityGroup", "AWS::ECS::Cluster", "AWS::ECS::Service", "AWS::ECS::TaskDefinition",
        "AWS::ECR::Repository", "AWS::IAM::Role", "AWS::SQS::Queue", "AWS::S3::Bucket", "AWS::DynamoDB::Table",
        "AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::Logs::LogGroup", "AWS::CloudWatch::Alarm",
        "AWS::SNS::Topic", "AWS::ApiGatewayV2::Api", "AWS::CloudWatch::Dashboard", "AWS::Events::EventBus",
    }  # fmt: skip
    # and the service hands its tags to the tasks it starts (Fargate charges are per task)
    assert template["Resources"]["WorkerService"]["Properties"]["PropagateTags"] == "SERVICE"


@pytest.mark.parametrize("resource_type", sorted(UNTAGGABLE_HERE - UNTAGGABLE))
def test_exempt_types_really_cannot_be_tagged(resource_type):
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    assert "Tags" not in schema["properties"]


def test_no_allow_statement_grants_a_wildcard_action(transformed):
    template, _ = transformed
    allows = [(logical_id, s) for logical_id, s in _allow_statements(template) if s["Effect"] == "Allow"]
    assert len(allows) >= 8
    offending = []
    for logical_id, statement in allows:
        assert "NotAction" not in statement and "NotResource" not in statement, logical_id
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        offending += [(logical_id, a) for a in actions if a == "*" or a.split(":", 1)[1] == "*"]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if "*" in resources and not set(actions) <= RESOURCE_STAR_ALLOWED:
            offending.append((logical_id, f"Resource * for {actions}"))
    assert offending == []


def _policy_actions(template: dict, role: str) -> dict[str, object]:
    """action -> resource of every Allow statement of a role."""
    found = {}
    for policy in template["Resources"][role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for action in actions:
                found[action] = statement["Resource"]
    return found


def test_task_role_is_the_processors_permissions_plus_polling(sam_template):
    template = transform_template(sam_template, {}, REGION)[0]
    actions = _policy_actions(template, "WorkerTaskRole")
    assert set(actions) == {
        "s3:GetObject", "s3:PutObject", "s3:ListBucket",
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:DeleteMessageBatch", "sqs:ChangeMessageVisibility",
        "sqs:ChangeMessageVisibilityBatch", "sqs:GetQueueAttributes", "sqs:SendMessage",
    }  # fmt: skip
    assert actions["sqs:ReceiveMessage"] == {"Fn::GetAtt": ["IncomingQueue", "Arn"]}
    assert actions["sqs:SendMessage"] == {"Fn::GetAtt": ["OutgoingQueue", "Arn"]}
    execution = _policy_actions(template, "WorkerExecutionRole")
    assert set(execution) == {
        "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer", "logs:CreateLogStream", "logs:PutLogEvents",
    }  # fmt: skip
    assert execution["ecr:BatchGetImage"] == {"Fn::GetAtt": ["WorkerRepository", "Arn"]}


def test_network_is_public_subnets_only_and_tasks_accept_no_connections(sam_template):
    resources = sam_template["Resources"]
    types = {r["Type"] for r in resources.values()}
    assert "AWS::EC2::NatGateway" not in types and "AWS::EC2::EIP" not in types
    assert resources["PublicDefaultRoute"]["Properties"]["GatewayId"] == {"Ref": "InternetGateway"}
    group = resources["WorkerSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in group
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in group["SecurityGroupEgress"]] == [("tcp", 443, 443)]
    network = resources["WorkerService"]["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "ENABLED"
    assert network["Subnets"] == [{"Ref": "PublicSubnetA"}, {"Ref": "PublicSubnetB"}]


def test_service_starts_at_zero_and_the_task_runs_the_worker(transformed):
    template, parameters = transformed
    stack = Stack(template, parameters)
    service = template["Resources"]["WorkerService"]["Properties"]
    assert service["LaunchType"] == "FARGATE"
    assert stack.resolve(service["DesiredCount"]) == parameters.get("DesiredCount", "0")
    definition = template["Resources"]["WorkerTaskDefinition"]["Properties"]
    assert stack.resolve(definition["Cpu"]) == parameters.get("WorkerCpu", "256")
    assert stack.resolve(definition["Memory"]) == parameters.get("WorkerMemory", "512")
    expected_arch = "ARM64" if parameters.get("Architecture") == "arm64" else "X86_64"
    assert stack.resolve(definition["RuntimePlatform"]["CpuArchitecture"]) == expected_arch
    (container,) = definition["ContainerDefinitions"]
    assert container["Command"] == ["python3.13", "-m", "jobgraph.services.worker"]
    assert stack.resolve(container["Image"]).endswith(f":{parameters.get('ImageTag', 'latest')}")
    # every variable the worker's settings read is set, and they validate
    environment = {e["Name"]: stack.resolve(e["Value"]) for e in container["Environment"]}
    aliases = {field.validation_alias for field in WorkerSettings.model_fields.values()}
    assert aliases <= set(environment)
    settings = WorkerSettings(**{k: v for k, v in environment.items() if k in aliases})
    assert settings.wait_time_s == 20 and settings.max_messages == 10
    # the stop timeout leaves room for the last long poll and a batch after SIGTERM
    assert container["StopTimeout"] >= settings.wait_time_s + 60


def test_outputs_are_what_the_run_driver_and_make_targets_read(sam_template):
    outputs = set(sam_template["Outputs"])
    assert set(QUEUE_OUTPUTS) <= outputs
    assert {"ClusterName", "ServiceName", "TaskDefinitionArn", "RepositoryUri"} <= outputs


def test_incoming_queue_dead_letters_after_three_receives(sam_template):
    for queue in ("IncomingQueue", "OutgoingQueue"):
        properties = sam_template["Resources"][queue]["Properties"]
        assert properties["FifoQueue"] is True
        assert properties["RedrivePolicy"]["maxReceiveCount"] == 3
        dlq = properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert sam_template["Resources"][dlq]["Properties"]["FifoQueue"] is True
