"""jobgraph.sam.template: YAML with short tags, and the offline transform's CodeUri/ContentUri contract."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from jobgraph.sam.template import ARTIFACT_BUCKET, load_template, transform_template

MINIMAL = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
Globals:
  Function:
    Runtime: python3.13
    Handler: app.handler
    CodeUri: shared/code/
Resources:
  FromGlobals:
    Type: AWS::Serverless::Function
  Own:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ./functions/own/
      Tags:
        Stage: !Ref Stage
  AlreadyInS3:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: s3://somewhere/else.zip
  Inline:
    Type: AWS::Serverless::Function
    Properties:
      InlineCode: "def handler(event, context): return 1"
  Root:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: .
  Layer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/dep
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-q"
"""


@pytest.fixture
def minimal(tmp_path) -> dict:
    path = tmp_path / "template.yaml"
    path.write_text(MINIMAL)
    return load_template(path)


def test_load_template_expands_short_tags_into_plain_values(minimal):
    assert minimal["Resources"]["Queue"]["Properties"]["QueueName"] == {"Fn::Sub": "${AWS::StackName}-q"}
    assert minimal["Resources"]["Own"]["Properties"]["Tags"] == {"Stage": {"Ref": "Stage"}}
    assert type(minimal) is dict and type(minimal["Resources"]["Own"]["Properties"]["CodeUri"]) is str
    assert json.loads(json.dumps(minimal)) == minimal


def test_transform_rewrites_local_code_and_reports_where_it_lives(minimal):
    before = copy.deepcopy(minimal)
    transformed, locations = transform_template(minimal, {"Stage": "prod"}, "eu-west-1")
    assert minimal == before  # the input is not modified
    assert locations == {
        "FromGlobals": "shared/code",
        "Own": "functions/own",
        "Root": ".",
        "Layer": "layers/dep",
    }
    resources = transformed["Resources"]
    code = {k: resources[k]["Properties"]["Code"] for k in ("FromGlobals", "Own", "Root", "AlreadyInS3")}
    assert code == {
        "FromGlobals": {"S3Bucket": ARTIFACT_BUCKET, "S3Key": "shared/code"},
        "Own": {"S3Bucket": ARTIFACT_BUCKET, "S3Key": "functions/own"},
        "Root": {"S3Bucket": ARTIFACT_BUCKET, "S3Key": "root"},
        "AlreadyInS3": {"S3Bucket": "somewhere", "S3Key": "else.zip"},
    }
    assert "ZipFile" in resources["Inline"]["Properties"]["Code"]
    (layer,) = [r for r in resources.values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert layer["Properties"]["Content"] == {"S3Bucket": ARTIFACT_BUCKET, "S3Key": "layers/dep"}


def test_transform_uses_the_given_region_and_bundled_managed_policies(minimal, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    transformed, _ = transform_template(minimal, {}, "eu-central-1")
    role = transformed["Resources"]["OwnRole"]["Properties"]
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]


def test_an_unbundled_managed_policy_name_fails_instead_of_calling_iam(minimal):
    minimal["Resources"]["Own"]["Properties"]["Policies"] = ["NoSuchManagedPolicyAnywhere"]
    with pytest.raises(ValueError, match="bundled map"):
        transform_template(minimal, {}, "eu-west-1")


def test_importing_the_module_does_not_import_boto3():
    code = "import sys, jobgraph.sam.template; print('boto3' in sys.modules, 'samtranslator' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
