"""scripts/empty_results_bucket.py (`make destroy`'s first step) against moto's CloudFormation and S3."""

from __future__ import annotations

import importlib.util
import json

import boto3
import pytest
from moto import mock_aws

from tests.lambda_support import ROOT

REGION = "eu-west-1"
STACK = {
    "Resources": {"ResultsBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "scenario-1-dev-data"}}},
    "Outputs": {"ResultsBucketName": {"Value": {"Ref": "ResultsBucket"}}},
}


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("empty_results_bucket", ROOT / "scripts" / "empty_results_bucket.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stack_and_region_come_from_samconfig(script):
    assert script.stack_of("dev") == ("scenario-1-dev", "eu-west-1")
    assert script.stack_of("prod") == ("scenario-1-prod", "eu-west-1")
    with pytest.raises(SystemExit, match="qa"):
        script.stack_of("qa")


@mock_aws
def test_empties_the_stacks_results_bucket_in_batches(script, capsys):
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="scenario-1-dev", TemplateBody=json.dumps(STACK)
    )
    s3 = boto3.client("s3", region_name=REGION)
    for i in range(1003):  # more than one DeleteObjects batch
        s3.put_object(Bucket="scenario-1-dev-data", Key=f"run/delays/{i}.parquet", Body=b"x")
    assert script.main(["--config-env", "dev"]) == 0
    assert s3.list_objects_v2(Bucket="scenario-1-dev-data")["KeyCount"] == 0
    assert "1003 object(s) deleted" in capsys.readouterr().out


@mock_aws
def test_a_missing_stack_is_reported(script, capsys):
    assert script.main(["--config-env", "prod"]) == 1
    assert "scenario-1-prod" in capsys.readouterr().err
