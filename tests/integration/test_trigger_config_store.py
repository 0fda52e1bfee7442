"""The workflow config at run time on moto: S3 document, else SSM parameter, else the template default (seed 003's
order), re-read after the cache time (a 304 when unchanged), and `push` refusing what would not take effect."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from jobgraph.adapters.trigger_config import TriggerConfigStore, expiring_rules
from jobgraph.core.errors import ConfigurationError
from jobgraph.core.triggers import WorkflowConfig
from jobgraph.sam.triggers import StackTriggers, push_config

REGION = "eu-west-1"
GLUE = {"type": "glue_job", "job_name": "load"}


def document(job: str) -> dict:
    return {"workflows": {job: {"on_success": [GLUE]}}}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """boto3 clients on moto, counting GetObject calls and their 304s."""

    def __init__(self):
        self.clients = {s: boto3.client(s, region_name=REGION) for s in ("s3", "ssm")}
        self.gets = 0
        self.not_modified = 0
        self.clients["s3"].meta.events.register("after-call.s3.GetObject", self._count)

    def _count(self, http_response, **_):
        self.gets += 1
        self.not_modified += http_response.status_code == 304

    def __call__(self, service: str):
        return self.clients[service]


@pytest.fixture
def aws():
    with mock_aws():
        clients = Counting()
        clients("s3").create_bucket(Bucket="configs", CreateBucketConfiguration={"LocationConstraint": REGION})
        yield clients


def store(aws, clock=None, cache_s=10.0, default=None) -> TriggerConfigStore:
    return TriggerConfigStore(
        "configs", "config/triggers.json", "/jobgraph/stack/trigger-config",
        json.dumps(default or document("from-default")), cache_s, client=aws, clock=clock or Clock(),
    )  # fmt: skip


def put_s3(aws, body) -> None:
    aws("s3").put_object(
        Bucket="configs",
        Key="config/triggers.json",
        Body=body if isinstance(body, bytes) else json.dumps(body).encode(),
    )


def test_s3_first_then_ssm_then_the_default_each_skip_said_why(aws):
    loaded = store(aws).load()
    assert loaded.source == "default" and list(loaded.config.workflows) == ["from-default"]
    assert loaded.skipped == [
        "s3://configs/config/triggers.json: NoSuchKey",
        "ssm:/jobgraph/stack/trigger-config: ParameterNotFound",
    ]
    aws("ssm").put_parameter(
        Name="/jobgraph/stack/trigger-config", Value=json.dumps(document("from-ssm")), Type="String"
    )
    loaded = store(aws).load()
    assert loaded.source == "ssm:/jobgraph/stack/trigger-config" and list(loaded.config.workflows) == ["from-ssm"]
    put_s3(aws, document("from-s3"))
    loaded = store(aws).load()
    assert loaded.source == "s3://configs/config/triggers.json" and list(loaded.config.workflows) == ["from-s3"]
    assert loaded.version and loaded.skipped == []


def test_an_invalid_document_falls_back_naming_the_bad_field(aws):
    put_s3(aws, {"workflows": {"j": {"on_success": [{"type": "glue_job"}]}}})
    aws("ssm").put_parameter(Name="/jobgraph/stack/trigger-config", Value="{not json", Type="String")
    loaded = store(aws).load()
    assert loaded.source == "default"
    assert "workflows.j.on_success[0].glue_job.job_name: required field is missing" in loaded.skipped[0]
    assert "not JSON" in loaded.skipped[1]


def test_a_pushed_change_is_read_after_the_cache_time_and_an_unchanged_one_costs_a_304(aws):
    clock = Clock()
    put_s3(aws, document("first"))
    configs = store(aws, clock, cache_s=10)
    assert list(configs.current().config.workflows) == ["first"] and aws.gets == 1
    put_s3(aws, document("second"))
    clock.now = 9.9
    assert list(configs.current().config.workflows) == ["first"] and aws.gets == 1  # cached
    clock.now = 10.0
    assert list(configs.current().config.workflows) == ["second"] and aws.gets == 2
    clock.now = 20.0
    assert list(configs.current().config.workflows) == ["second"] and aws.not_modified == 1  # If-None-Match


def test_a_bad_default_is_a_configuration_error_at_start():
    with pytest.raises(ValueError, match="default"):
        TriggerConfigStore("b", "k", "", '{"triggers": []}')


def where(**changes) -> StackTriggers:
    values = dict(stack="s1", region=REGION, account="123456789012", bucket="configs", key="config/triggers.json",
                  parameter="/jobgraph/s1/trigger-config", cache_s=10, table="jobs", bus="s1-runs",
                  granted={"TriggerGlueJobArns": ["arn:aws:glue:eu-west-1:123456789012:job/*"]})  # fmt: skip
    return StackTriggers(**{**values, **changes})


def test_push_uploads_the_validated_config_and_its_ssm_fallback(aws):
    config = WorkflowConfig.model_validate(document("nightly"))
    lines = push_config(config, where(), aws("s3"), aws("ssm"))
    assert lines[0].startswith("pushed s3://configs/config/triggers.json (ETag ")
    assert "takes effect for runs that end from 10 s on" in lines[-1]
    assert store(aws).load().config == config
    parameter = aws("ssm").get_parameter(Name="/jobgraph/s1/trigger-config")["Parameter"]
    assert WorkflowConfig.model_validate_json(parameter["Value"]) == config


def test_push_refuses_a_target_the_deployed_role_cannot_call(aws):
    config = WorkflowConfig.model_validate(
        {"workflows": {"j": {"on_success": [{"type": "sns", "topic_arn": "arn:aws:sns:eu-west-1:123456789012:t"}]}}}
    )
    with pytest.raises(ConfigurationError) as refused:
        push_config(config, where(), aws("s3"))
    # the remedy first: the CLI's one-line error is cut at its end, and the list of ARNs can be long
    assert str(refused.value).startswith(
        "stack s1 does not allow the TriggerFunction to call this config's TriggerTopicArns: push with --force, "
        "or redeploy once with these grants (make deploy PARAMS="
        '"TriggerGlueJobArns=arn:aws:glue:eu-west-1:123456789012:job/* TriggerTopicArns=arn:aws:sns:eu-west-1:123456789012:t")'
    )
    assert str(refused.value).endswith("not granted: TriggerTopicArns: arn:aws:sns:eu-west-1:123456789012:t")
    assert store(aws).load().source == "default"  # nothing was uploaded
    assert "warning:" in push_config(config, where(), aws("s3"), force=True)[0]


def test_push_refuses_a_bucket_whose_lifecycle_would_expire_the_config(aws):
    aws("s3").put_bucket_lifecycle_configuration(
        Bucket="configs",
        LifecycleConfiguration={"Rules": [{"ID": "expire-results", "Status": "Enabled", "Filter": {"Prefix": ""},
                                           "Expiration": {"Days": 30}}]},
    )  # fmt: skip
    assert expiring_rules(aws("s3"), "configs", "config/triggers.json") == ["expire-results"]
    with pytest.raises(ConfigurationError, match=r"expire-results.*TriggerConfigBucket"):
        push_config(WorkflowConfig.model_validate(document("j")), where(), aws("s3"))
    assert expiring_rules(aws("s3"), "configs", "other/prefix.json") == ["expire-results"]
    aws("s3").put_bucket_lifecycle_configuration(
        Bucket="configs",
        LifecycleConfiguration={"Rules": [{"ID": "runs-only", "Status": "Enabled", "Filter": {"Prefix": "runs/"},
                                           "Expiration": {"Days": 30}}]},
    )  # fmt: skip
    assert expiring_rules(aws("s3"), "configs", "config/triggers.json") == []
