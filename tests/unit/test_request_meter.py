"""The local cloud's request meter: service and action of every AWS API call, billing units, origin."""

from __future__ import annotations

import json

from jobgraph.localcloud.observability.meter import HARNESS_USER_AGENT, RequestMeter, classify


def signed(service: str, **extra) -> dict:
    auth = f"AWS4-HMAC-SHA256 Credential=testing/20261126/eu-west-1/{service}/aws4_request, SignedHeaders=host"
    return {"HTTP_AUTHORIZATION": auth, "REQUEST_METHOD": "POST", "PATH_INFO": "/", **extra}


def test_service_and_action_from_what_every_sdk_sends():
    assert classify(signed("sqs", HTTP_X_AMZ_TARGET="AmazonSQS.SendMessageBatch"), b"") == ("sqs", "SendMessageBatch")
    assert classify(signed("dynamodb", HTTP_X_AMZ_TARGET="DynamoDB_20120810.PutItem"), b"") == ("dynamodb", "PutItem")
    smithy = signed("monitoring", PATH_INFO="/service/GraniteServiceVersion20100801/operation/PutMetricData")
    assert classify(smithy, b"") == ("monitoring", "PutMetricData")
    form = signed("cloudformation", CONTENT_TYPE="application/x-www-form-urlencoded")
    assert classify(form, b"Action=DescribeStacks&Version=2010-05-15") == ("cloudformation", "DescribeStacks")
    put = signed("s3", REQUEST_METHOD="PUT", PATH_INFO="/bucket/run/delays/j.parquet")
    assert classify(put, b"") == ("s3", "PutObject")
    listing = signed("s3", REQUEST_METHOD="GET", PATH_INFO="/bucket", QUERY_STRING="list-type=2&prefix=run/")
    assert classify(listing, b"") == ("s3", "ListObjectsV2")
    invoke = signed("lambda", PATH_INFO="/2015-03-31/functions/fn/invocations")
    assert classify(invoke, b"") == ("lambda", "Invoke")


def test_billing_units_and_harness_calls_kept_apart():
    meter = RequestMeter()
    meter.record(signed("sqs", HTTP_X_AMZ_TARGET="AmazonSQS.SendMessage"), b"x" * 100, 200)
    meter.record(signed("sqs", HTTP_X_AMZ_TARGET="AmazonSQS.SendMessage"), b"x" * (64 * 1024 + 1), 200)  # 2 chunks
    transaction = json.dumps({"TransactItems": [{}, {}, {}]}).encode()
    meter.record(signed("dynamodb", HTTP_X_AMZ_TARGET="DynamoDB_20120810.TransactWriteItems"), transaction, 10)
    meter.record(signed("dynamodb", HTTP_X_AMZ_TARGET="DynamoDB_20120810.GetItem"), b"{}", 5000)  # 2 x 4 KB
    harness = signed("sqs", HTTP_X_AMZ_TARGET="AmazonSQS.GetQueueAttributes", HTTP_USER_AGENT=f"x {HARNESS_USER_AGENT}")
    meter.record(harness, b"", 10)
    workload = meter.snapshot()
    assert workload["requests"] == {"sqs": {"SendMessage": 2}, "dynamodb": {"TransactWriteItems": 1, "GetItem": 1}}
    assert workload["units"] == {"sqs_requests_64kb": 3, "dynamodb_wru": 6, "dynamodb_rru": 2}
    assert workload["total_requests"] == 4
    assert meter.snapshot("harness")["requests"] == {"sqs": {"GetQueueAttributes": 1}}


def test_a_write_bills_its_item_not_its_expression_text():
    """DynamoDB bills a write by item size (1 KB units): an UpdateItem's long expressions are not stored."""
    meter = RequestMeter()
    update = signed("dynamodb", HTTP_X_AMZ_TARGET="DynamoDB_20120810.UpdateItem")
    small = {
        "Key": {"pk": {"S": "RUN#r"}, "sk": {"S": "JOB#j"}},
        "UpdateExpression": "SET " + ", ".join(f"attribute_{i} = :value_{i}" for i in range(40)),
        "ExpressionAttributeValues": {":value_1": {"S": "x" * 100}},
    }
    assert len(json.dumps(small)) > 1024
    meter.record(update, json.dumps(small).encode(), 10)
    large = {**small, "ExpressionAttributeValues": {":value_1": {"S": "x" * 1500}}}
    meter.record(update, json.dumps(large).encode(), 10)
    item = {"Item": {"pk": {"S": "p"}, "data": {"S": "y" * 2100}}}
    meter.record(signed("dynamodb", HTTP_X_AMZ_TARGET="DynamoDB_20120810.PutItem"), json.dumps(item).encode(), 10)
    assert meter.snapshot()["units"] == {"dynamodb_wru": 1 + 2 + 3}
