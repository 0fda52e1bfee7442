"""The local cloud's moto speed-ups change nothing but speed; its one fix makes tagged KMS keys deploy."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from jobgraph.localcloud import motopatches
from jobgraph.localcloud.stepfunctions import engine as sfn_engine


def test_lazy_queue_attributes_equal_motos_own():
    assert "lazy SQS queue attributes" in motopatches.apply()
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import Queue, sqs_backends

    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        dlq = sqs.create_queue(QueueName="d.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(
            QueueName="q.fifo",
            Attributes={
                "FifoQueue": "true",
                "VisibilityTimeout": "360",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}),
                "KmsMasterKeyId": "alias/aws/sqs",
            },
        )["QueueUrl"]
        plain = sqs.create_queue(QueueName="plain")["QueueUrl"]
        for index in range(5):
            sqs.send_message(
                QueueUrl=url, MessageBody="x", MessageGroupId=f"g{index % 2}", MessageDeduplicationId=str(index)
            )
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)  # some in flight, some visible
        backend = sqs_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"]
        for name in ("q.fifo", "d.fifo", "plain"):
            queue = backend.get_queue(name)
            assert dict(queue.attributes) == Queue.moto_attributes.fget(queue), name
        counts = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        assert counts == {"ApproximateNumberOfMessages": "3", "ApproximateNumberOfMessagesNotVisible": "2"}
        assert (
            sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=["All"])["Attributes"]["VisibilityTimeout"] == "30"
        )


def test_a_tagged_kms_key_deploys_through_cloudformation_with_its_tags():
    assert "KMS key tags from CloudFormation" in motopatches.apply()
    template = {
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "KeyPolicy": {"Version": "2012-10-17", "Statement": []},
                    "Tags": [{"Key": "Purpose", "Value": "PerformanceTesting"}, {"Key": "Project", "Value": "jg"}],
                },
            }
        }
    }
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="eu-west-1")
        cloudformation.create_stack(StackName="kms", TemplateBody=json.dumps(template))
        status = cloudformation.describe_stacks(StackName="kms")["Stacks"][0]["StackStatus"]
        assert status == "CREATE_COMPLETE"
        (resource,) = cloudformation.list_stack_resources(StackName="kms")["StackResourceSummaries"]
        tags = boto3.client("kms", region_name="eu-west-1").list_resource_tags(KeyId=resource["PhysicalResourceId"])
        assert {t["TagKey"]: t["TagValue"] for t in tags["Tags"]} == {"Purpose": "PerformanceTesting", "Project": "jg"}


def test_step_functions_patches_are_applied():
    applied = motopatches.apply()
    assert "CloudFormation state machines in the executing backend, with DefinitionSubstitutions" in applied
    assert "Step Functions Lambda tasks on the local runtime" in applied
    assert "Step Functions engine clients on the local server's port" in applied


def test_definition_substitutions_replace_only_the_names_given():
    definition = '{"A": "${Fn}", "B": "${Other}", "C": "$.path", "D": "${Fn}-x"}'
    assert sfn_engine._substitute(definition, {"Fn": "arn:1"}) == (
        '{"A": "arn:1", "B": "${Other}", "C": "$.path", "D": "arn:1-x"}'
    )


def test_a_cloudformation_state_machine_is_created_where_executions_run():
    """moto's CloudFormation would create it in the plain backend, where StartExecution never looks."""
    motopatches.apply()
    definition = {"StartAt": "S", "States": {"S": {"Type": "Pass", "Result": "${Value}", "End": True}}}
    template = {
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": "m",
                    "DefinitionString": json.dumps(definition),
                    "DefinitionSubstitutions": {"Value": "substituted"},
                    "RoleArn": "arn:aws:iam::123456789012:role/r",
                    "StateMachineType": "STANDARD",
                },
            }
        },
        "Outputs": {"Arn": {"Value": {"Ref": "Machine"}}},
    }
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        cloudformation = boto3.client("cloudformation", region_name="eu-west-1")
        cloudformation.create_stack(StackName="s", TemplateBody=json.dumps(template))
        arn = cloudformation.describe_stacks(StackName="s")["Stacks"][0]["Outputs"][0]["OutputValue"]
        sfn = boto3.client("stepfunctions", region_name="eu-west-1")
        described = sfn.describe_state_machine(stateMachineArn=arn)
        assert json.loads(described["definition"])["States"]["S"]["Result"] == "substituted"


def test_lambda_tasks_are_answered_by_the_invoker_set():
    seen = []

    def invoker(function, payload):
        seen.append((function, payload))
        return (payload["n"] > 0), {"errorType": "Boom", "errorMessage": "no"} if payload["n"] <= 0 else {"ok": 1}

    client = sfn_engine.LocalLambdaClient(invoker)
    ok = client.invoke(FunctionName="arn:aws:lambda:eu-west-1:1:function:f", Payload=b'{"n": 1}')
    assert json.loads(ok["Payload"].read()) == {"ok": 1} and "FunctionError" not in ok
    failed = client.invoke(FunctionName="f", Payload=b'{"n": 0}')
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read()) == {"errorType": "Boom", "errorMessage": "no"}
    assert seen == [("arn:aws:lambda:eu-west-1:1:function:f", {"n": 1}), ("f", {"n": 0})]


def test_dynamodb_transactions_roll_back_their_items_without_copying_the_table(monkeypatch):
    from botocore.exceptions import ClientError
    from moto.dynamodb.models.table import Table

    assert "DynamoDB transactions back up their items, not their tables" in motopatches.apply()

    def no_table_copies(self, memo):
        raise AssertionError("a transaction deep-copied its table")

    with mock_aws():
        db = boto3.client("dynamodb", region_name="eu-west-1")
        db.create_table(
            TableName="t", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
        )  # fmt: skip
        db.put_item(TableName="t", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1"}})
        monkeypatch.setattr(Table, "__deepcopy__", no_table_copies, raising=False)

        def add(key: str, condition: str | None = None) -> dict:
            update = {"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": key}},
                      "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}  # fmt: skip
            return {"Update": {**update, **({"ConditionExpression": condition} if condition else {})}}

        def items() -> dict:
            return {i["sk"]["S"]: i["n"]["N"] for i in db.scan(TableName="t")["Items"]}

        # the first two items are written before the third's condition fails: all three are as before
        with pytest.raises(ClientError, match="TransactionCanceled"):
            db.transact_write_items(TransactItems=[add("1"), add("2"), add("3", "attribute_exists(pk)")])
        assert items() == {"1": "1"}
        db.transact_write_items(TransactItems=[add("1"), add("2")])
        assert items() == {"1": "2", "2": "1"}
        with pytest.raises(ClientError, match="TransactionCanceled"):
            put = {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "4"}}}}
            db.transact_write_items(TransactItems=[add("2"), put, add("1", "n = :one")])
        assert items() == {"1": "2", "2": "1"}


def _function_f():
    """A Lambda client of the mocked account holding function ``f`` (a handler that returns its event)."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    iam = boto3.client("iam", region_name="eu-west-1")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = boto3.client("lambda", region_name="eu-west-1")
    lam.create_function(
        FunctionName="f", Runtime="python3.13", Role=role, Handler="app.handler", Code={"ZipFile": buffer.getvalue()}
    )
    return lam


def test_moto_never_starts_docker_for_a_function(monkeypatch):
    # Given the local cloud's patches, and a Docker client that would fail the test if moto made one
    assert "functions never run in moto's Docker" in motopatches.apply()
    import docker

    def no_client(*_args, **_kwargs):
        raise AssertionError("moto asked Docker to run a function")

    monkeypatch.setattr(docker, "from_env", no_client)
    monkeypatch.setattr(docker, "DockerClient", no_client)
    with mock_aws():
        lam = _function_f()
        # When it is invoked with no local runtime attached
        answer = lam.invoke(FunctionName="f", Payload=b"{}")
    # Then Lambda's error document says why, at once, and no container was asked for
    assert answer["FunctionError"]
    document = json.loads(answer["Payload"].read())
    assert document == {"errorType": "Runtime.Unavailable", "errorMessage": f"f: {motopatches.NO_DOCKER}"}


def test_motos_own_sqs_trigger_never_receives_in_a_local_server(monkeypatch):
    # Given the local server's patches, with no controller attached (none yet, or one that has stopped)
    assert "moto's own SQS trigger off" in motopatches.apply()
    with mock_aws():
        lam = _function_f()
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="q.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        lam.create_event_source_mapping(FunctionName="f", EventSourceArn=arn, BatchSize=1)
        # When a message is sent to a queue a mapping reads
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="1")
        # Then moto did not receive it for its own trigger: it is still the first receive that gets it
        got = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in got] == ["1"]


def test_dynamodb_update_expression_speed_ups_give_motos_own_answers():
    """tests/dynamodb_updates.py's updates and transactions, on moto as it is and after motopatches.apply():
    every answer (items returned, errors with their messages) and every item at the end are the same."""
    import subprocess
    import sys
    from pathlib import Path

    from jobgraph.localcloud.dynamodb import expressions

    assert set(expressions.NAMES) <= set(motopatches.apply())
    root = Path(__file__).resolve().parents[2]
    outputs = {}
    for mode in ("moto", "patched"):
        ran = subprocess.run(
            [sys.executable, "-m", "tests.dynamodb_updates", mode],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr[-2000:]
        outputs[mode] = json.loads(ran.stdout)
    assert outputs["patched"] == outputs["moto"]
    answers = [answer for _label, answer in outputs["moto"]["updates"] + outputs["moto"]["transactions"]]
    refusals = " ".join(str(answer[2]) for answer in answers if answer[0] == "refused")
    # every rule the remembered checks enforce was broken, and plenty of updates went through
    for rule in (
        '"SET" section can only be used once',
        '"REMOVE" section',
        "Two document paths overlap",
        "part of the key",
    ):
        assert rule in refusals
    assert sum(answer[0] == "ok" for answer in answers) >= 15


def test_a_parsed_update_expression_is_shared_and_never_changed_by_its_use():
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    motopatches.apply()
    expression = "SET #s = :s, a = if_not_exists(a, :s) REMOVE b ADD n :one"
    tree = UpdateExpressionParser.make(expression)
    before = pickle_of(tree)
    with mock_aws():
        db = boto3.client("dynamodb", region_name="eu-west-1")
        db.create_table(
            TableName="t", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        )  # fmt: skip
        for pk in ("1", "1", "2"):
            db.update_item(
                TableName="t", Key={"pk": {"S": pk}}, UpdateExpression=expression,
                ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": "x"}, ":one": {"N": "1"}},
            )  # fmt: skip
        assert db.get_item(TableName="t", Key={"pk": {"S": "1"}})["Item"]["n"] == {"N": "2"}
    assert UpdateExpressionParser.make(expression) is tree and pickle_of(tree) == before


def pickle_of(tree) -> bytes:
    import pickle

    return pickle.dumps(tree)
