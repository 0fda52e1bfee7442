"""Where the workflow config lives at run time: an S3 document, else an SSM parameter, else the template's default.

Seed 003's order. The TriggerFunction re-reads it after ``cache_s`` seconds (a conditional GET with the
last ETag: an unchanged document costs a 304 and no parsing), so ``jobgraph triggers push`` takes effect
without a deploy. A source that is missing, unreadable or invalid is skipped with the reason recorded
(logged by the caller, shown by ``jobgraph triggers show``); the default always parses, because the
template's parameter is validated when it is written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jobgraph.adapters.clients import ClientFactory, default_client
from jobgraph.core.loader import validate_document
from jobgraph.core.triggers import WorkflowConfig

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectRequestTypeDef
    from mypy_boto3_ssm import SSMClient

JSON = "application/json"


@dataclass(frozen=True)
class LoadedConfig:
    config: WorkflowConfig
    source: str  # s3://bucket/key, ssm:/name or "default"
    version: str | None = None  # the S3 ETag, the SSM parameter version
    skipped: list[str] = field(default_factory=list)  # why earlier sources were not used


def parse_document(text: str | bytes, source: str) -> WorkflowConfig:
    """JSON text → config; ValueError naming the source and each bad field."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source}: not JSON ({exc})") from None
    return validate_document(WorkflowConfig, document, source, ValueError)


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__))


class TriggerConfigStore:
    """The config in effect, from the first source that has a valid one; cached for ``cache_s`` seconds."""

    def __init__(
        self,
        bucket: str,
        key: str,
        parameter: str,
        default_json: str,
        cache_s: float = 10.0,
        client: ClientFactory = default_client,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.bucket, self.key, self.parameter = bucket, key, parameter
        self.default = parse_document(default_json or "{}", "default (TriggerConfig parameter)")
        self.cache_s, self.client, self.clock = cache_s, client, clock
        self._loaded: LoadedConfig | None = None
        self._read_at = float("-inf")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def current(self) -> LoadedConfig:
        if self._loaded is None or self.clock() - self._read_at >= self.cache_s:
            self._loaded = self.load()
            self._read_at = self.clock()
        return self._loaded

    def load(self) -> LoadedConfig:
        skipped: list[str] = []
        if self.bucket and self.key:
            loaded = self._from_s3(skipped)
            if loaded is not None:
                return loaded
        if self.parameter:
            loaded = self._from_ssm(skipped)
            if loaded is not None:
                return loaded
        return LoadedConfig(self.default, "default", None, skipped)

    def _from_s3(self, skipped: list[str]) -> LoadedConfig | None:
        from botocore.exceptions import BotoCoreError, ClientError

        previous = self._loaded if self._loaded and self._loaded.source == self.uri else None
        request: GetObjectRequestTypeDef = {"Bucket": self.bucket, "Key": self.key}
        if previous and previous.version:
            request["IfNoneMatch"] = previous.version
        try:
            response = self.client("s3").get_object(**request)
        except ClientError as exc:
            if previous is not None and _error_code(exc) in ("304", "NotModified"):
                return LoadedConfig(previous.config, self.uri, previous.version)
            skipped.append(f"{self.uri}: {_error_code(exc)}")
            return None
        except BotoCoreError as exc:
            skipped.append(f"{self.uri}: {exc}")
            return None
        try:
            config = parse_document(response["Body"].read(), self.uri)
        except ValueError as exc:
            skipped.append(str(exc))
            return None
        return LoadedConfig(config, self.uri, response.get("ETag"), skipped)

    def _from_ssm(self, skipped: list[str]) -> LoadedConfig | None:
        from botocore.exceptions import BotoCoreError, ClientError

        source = f"ssm:{self.parameter}"
        try:
            parameter = self.client("ssm").get_parameter(Name=self.parameter, WithDecryption=True)["Parameter"]
        except ClientError as exc:
            skipped.append(f"{source}: {_error_code(exc)}")
            return None
        except BotoCoreError as exc:
            skipped.append(f"{source}: {exc}")
            return None
        try:
            config = parse_document(parameter["Value"], source)
        except ValueError as exc:
            skipped.append(str(exc))
            return None
        return LoadedConfig(config, source, str(parameter.get("Version")), list(skipped))


def put_config(s3: S3Client, bucket: str, key: str, text: str) -> str:
    """Upload a (validated) config document; returns its ETag (and version id, if the bucket keeps versions)."""
    response = s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType=JSON)
    version = response.get("VersionId")
    return response["ETag"] + (f" (version {version})" if version else "")


def put_parameter(ssm: SSMClient, name: str, text: str) -> int:
    """The SSM fallback copy: Intelligent-Tiering picks Standard (4 KB) or Advanced (8 KB) by size."""
    response = ssm.put_parameter(Name=name, Value=text, Type="String", Overwrite=True, Tier="Intelligent-Tiering")
    return int(response["Version"])


def expiring_rules(s3: S3Client, bucket: str, key: str) -> list[str]:
    """Lifecycle rules of the bucket that would expire the config object (an expired config silently falls back)."""
    from botocore.exceptions import ClientError

    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except ClientError as exc:
        if _error_code(exc) == "NoSuchLifecycleConfiguration":
            return []
        raise
    hits = []
    for rule in rules:
        if rule.get("Status") != "Enabled" or "Expiration" not in rule:
            continue
        scope = rule.get("Filter", {})
        prefix = scope.get("Prefix", scope.get("And", {}).get("Prefix", rule.get("Prefix", "")))
        tagged = "Tag" in scope or "Tags" in scope.get("And", {})
        if key.startswith(prefix or "") and not tagged:
            hits.append(rule.get("ID", "(unnamed rule)"))
    return hits
