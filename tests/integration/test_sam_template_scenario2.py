"""templates/scenario-2.yaml: offline SAM transform, the worker's roles, network, ECS — no AWS, no Docker.

The checks every scenario's template must pass (lint, tags, IAM hygiene, TLS, encryption) are in
test_templates.py, over the three.
"""

from __future__ import annotations

import pytest

from jobgraph.runs.outputs import QUEUE_OUTPUTS
from jobgraph.sam.template import ARTIFACT_BUCKET, load_template, transform_template
from jobgraph.services.settings import WorkerSettings
from tests.cfn_eval import Stack
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


@pytest.fixture(scope="module")
def sam_template() -> dict:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module", params=["default", "custom"])
def transformed(request, sam_template) -> tuple[dict, dict]:
    parameters = {} if request.param == "default" else CUSTOM
    return transform_template(sam_template, parameters, REGION)[0], parameters


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


def test_the_service_hands_its_tags_to_the_tasks_it_starts(transformed):
    """Fargate charges are per task: the tags (test_templates.py checks them on every resource) must reach them."""
    template, _ = transformed
    assert template["Resources"]["WorkerService"]["Properties"]["PropagateTags"] == "SERVICE"


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
    # the batch calls are authorised by DeleteMessage / ChangeMessageVisibility: no actions of their own
    assert set(actions) == {
        "s3:GetObject", "s3:PutObject", "s3:ListBucket",
        "dynamodb:PutItem", "dynamodb:UpdateItem",
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
        "sqs:SendMessage",
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
