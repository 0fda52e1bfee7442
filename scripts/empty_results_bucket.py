"""Delete every object in a stack's results bucket, so `sam delete` can remove the bucket (`make destroy`).

    python scripts/empty_results_bucket.py --config-env dev

Stack name and region come from samconfig.toml (`[<env>.global.parameters]`, falling back to
`[default.global.parameters]`); the bucket from the stack's `ResultsBucketName` output. A stack that
does not exist is reported and exits 1. Needs credentials for that account (nothing else in the
repository does); honours AWS_ENDPOINT_URL like every boto3 client.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stack_of(config_env: str, samconfig: Path = ROOT / "samconfig.toml") -> tuple[str, str]:
    """(stack name, region) of a samconfig.toml environment."""
    config = tomllib.loads(samconfig.read_text())
    merged = {
        **config.get("default", {}).get("global", {}).get("parameters", {}),
        **config.get(config_env, {}).get("global", {}).get("parameters", {}),
    }
    if config_env not in config:
        raise SystemExit(f"samconfig.toml has no environment {config_env!r}")
    return merged["stack_name"], merged["region"]


def results_bucket(stack_name: str, region: str, cloudformation=None) -> str | None:
    """The stack's ResultsBucketName output, or None if the stack does not exist."""
    import boto3
    from botocore.exceptions import ClientError

    cloudformation = cloudformation or boto3.client("cloudformation", region_name=region)
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":  # "Stack ... does not exist"
            return None
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return outputs.get("ResultsBucketName")


def empty_bucket(bucket: str, region: str, s3=None) -> int:
    """Delete all objects (and versions, should versioning ever be enabled); returns how many."""
    import boto3

    s3 = s3 or boto3.client("s3", region_name=region)
    # list everything first: deleting while paginating would shift the listing under the paginator
    keys = [
        {"Key": v["Key"], "VersionId": v["VersionId"]}
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
    ]
    for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
        batch = keys[start : start + 1000]
        response = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if response.get("Errors"):
            raise RuntimeError(f"could not delete from {bucket}: {response['Errors'][:3]}")
    return len(keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-env", default="dev", help="samconfig.toml environment (dev, prod)")
    parser.add_argument("--stack-name", help="another stack than the environment's (e.g. scenario-3-dev)")
    args = parser.parse_args(argv)
    stack_name, region = stack_of(args.config_env)
    stack_name = args.stack_name or stack_name
    bucket = results_bucket(stack_name, region)
    if bucket is None:
        print(f"stack {stack_name} ({region}) does not exist or has no ResultsBucketName output", file=sys.stderr)
        return 1
    count = empty_bucket(bucket, region)
    print(f"emptied s3://{bucket}: {count} object(s) deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
