"""Deploy template.yaml into moto's CloudFormation, as `sam deploy` would into AWS.

1. samtranslator transforms the SAM template offline (CodeUri/ContentUri become s3:// URIs);
2. each code folder is zipped and uploaded to a local artifacts bucket under that URI, so moto's
   Lambda sees real code packages;
3. moto's CloudFormation creates the stack (queues, DLQs, bucket, table, functions, layers, event
   source mappings, roles, topic and its KMS key, log groups, dashboard);
4. what moto's CloudFormation skips is created through the APIs: the CloudWatch alarms (properties
   resolved by moto's own intrinsic-function resolver against the stack), so their state can be read;
5. moto's own SQS→Lambda trigger is off in every local server (it ignores FIFO groups and
   ReportBatchItemFailures, GUIDE §7; motopatches 7): the local runtime polls each mapping's queue instead.

Nested applications (the shared pieces under templates/shared/) are transformed too and uploaded as
templates to the artifacts bucket, their stack resources pointed at them, as `sam deploy` does on AWS;
moto's CloudFormation creates them as nested stacks. ``DeployedStack`` shows the parent and its nested
stacks as one: their resources, physical ids and alarms together (logical ids are unique across them).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.core.errors import JobGraphError
from jobgraph.localcloud.cloudformation import changesets
from jobgraph.localcloud.lambda_runtime.code import register_source
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
    # stack name -> its transformed template: this stack and every nested one (the shared pieces)
    stacks: dict[str, dict] = field(default_factory=dict)

    def resources_of_type(self, resource_type: str) -> dict[str, dict]:
        return {k: v for k, v in self.transformed["Resources"].items() if v.get("Type") == resource_type}


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
    from jobgraph.sam.parameters import parameter_values

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


def alarm_definitions(moto_stack) -> list[tuple[str, dict]]:
    """(logical id, PutMetricAlarm arguments) of each AWS::CloudWatch::Alarm of a stack moto deployed, its
    properties resolved by moto's own intrinsic-function resolver (moto's CloudFormation skips alarms).

    Call it holding the server's lock: it reads moto's model of the stack."""
    from moto.cloudformation.parsing import clean_json

    resource_map = moto_stack.resource_map
    found = []
    for logical_id, resource in (moto_stack.template_dict.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        condition = resource.get("Condition")
        if condition and not resource_map.lazy_condition_map[condition]:
            continue
        properties = clean_json(resource["Properties"], resource_map)
        properties = {k: v for k, v in properties.items() if v is not None}
        properties.setdefault("AlarmName", f"{moto_stack.name}-{logical_id}")
        for numeric in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if numeric in properties:
                properties[numeric] = int(properties[numeric])
        properties["Threshold"] = float(properties["Threshold"])
        found.append((logical_id, properties))
    return found


def create_alarms(endpoint: LocalEndpoint, stack: DeployedStack) -> list[str]:
    """Create the AWS::CloudWatch::Alarm resources of the stack and its nested stacks through the CloudWatch API,
    unless the local cloud's controller stabilised the stack: it made them then (observability/control.py)."""
    cloudwatch = None if changesets.has_listener() else endpoint.client("cloudwatch")
    names = []
    for stack_name in stack.stacks or [stack.name]:
        for logical_id, properties in alarm_definitions(_moto_stack(endpoint, stack_name)):
            if cloudwatch is not None:
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
    from jobgraph.sam.template import load_sam_template, transform_tree

    template_path = Path(template_path).resolve()
    if not template_path.is_file():
        raise DeployError(f"{template_path}: no such template (run from the project folder or pass --template)")
    try:
        template = load_sam_template(template_path)
    except ValueError as exc:
        raise DeployError(str(exc)) from None
    values = _parameter_values(template, parameters or {})
    try:
        tree = transform_tree(template_path, values, endpoint.region)
    except Exception as exc:
        raise DeployError(f"{template_path}: SAM transform failed: {exc}") from None
    transformed = tree.transformed

    root = template_path.parent
    s3 = endpoint.client("s3")
    code_paths: dict[str, Path] = {}
    buckets: set[str] = set()  # those known to exist: one head_bucket each, not one per artifact
    for _trail, node in tree.walk():
        for bucket, key in _artifact_locations(node.transformed):
            # samtemplate names each artifact after its folder relative to the (root) template
            folder = root if key == "root" else root / key
            if not folder.is_dir():
                raise DeployError(f"{node.path}: code folder {folder} of s3://{bucket}/{key} does not exist")
            _ensure_bucket(s3, bucket, endpoint.region, buckets)
            if key not in code_paths:
                package = _zip_folder(folder)
                register_source(package, folder)  # the local runtime runs this package from the folder itself
                s3.put_object(Bucket=bucket, Key=key, Body=package)
            code_paths[key] = folder
    _upload_nested_templates(s3, tree, stack_name, buckets)

    cloudformation = endpoint.client("cloudformation")
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(transformed),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    described = _wait_for_stack(cloudformation, stack_name)
    stacks, physical_ids, resources = {}, {}, {}
    pending = [(stack_name, tree, {})]
    while pending:
        name, node, passed = pending.pop()
        stacks[name] = node.transformed
        resources.update(_with_parent_layers(node.transformed["Resources"], passed, _moto_stack(endpoint, name)))
        listed = cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
        physical_ids.update({r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in listed})
        pending += [
            (physical_ids[logical_id], child, node.transformed["Resources"][logical_id]["Properties"]["Parameters"])
            for logical_id, child in node.children.items()
        ]
    if len(resources) != sum(len(t["Resources"]) for t in stacks.values()):
        raise DeployError(f"{template_path}: a logical id is used in more than one of its nested templates")
    stack = DeployedStack(
        name=stack_name,
        outputs={o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
        parameters=values,
        transformed={**transformed, "Resources": resources},
        root=root,
        code_paths=code_paths,
        physical_ids=physical_ids,
        stacks=stacks,
    )
    stack.alarms = create_alarms(endpoint, stack)
    return stack


def _with_parent_layers(resources: dict, passed: dict, moto_stack) -> dict:
    """A nested stack's functions get their layers as parameters (``CoreLayerArn: !Ref CoreLayer``): in the
    merged view their ``Layers`` name the parent's layer resources, as the runtime finds layer folders by
    logical id (moto keeps no layer ARNs to match). Conditions are the nested stack's as moto evaluated them."""
    from jobgraph.sam.template import nested_function_layers

    if not passed:
        return resources
    holds = moto_stack.resource_map.lazy_condition_map.__getitem__
    merged = {}
    for logical_id, resource in resources.items():
        layers = resource.get("Properties", {}).get("Layers")
        if resource.get("Type") == "AWS::Lambda::Function" and layers:
            layers = nested_function_layers(layers, passed, holds)
            resource = {**resource, "Properties": {**resource["Properties"], "Layers": layers}}
        merged[logical_id] = resource
    return merged


def _upload_nested_templates(s3, tree, stack_name: str, buckets: set[str]) -> None:
    """Each nested template (transformed) into the artifacts bucket, its stack resource pointed at it.

    moto's CloudFormation reads a nested stack's TemplateURL from its own S3 and applies no transform, so
    it gets the transformed child, as CloudFormation does after the child's own SAM transform on AWS."""
    from jobgraph.sam.template import ARTIFACT_BUCKET

    for trail, node in reversed(list(tree.walk())):
        for logical_id, child in node.children.items():
            key = f"templates/{stack_name}/{'/'.join((*trail, logical_id))}.json"
            _ensure_bucket(s3, ARTIFACT_BUCKET, s3.meta.region_name, buckets)
            s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=json.dumps(child.transformed).encode())
            node.transformed["Resources"][logical_id]["Properties"]["TemplateURL"] = (
                f"https://s3.amazonaws.com/{ARTIFACT_BUCKET}/{key}"
            )


def _ensure_bucket(s3, bucket: str, region: str, buckets: set[str]) -> None:
    """``bucket`` made if it does not exist yet, unless ``buckets`` (those seen this deploy) has it already."""
    from botocore.exceptions import ClientError

    if bucket in buckets:
        return
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    buckets.add(bucket)
