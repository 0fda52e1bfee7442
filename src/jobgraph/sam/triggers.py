"""Workflow configs for deployment: read the YAML, validate it, derive the IAM grants it needs.

The config itself lives in S3 and is read at run time (services.triggers); what a deploy still decides is
what the TriggerFunction may call. ``template_parameters`` gives one ARN list per target type (the
Trigger*Arns parameters), so the role grants one action per configured target type on exactly those
resources; ``missing_grants`` tells ``jobgraph triggers push`` whether a new config reaches a resource the
deployed role does not grant (the one change that still needs a deploy). A grant may be an IAM pattern
(``arn:aws:glue:eu-west-1:123456789012:job/analytics-*``) to leave room for configs to come.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from jobgraph.core.bounds import loads_yaml_bounded, read_user_file
from jobgraph.core.errors import ConfigurationError
from jobgraph.core.loader import validate_document
from jobgraph.core.triggers import WorkflowConfig, queue_arn

MAX_CONFIG_FILE_BYTES = 64 * 1024  # a YAML file of workflows with comments
LOCAL_ACCOUNT = "123456789012"  # moto's
GRANT_PARAMETERS = (
    "TriggerEventBusArns",
    "TriggerQueueArns",
    "TriggerStateMachineArns",
    "TriggerGlueJobArns",
    "TriggerTopicArns",
    "TriggerMwaaRoleArns",
)


def load_trigger_config(path: Path) -> WorkflowConfig:
    """YAML (or JSON) file → WorkflowConfig; ConfigurationError names the file and every bad field."""
    import yaml

    document = read_user_file(
        path,
        loads_yaml_bounded,
        max_bytes=MAX_CONFIG_FILE_BYTES,
        limit="the limit of a trigger config",
        syntax="YAML",
        parse_errors=(yaml.YAMLError,),
        error=ConfigurationError,
    )
    return validate_document(WorkflowConfig, document, str(path))


def required_grants(config: WorkflowConfig, region: str, account: str) -> dict[str, list[str]]:
    """Per Trigger*Arns parameter, the resources this config calls (sorted, no repeats)."""
    arns: dict[str, set[str]] = {name: set() for name in GRANT_PARAMETERS}
    for _workflow, _kind, trigger in config.all_triggers():
        match trigger.type:
            case "eventbridge":
                arns["TriggerEventBusArns"].add(trigger.bus_arn(region, account))
            case "sqs":
                arns["TriggerQueueArns"].add(queue_arn(trigger.queue_url, region))
            case "sqs_mwaa":
                arns["TriggerQueueArns"].add(queue_arn(config.queue_url_of(trigger), region))
            case "step_function":
                arns["TriggerStateMachineArns"].add(trigger.arn)
            case "glue_job":
                arns["TriggerGlueJobArns"].add(
                    f"arn:aws:glue:{trigger.region or region}:{account}:job/{trigger.job_name}"
                )
            case "sns":
                arns["TriggerTopicArns"].add(trigger.topic_arn)
            case "mwaa_dag":
                arns["TriggerMwaaRoleArns"].add(
                    f"arn:aws:airflow:{trigger.region or region}:{account}:role/"
                    f"{trigger.environment_name}/{trigger.airflow_role}"
                )
    return {name: sorted(values) for name, values in arns.items()}


def template_parameters(config: WorkflowConfig, region: str, account: str) -> dict[str, str]:
    """The Trigger*Arns template parameters (comma-separated ARNs) this config needs."""
    return {name: ",".join(arns) for name, arns in required_grants(config, region, account).items()}


def _iam_pattern(pattern: str) -> re.Pattern:
    # IAM resource patterns: * any run of characters (slashes included), ? one character, nothing else special
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z")


def missing_grants(
    config: WorkflowConfig, granted: dict[str, list[str]], region: str, account: str
) -> dict[str, list[str]]:
    """Resources the config calls that the deployed grants (parameter → ARN patterns) do not cover."""
    missing: dict[str, list[str]] = {}
    for name, arns in required_grants(config, region, account).items():
        patterns = [_iam_pattern(p) for p in granted.get(name, []) if p]
        uncovered = [arn for arn in arns if not any(p.match(arn) for p in patterns)]
        if uncovered:
            missing[name] = uncovered
    return missing


# --- a deployed stack's trigger settings (jobgraph triggers push | show | approve --stack) ------------------
@dataclass(frozen=True)
class StackTriggers:
    """Where a deployed stack reads its workflow config, what its TriggerFunction may call, where approvals go."""

    stack: str
    region: str
    account: str
    bucket: str
    key: str
    parameter: str
    cache_s: float
    granted: dict[str, list[str]]  # Trigger*Arns parameter -> ARN patterns
    table: str
    bus: str | None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def stack_triggers(cloudformation, stack_name: str) -> StackTriggers:
    """The stack's outputs and parameters; ConfigurationError if it is missing or has no trigger config."""
    from botocore.exceptions import ClientError

    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        raise ConfigurationError(f"stack {stack_name}: {exc.response.get('Error', {}).get('Message', exc)}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    if "TriggerConfigBucketName" not in outputs:
        raise ConfigurationError(
            f"stack {stack_name} has no trigger config location (outputs TriggerConfigBucketName/TriggerConfigKey): "
            "deploy a template with the downstream triggers first"
        )
    _arn, _partition, _service, region, account, *_rest = stack["StackId"].split(":")
    return StackTriggers(
        stack=stack_name,
        region=region,
        account=account,
        bucket=outputs["TriggerConfigBucketName"],
        key=outputs["TriggerConfigKey"],
        parameter=outputs.get("TriggerConfigParameterName", ""),
        cache_s=float(parameters.get("TriggerConfigCacheSeconds") or 10),
        granted={name: _arn_list(parameters.get(name, "")) for name in GRANT_PARAMETERS},
        table=outputs["JobsTableName"],
        bus=outputs.get("RunEventsBusName"),
    )


def _arn_list(value: str) -> list[str]:
    """A CommaDelimitedList parameter as DescribeStacks gives it ("a,b"; moto: the list's repr "['a', 'b']")."""
    if value.startswith("[") and value.endswith("]"):
        import ast

        return [str(a) for a in ast.literal_eval(value) if a]
    return [a for a in value.split(",") if a]


def push_config(config: WorkflowConfig, where: StackTriggers, s3, ssm=None, force: bool = False) -> list[str]:
    """Upload a validated config to the stack's S3 location (and its SSM fallback with ``ssm``); lines to print.

    Refused (ConfigurationError) unless ``force`` when the deployed role does not grant a resource the config
    calls, or when a lifecycle rule of the bucket would expire the document (it would silently fall back).
    """
    from jobgraph.adapters.trigger_config import expiring_rules, put_config, put_parameter

    problems = []
    missing = missing_grants(config, where.granted, where.region, where.account)
    if missing:
        grants = {**where.granted}
        for name, arns in missing.items():
            grants[name] = sorted({*grants.get(name, []), *arns})
        line = " ".join(f"{name}={','.join(arns)}" for name, arns in grants.items() if arns)
        problems.append(  # the remedy before the long lists: a one-line error is cut at its end
            f"stack {where.stack} does not allow the TriggerFunction to call this config's {', '.join(missing)}: "
            f'push with --force, or redeploy once with these grants (make deploy PARAMS="{line}"); not granted: '
            + "; ".join(f"{name}: {', '.join(arns)}" for name, arns in missing.items())
        )
    expiring = expiring_rules(s3, where.bucket, where.key)
    if expiring:
        problems.append(
            f"lifecycle rule(s) {', '.join(expiring)} of bucket {where.bucket} would expire {where.key} (and the "
            "function would fall back silently): deploy with TriggerConfigBucket=<a bucket of yours>, or --force"
        )
    if problems and not force:
        raise ConfigurationError("; ".join(problems))
    text = json.dumps(config.model_dump(mode="json", exclude_defaults=True), indent=2) + "\n"
    lines = [f"warning: {p}" for p in problems]
    etag = put_config(s3, where.bucket, where.key, text)
    lines.append(f"pushed {where.uri} (ETag {etag}, {len(text.encode())} bytes)")
    if ssm is not None:
        version = put_parameter(ssm, where.parameter, json.dumps(config.model_dump(mode="json", exclude_defaults=True)))
        lines.append(f"and the SSM fallback {where.parameter} (version {version})")
    lines.append(
        f"takes effect for runs that end from {where.cache_s:g} s on (the trigger function's cache); no deploy needed"
    )
    return lines
