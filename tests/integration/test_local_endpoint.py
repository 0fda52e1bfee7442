"""The local cloud's server: extra listeners for containers serve the same backends as loopback."""

from __future__ import annotations

import urllib.request

import boto3
import pytest

from jobgraph.localcloud.server import LocalEndpoint


def test_container_listener_serves_the_same_backends():
    """What a container writes through the extra listener, this process reads on loopback."""
    # 127.0.0.2 stands in for a Docker network's gateway: a second local address (and loopback, so the
    # test suite's connection guard lets it through)
    with LocalEndpoint(container_hosts=("127.0.0.2",)) as endpoint:
        url = endpoint.container_url("127.0.0.2")
        assert url.startswith("http://127.0.0.2:")
        s3 = boto3.client("s3", endpoint_url=url, region_name="eu-west-1")
        s3.create_bucket(Bucket="via-gateway", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        assert [b["Name"] for b in endpoint.client("s3").list_buckets()["Buckets"]] == ["via-gateway"]
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=10) as response:
            assert response.status == 200


def test_an_address_that_is_not_local_cannot_be_served():
    with (
        pytest.raises(OSError, match=r"cannot listen on 192\.0\.2\.123"),
        LocalEndpoint(container_hosts=("192.0.2.123",)),
    ):
        pass
