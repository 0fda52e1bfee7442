"""The status API, the downstream triggers and the dashboard are shared template pieces (templates/shared/*.yaml)
that all three scenarios nest as applications — the same files, not copies — and that deploy with each of them.

Given each scenario's template, when it is transformed with its nested templates, then it nests exactly the
three shared files, passes every parameter they need and no other, and declares none of their resources
itself; when it is deployed into the local cloud, then the nested stacks exist, the parent's outputs come
from them, and every resource name the dashboard charts is a resource of that deployed stack.
"""

from __future__ import annotations

import itertools
import json
import re

import pytest

from jobgraph.localcloud.cloudformation.stack import deploy
from jobgraph.localcloud.server import LocalEndpoint
from jobgraph.runs.outputs import QUEUE_OUTPUTS
from jobgraph.sam.template import transform_tree
from jobgraph.services.settings import ApiSettings
from tests.iam_policy import Permission, bindings_for, is_allowed, tree_role_statements
from tests.lambda_support import ROOT

REGION, ACCOUNT = "eu-west-1", "123456789012"
SCENARIOS = {
    1: ROOT / "template.yaml",
    2: ROOT / "templates" / "scenario-2.yaml",
    3: ROOT / "templates" / "scenario-3.yaml",
}
SHARED = ROOT / "templates" / "shared"
PIECES = {
    "StatusApiStack": SHARED / "status-api.yaml",
    "TriggersStack": SHARED / "triggers.yaml",
    "DashboardStack": SHARED / "dashboard.yaml",
}
# what only the shared pieces declare: a scenario declaring one of these again would be a copy
SHARED_TYPES = {"AWS::Serverless::HttpApi", "AWS::Events::EventBus", "AWS::Events::Rule", "AWS::CloudWatch::Dashboard"}
SHARED_OUTPUTS = {"StatusApiUrl", "ApiFunctionName", "RunEventsBusName", "TriggerDlqUrl", "DashboardUrl"}


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def tree(request):
    return request.param, transform_tree(SCENARIOS[request.param], {}, REGION)


def test_every_scenario_nests_the_same_three_files(tree):
    _scenario, root = tree
    assert {logical_id: child.path for logical_id, child in root.children.items()} == PIECES
    assert all(not child.children for child in root.children.values())


def test_no_scenario_declares_a_shared_resource_itself(tree):
    _scenario, root = tree
    declared = {resource["Type"] for resource in root.template["Resources"].values()}
    assert declared & SHARED_TYPES == set()
    assert {"ApiFunction", "TriggerFunction", "Dashboard"} & set(root.template["Resources"]) == set()


def test_each_scenario_passes_what_each_piece_needs_and_nothing_else(tree):
    _scenario, root = tree
    for logical_id, child in root.children.items():
        declared = child.template.get("Parameters", {})
        required = {name for name, spec in declared.items() if "Default" not in spec}
        passed = set(root.template["Resources"][logical_id]["Properties"]["Parameters"])
        assert required <= passed <= set(declared), logical_id
        # and tags it, so the nested stack itself carries the cost allocation tags too
        tags = root.template["Resources"][logical_id]["Properties"]["Tags"]
        assert set(tags) == {"PerfTestRun", "Purpose", "Environment", "Project"}, logical_id


def test_every_scenario_outputs_the_shared_pieces(tree):
    _scenario, root = tree
    outputs = root.template["Outputs"]
    assert set(outputs) >= SHARED_OUTPUTS
    for name in SHARED_OUTPUTS:
        logical_id, attribute = outputs[name]["Value"]["Fn::GetAtt"]
        assert (
            logical_id in PIECES and attribute.removeprefix("Outputs.") in root.children[logical_id].template["Outputs"]
        )


def test_the_run_ender_of_every_scenario_may_announce_on_its_own_bus_only(tree):
    scenario, root = tree
    queues = {q: f"scenario-{scenario}-dev-{q.lower()}.fifo" for q in ("IncomingQueue", "OutgoingQueue")}
    bindings = bindings_for(
        f"scenario-{scenario}-dev-data-{ACCOUNT}", f"scenario-{scenario}-dev-jobs", queues, REGION, ACCOUNT
    )
    bus = bindings.attributes["RunEventsBus.Arn"]
    ender = "StepTaskFunction" if scenario == 3 else "SchedulerFunction"
    statements = tree_role_statements(root, ender, bindings)
    assert is_allowed(statements, Permission("events:PutEvents", bus))
    assert not is_allowed(statements, Permission("events:PutEvents", bus.replace("/runs", "/default")))


def test_the_api_reaches_its_scenarios_runner_and_nothing_else(tree):
    scenario, root = tree
    queues = {"IncomingQueue": f"scenario-{scenario}-dev-incoming.fifo"} if scenario != 3 else {}
    bindings = bindings_for(
        f"scenario-{scenario}-dev-data-{ACCOUNT}", f"scenario-{scenario}-dev-jobs", queues, REGION, ACCOUNT
    )
    bindings.refs["JobGraphStateMachine"] = machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:sfn"
    bindings.refs["StepTaskFunction"] = "scenario-3-dev-step-task"
    statements = tree_role_statements(root, "ApiFunction", bindings)
    incoming = f"arn:aws:sqs:{REGION}:{ACCOUNT}:scenario-{scenario}-dev-incoming.fifo"
    step_task = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:scenario-3-dev-step-task"
    reachable = {
        "sqs": is_allowed(statements, Permission("sqs:SendMessage", incoming)),
        "states": is_allowed(statements, Permission("states:StartExecution", machine)),
        "lambda": is_allowed(statements, Permission("lambda:InvokeFunction", step_task)),
    }
    assert reachable == {"sqs": scenario != 3, "states": scenario == 3, "lambda": scenario == 3}


# ------------------------------------------------------------------------------ deployed, locally
@pytest.fixture(scope="module")
def endpoint():
    with LocalEndpoint() as local:
        yield local


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_scenario_deploys_with_its_nested_pieces(endpoint, scenario):
    name = f"shared-s{scenario}"
    stack = deploy(endpoint, SCENARIOS[scenario], stack_name=name)
    assert len(stack.stacks) == 4 and set(PIECES) <= set(stack.physical_ids)
    outputs = stack.outputs
    assert set(outputs) >= SHARED_OUTPUTS
    assert scenario == 3 or set(outputs) >= set(QUEUE_OUTPUTS)  # what the queue run path reads
    assert outputs["ApiFunctionName"] == f"{name}-api" and outputs["RunEventsBusName"] == f"{name}-runs"
    assert outputs["TriggerDlqUrl"].endswith(f"/{name}-trigger-dlq")
    assert outputs["DashboardUrl"].endswith(f"#dashboards:name={name}-dashboard")
    assert {f"{name}-api-errors", f"{name}-trigger-dlq-messages"} <= set(stack.alarms)

    # the API function's environment, as CloudFormation resolved it, is a valid configuration for its scenario
    lambda_client = endpoint.client("lambda")
    variables = lambda_client.get_function_configuration(FunctionName=f"{name}-api")["Environment"]["Variables"]
    settings = ApiSettings(**variables)
    assert settings.scenario == scenario
    assert bool(settings.incoming_queue_url) == (scenario != 3) and bool(settings.state_machine_arn) == (scenario == 3)

    # every resource the dashboard charts exists in this stack
    body = json.loads(endpoint.client("cloudwatch").get_dashboard(DashboardName=f"{name}-dashboard")["DashboardBody"])
    charted = {kind: set() for kind in ("QueueName", "FunctionName", "ClusterName", "ServiceName", "StateMachineArn")}
    for widget in body["widgets"]:
        for metric in widget.get("properties", {}).get("metrics", []):
            names = [m for m in metric if isinstance(m, str)]
            for key, value in itertools.pairwise(names):
                if key in charted:
                    charted[key].add(value)
    queues = {url.rsplit("/", 1)[1] for url in endpoint.client("sqs").list_queues()["QueueUrls"]}
    functions = {f["FunctionName"] for f in lambda_client.list_functions()["Functions"]}
    assert charted["QueueName"] and charted["QueueName"] <= queues
    assert charted["FunctionName"] and charted["FunctionName"] <= functions
    if scenario == 2:
        ecs = endpoint.client("ecs")
        assert charted["ClusterName"] == {f"{name}-cluster"}
        assert ecs.describe_services(cluster=f"{name}-cluster", services=[f"{name}-service"])["services"]
    if scenario == 3:
        machines = {
            m["stateMachineArn"] for m in endpoint.client("stepfunctions").list_state_machines()["stateMachines"]
        }
        assert charted["StateMachineArn"] and charted["StateMachineArn"] <= machines
    assert not re.search(r"\$\{", json.dumps(body))  # nothing left unsubstituted
