"""template.yaml deployed into the local cloud (moto's CloudFormation): what the deployed resources look like."""

from __future__ import annotations

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
