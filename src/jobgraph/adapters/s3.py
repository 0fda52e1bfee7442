"""BlobStore on an S3 bucket (optionally under a prefix). boto3 is imported lazily."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobgraph.adapters.clients import LazyClient
from jobgraph.core.errors import ObjectNotFoundError, StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3BlobStore:
    client: LazyClient[S3Client] = LazyClient("s3")

    def __init__(self, bucket: str, prefix: str = "", client: S3Client | None = None):
        if not bucket:
            raise StoreError("S3 bucket name is empty")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = client

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFoundError(f"{key} not found in {self.describe()}") from None
            raise
        return response["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", ()))
        return sorted(keys)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def presigned_url(self, key: str, expires_s: int) -> str:
        """A GET URL for one object, signed with the caller's credentials (no request is made)."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.prefix + key}, ExpiresIn=expires_s
        )
