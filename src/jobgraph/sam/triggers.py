"""Trigger configs for deployment: read the YAML, validate it, and turn it into the template's parameters.

`TriggerConfig` carries the config as compact JSON (the function's TRIGGER_CONFIG); the Trigger*Arns lists
name exactly the resources the config targets, so the TriggerFunction's role grants one action per
configured target type on those resources and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from pydantic import ValidationError

from jobgraph.core.bounds import JsonBoundsError, loads_yaml_bounded
from jobgraph.core.errors import ConfigurationError
from jobgraph.core.loader import format_validation_error
from jobgraph.core.triggers import TriggerConfig, compact_json

# Lambda allows 4 KB of environment variables per function, shared with the other variables
MAX_CONFIG_JSON = 3500
MAX_CONFIG_FILE_BYTES = 64 * 1024  # a YAML file with comments, still far above what fits MAX_CONFIG_JSON
LOCAL_ACCOUNT = "123456789012"  # moto's


def load_trigger_config(path: Path) -> TriggerConfig:
    """YAML (or JSON) file → TriggerConfig; ConfigurationError names the file and every bad field."""
    import yaml

    try:
        with Path(path).open("rb") as handle:
            document = loads_yaml_bounded(handle.read(MAX_CONFIG_FILE_BYTES + 1), max_bytes=MAX_CONFIG_FILE_BYTES)
    except JsonBoundsError as exc:
        raise ConfigurationError(f"{path}: trigger config refused: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"{path}: trigger config is not UTF-8 text: byte {exc.start} cannot be decoded"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read trigger config: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {' '.join(str(exc).split())[:200]}") from None
    try:
        return TriggerConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigurationError(f"{path}: " + "; ".join(format_validation_error(exc))) from None


def _queue_arn(queue_url: str, region: str) -> str:
    url = urlparse(queue_url)
    account, name = url.path.strip("/").split("/")
    host = url.hostname or ""
    queue_region = host.split(".")[1] if host.startswith("sqs.") else region
    return f"arn:aws:sqs:{queue_region}:{account}:{name}"


def template_parameters(config: TriggerConfig, region: str, account: str) -> dict[str, str]:
    """The template parameters for this config (TriggerConfig + one ARN list per target type)."""
    text = compact_json(config)
    if len(text) > MAX_CONFIG_JSON:
        raise ConfigurationError(
            f"trigger config is {len(text)} bytes as JSON; Lambda's environment holds at most ~{MAX_CONFIG_JSON}"
        )
    arns: dict[str, list[str]] = {
        "TriggerEventBusArns": [],
        "TriggerQueueArns": [],
        "TriggerStateMachineArns": [],
        "TriggerGlueJobArns": [],
        "TriggerTopicArns": [],
        "TriggerMwaaRoleArns": [],
    }
    for trigger in config.triggers:
        target = trigger.target
        match target.type:
            case "eventbridge":
                arns["TriggerEventBusArns"].append(target.event_bus_arn)
            case "sqs":
                arns["TriggerQueueArns"].append(_queue_arn(target.queue_url, region))
            case "stepfunctions":
                arns["TriggerStateMachineArns"].append(target.state_machine_arn)
            case "glue":
                arns["TriggerGlueJobArns"].append(f"arn:aws:glue:{region}:{account}:job/{target.job_name}")
            case "sns":
                arns["TriggerTopicArns"].append(target.topic_arn)
            case "mwaa":
                arns["TriggerMwaaRoleArns"].append(
                    f"arn:aws:airflow:{region}:{account}:role/{target.environment_name}/{target.airflow_role}"
                )
    return {"TriggerConfig": text, **{key: ",".join(sorted(set(values))) for key, values in arns.items()}}
