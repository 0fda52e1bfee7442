"""The AWS clients the adapters talk through: one boto3 client per service and process, made on first use
(boto3 is imported then, not at a Lambda's cold start), unless the adapter was given its own. Made once even
when a batch's group threads first ask together: boto3's default session is not to be shared by threads
while it makes clients, and ten clients made at once cost a cold invocation ten times the time.

Their types come from boto3-stubs (a dev dependency: the ``mypy_boto3_*`` modules are imported only while
type checking). ``ClientFactory`` names, per service jobgraph calls, the client a ``client(service)``
callable returns; an adapter's ``client`` attribute (``LazyClient``) is typed by its annotation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from jobgraph.core.memo import shared_cache

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_mwaa import MWAAClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient


@shared_cache()
def default_client(service: str) -> Any:
    """boto3's client of ``service``; Any because the name is a plain string here: callers hold it under the
    service's client type (``LazyClient``'s annotation, a typed parameter)."""
    import boto3  # honours AWS_ENDPOINT_URL, so the local cloud needs no special code

    return boto3.client(service)  # type: ignore[call-overload]  # boto3-stubs overloads on literal names


class ClientFactory(Protocol):
    """``client(service[, region])``: that service's boto3 client (a boto3 Session's ``client`` is one)."""

    @overload
    def __call__(self, service: Literal["dynamodb"], region: str | None = None, /) -> DynamoDBClient: ...
    @overload
    def __call__(self, service: Literal["events"], region: str | None = None, /) -> EventBridgeClient: ...
    @overload
    def __call__(self, service: Literal["glue"], region: str | None = None, /) -> GlueClient: ...
    @overload
    def __call__(self, service: Literal["lambda"], region: str | None = None, /) -> LambdaClient: ...
    @overload
    def __call__(self, service: Literal["mwaa"], region: str | None = None, /) -> MWAAClient: ...
    @overload
    def __call__(self, service: Literal["s3"], region: str | None = None, /) -> S3Client: ...
    @overload
    def __call__(self, service: Literal["sns"], region: str | None = None, /) -> SNSClient: ...
    @overload
    def __call__(self, service: Literal["sqs"], region: str | None = None, /) -> SQSClient: ...
    @overload
    def __call__(self, service: Literal["ssm"], region: str | None = None, /) -> SSMClient: ...
    @overload
    def __call__(self, service: Literal["stepfunctions"], region: str | None = None, /) -> SFNClient: ...


class _Adapter[C](Protocol):
    _client: C | None


class LazyClient[C]:
    """An adapter's ``client`` attribute: the client given to its constructor (kept in ``_client``), else
    ``default_client(service)``, made when first used. ``C``, the client's type, is the attribute's annotation:
    ``client: LazyClient[SQSClient] = LazyClient("sqs")``."""

    def __init__(self, service: str):
        self.service = service

    @overload
    def __get__(self, adapter: None, owner: type | None = None) -> LazyClient[C]: ...
    @overload
    def __get__(self, adapter: _Adapter[C], owner: type | None = None) -> C: ...
    def __get__(self, adapter: _Adapter[C] | None, owner: type | None = None) -> LazyClient[C] | C:
        if adapter is None:
            return self
        if adapter._client is None:
            adapter._client = default_client(self.service)
        return adapter._client
