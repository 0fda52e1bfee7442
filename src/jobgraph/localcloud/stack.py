"""Deploy template.yaml into moto's CloudFormation, as `sam deploy` would into AWS.

1. samtranslator transforms the SAM template offline (CodeUri/ContentUri become s3:// URIs);
2. each code folder is zipped and uploaded to a local artifacts bucket under that URI, so moto's
   Lambda sees real code packages;
3. moto's CloudFormation creates the stack (queues, DLQs, bucket, table, functions, layers, event
   source mappings, roles, topic and its KMS key, log groups, dashboard);
4. what moto's CloudFormation skips is created through the APIs: the CloudWatch alarms (properties
   resolved by moto's own intrinsic-function resolver against the stack), so their state can be read;
5. moto's own SQS→Lambda trigger is switched off (it ignores FIFO groups and ReportBatchItemFailures,
   GUIDE §7): the local runtime (runtime.py) polls each mapping's queue instead.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.core.errors import JobGraphError
from jobgraph.localcloud.server import LocalEndpoint

LOCAL_STACK_NAME = "scenario-1-local"
DEPLOY_TIMEOUT_S = 120


class DeployError(JobGraphError):
    """The template could not be deployed into the local cloud."""


@dataclass
class DeployedStack:
    name: str
    outputs: dict[str, str]
    parameters: dict[str, str]
    transformed: dict  # the CloudFormation template after the SAM transform
    root: Path  # folder of template.yaml: code paths are relative to it
    code_paths: dict[str, Path] = field(default_factory=dict)  # artifact key -> local folder
    physical_ids: dict[str, str] = field(default_factory=dict)  # logical id -> physical id
    alarms: list[str] = field(default_factory=list)

    def resources_of_type(self, resource_type: str) -> dict[str, dict]:
        return {k: v for k, v in self.transformed["Resources"].items() if v.get("Type") == resource_type}

    def logical_id_of(self, physical_id: str) -> str:
        for logical, physical in self.physical_ids.items():
            if physical == physical_id:
                return logical
        raise KeyError(physical_id)


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _artifact_locations(transformed: dict) -> list[tuple[str, str]]:
    """(bucket, key) of every function's code and layer's content in the transformed template."""
    found = []
    for resource in transformed["Resources"].values():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Lambda::Function":
            location = properties.get("Code", {})
        elif resource.get("Type") == "AWS::Lambda::LayerVersion":
            location = properties.get("Content", {})
        else:
            continue
        if "S3Bucket" in location and "S3Key" in location:
            found.append((location["S3Bucket"], location["S3Key"]))
    return found


def _parameter_values(template: dict, overrides: dict[str, str]) -> dict[str, str]:
    from jobgraph.sam.template import parameter_values

    try:  # what CloudFormation on AWS would refuse, refused here too, before anything is created
        return parameter_values(template, overrides)
    except ValueError as exc:
        raise DeployError(str(exc)) from None


def _wait_for_stack(cloudformation, name: str) -> dict:
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    while True:
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise DeployError(f"stack {name} still {status} after {DEPLOY_TIMEOUT_S} s")
        time.sleep(0.1)
    if status != "CREATE_COMPLETE":
        events = cloudformation.describe_stack_events(StackName=name).get("StackEvents", [])
        reasons = [
            f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
            for e in events
            if "FAILED" in e.get("ResourceStatus", "")
        ]
        raise DeployError(f"stack {name} ended {status}: {stack.get('StackStatusReason') or '; '.join(reasons[:5])}")
    return stack


def _moto_stack(endpoint: LocalEndpoint, name: str):
    """moto's in-process model of the stack (the server runs in this process), for intrinsic resolution."""
    from moto.cloudformation.models import cloudformation_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    return cloudformation_backends[DEFAULT_ACCOUNT_ID][endpoint.region].get_stack(name)


def create_alarms(endpoint: LocalEndpoint, stack: DeployedStack) -> list[str]:
    """Create the template's AWS::CloudWatch::Alarm resources through the CloudWatch API."""
    from moto.cloudformation.parsing import clean_json

    resource_map = _moto_stack(endpoint, stack.name).resource_map
    cloudwatch = endpoint.client("cloudwatch")
    names = []
    for logical_id, resource in stack.resources_of_type("AWS::CloudWatch::Alarm").items():
        condition = resource.get("Condition")
        if condition and not resource_map.lazy_condition_map[condition]:
            continue
        properties = clean_json(resource["Properties"], resource_map)
        properties = {k: v for k, v in properties.items() if v is not None}
        properties.setdefault("AlarmName", f"{stack.name}-{logical_id}")
        for numeric in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if numeric in properties:
                properties[numeric] = int(properties[numeric])
        properties["Threshold"] = float(properties["Threshold"])
        cloudwatch.put_metric_alarm(**properties)
        stack.physical_ids[logical_id] = properties["AlarmName"]
        names.append(properties["AlarmName"])
    return names


def deploy(
    endpoint: LocalEndpoint,
    template_path: Path,
    *,
    stack_name: str = LOCAL_STACK_NAME,
    parameters: dict[str, str] | None = None,
) -> DeployedStack:
    """Transform and deploy ``template_path`` into the local cloud; returns the stack's outputs and layout."""
    from jobgraph.sam.template import load_sam_template, transform_template

    template_path = Path(template_path).resolve()
    if not template_path.is_file():
        raise DeployError(f"{template_path}: no such template (run from the project folder or pass --template)")
    try:
        template = load_sam_template(template_path)
    except ValueError as exc:
        raise DeployError(str(exc)) from None
    values = _parameter_values(template, parameters or {})
    try:
        transformed, _code_locations = transform_template(template, values, endpoint.region, template_path.parent)
    except Exception as exc:
        raise DeployError(f"{template_path}: SAM transform failed: {exc}") from None

    root = template_path.parent
    s3 = endpoint.client("s3")
    code_paths: dict[str, Path] = {}
    for bucket, key in _artifact_locations(transformed):
        # samtemplate names each artifact after its folder relative to the template
        folder = root if key == "root" else root / key
        if not folder.is_dir():
            raise DeployError(f"{template_path}: code folder {folder} of s3://{bucket}/{key} does not exist")
        _ensure_bucket(s3, bucket, endpoint.region)
        s3.put_object(Bucket=bucket, Key=key, Body=_zip_folder(folder))
        code_paths[key] = folder

    cloudformation = endpoint.client("cloudformation")
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(transformed),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    described = _wait_for_stack(cloudformation, stack_name)
    physical_ids = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    }
    stack = DeployedStack(
        name=stack_name,
        outputs={o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
        parameters=values,
        transformed=transformed,
        root=root,
        code_paths=code_paths,
        physical_ids=physical_ids,
    )
    stack.alarms = create_alarms(endpoint, stack)
    return stack


def _ensure_bucket(s3, bucket: str, region: str) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
