"""template.yaml deployed into the local cloud (moto's CloudFormation): what the deployed resources look like."""

from __future__ import annotations

import re

import pytest

from jobgraph.localcloud.cloudformation.stack import DeployedStack, deploy
from jobgraph.localcloud.server import LocalEndpoint
from tests.lambda_support import ROOT

PARAMETERS = {"SchedulerReservedConcurrency": "20", "StartRunReservedConcurrency": "2"}


@pytest.fixture(scope="module")
def deployed():
    with LocalEndpoint() as endpoint:
        yield endpoint, deploy(endpoint, ROOT / "template.yaml", stack_name="scenario-1-moto", parameters=PARAMETERS)


def _function_name(stack: DeployedStack, logical_id: str) -> str:
    return stack.physical_ids[logical_id]


def test_reserved_concurrency_parameters_reach_the_deployed_functions(deployed):
    endpoint, stack = deployed
    lambda_client = endpoint.client("lambda")

    def reserved(logical_id: str) -> int | None:
        response = lambda_client.get_function_concurrency(FunctionName=_function_name(stack, logical_id))
        return response.get("ReservedConcurrentExecutions")

    assert reserved("SchedulerFunction") == 20
    assert reserved("StartRunFunction") == 2
    assert reserved("ProcessorFunction") is None
    scaling = {
        mapping["FunctionArn"].rsplit(":", 1)[-1]: mapping["ScalingConfig"]["MaximumConcurrency"]
        for mapping in lambda_client.list_event_source_mappings()["EventSourceMappings"]
    }
    assert scaling == {"scenario-1-moto-scheduler": 20, "scenario-1-moto-processor": 10, "scenario-1-moto-triggers": 2}


def test_each_function_logs_to_the_stacks_log_group_of_its_name(deployed):
    endpoint, stack = deployed
    groups = endpoint.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/scenario-1-moto-")["logGroups"]
    assert {g["logGroupName"]: g["retentionInDays"] for g in groups} == {
        f"/aws/lambda/{_function_name(stack, f)}": 14
        for f in ("ProcessorFunction", "SchedulerFunction", "StartRunFunction", "ApiFunction", "TriggerFunction")
    }


def test_each_function_is_created_with_its_layers_and_runs_on_them(deployed):
    """As Lambda's CreateFunction: a function lists the layers the template gives it (moto's CloudFormation
    left them out on create), and the local runtime puts those layers' folders on the handler's path — a
    template of another checkout runs its own jobgraph, not the one running the CLI."""
    from jobgraph.localcloud.inventory import read_functions
    from jobgraph.localcloud.lambda_runtime.code import CodeStore, layer_path

    endpoint, stack = deployed
    lambda_client = endpoint.client("lambda")
    layer_names = {
        f: [
            # arn:aws:lambda:<region>:<account>:layer:<stack>-<logical id><hash>-<suffix>:<version> (moto's name)
            re.match(r"scenario-1-moto-([A-Za-z]+Layer)", layer["Arn"].split(":")[-2]).group(1)
            for layer in lambda_client.get_function_configuration(FunctionName=_function_name(stack, f))["Layers"]
        ]
        for f in ("ProcessorFunction", "SchedulerFunction")
    }
    assert layer_names == {
        "ProcessorFunction": ["CoreLayer", "ScientificLayer"],
        "SchedulerFunction": ["CoreLayer"],
    }
    store = CodeStore(ROOT / ".unused")  # source layers run from their folders: nothing is unpacked
    revisions = {r.name: r for r in read_functions().values()}
    processor = revisions[_function_name(stack, "ProcessorFunction")]
    assert [layer_path(store.folder(sha, package)) for sha, package in processor.layers] == [
        ROOT / "src", ROOT / "layers" / "scientific",
    ]  # fmt: skip
