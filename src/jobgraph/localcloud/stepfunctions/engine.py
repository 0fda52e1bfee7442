"""Step Functions, locally: moto's ASL engine running a deployed stack's state machines.

moto >= 5 executes state machines with its ASL engine (moto/stepfunctions/parser, LocalStack's) when
``execute_state_machine`` is configured (GUIDE §7). Three gaps stand between that engine and a stack
deployed by moto's CloudFormation, and this module closes them (``motopatches.apply()`` applies it with the
other moto patches):

1. CloudFormation creates ``AWS::StepFunctions::StateMachine`` in moto's plain (non-executing) backend
   and ignores ``DefinitionSubstitutions``, ``StateMachineType``, ``LoggingConfiguration`` and
   ``TracingConfiguration``: ``create_state_machine_from_cloudformation`` creates it where the API
   looks it up, with the substitutions applied as CloudFormation applies them.
2. The engine's own clients (ItemReader's s3:GetObject, the dynamodb:updateItem integration) call
   ``localhost:$MOTO_PORT``: they are pointed at this server's port.
3. Its lambda:invoke tasks call moto's Lambda, which runs code only in Docker: they go to the invoker
   set with ``set_lambda_invoker`` (the local Lambda runtime) instead.
"""

from __future__ import annotations

import json
from typing import Any

_SFN: dict[str, Any] = {"port": None, "invoker": None, "config": None}


class LocalLambdaClient:
    """The one call the ASL engine makes on its Lambda client (``invoke``), answered by the local runtime.

    The invoker gets (function name or ARN, decoded JSON payload) and returns (ok, result): the
    function's result, or on failure an ``{"errorType", "errorMessage"}`` document, which Step Functions
    turns into the task's error name (matched by ``States.TaskFailed`` retriers).
    """

    def __init__(self, invoker):
        self._invoker = invoker

    def invoke(self, **parameters) -> dict:
        import io

        payload = parameters.get("Payload") or b"{}"
        ok, result = self._invoker(parameters["FunctionName"], json.loads(payload))
        response = {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": io.BytesIO(json.dumps(result).encode())}
        if not ok:
            response["FunctionError"] = "Unhandled"
        return response


def set_lambda_invoker(invoker) -> None:
    """Route the state machines' Lambda tasks to ``invoker(function, payload) -> (ok, result)`` (None: unset)."""
    _SFN["invoker"] = invoker


def _substitute(definition: str, substitutions: dict) -> str:
    import re

    def value(match):
        name = match.group(1)
        return str(substitutions[name]) if name in substitutions else match.group(0)

    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", value, definition)


def create_state_machine_from_cloudformation(cls, resource_name, cloudformation_json, account_id, region_name, **_kw):
    from moto.stepfunctions.responses import get_backend
    from moto.stepfunctions.utils import cfn_to_api_tags

    properties = cloudformation_json["Properties"]
    definition = properties.get("DefinitionString") or properties.get("Definition") or ""
    if "DefinitionS3Location" in properties:  # `sam package` uploaded the definition file
        definition = _s3_definition(properties["DefinitionS3Location"], account_id, region_name)
    if not isinstance(definition, str):
        definition = json.dumps(definition)
    backend = get_backend(account_id, region_name)
    return backend.create_state_machine(
        name=properties.get("StateMachineName", resource_name),
        definition=_substitute(definition, properties.get("DefinitionSubstitutions") or {}),
        roleArn=properties.get("RoleArn", ""),
        tags=cfn_to_api_tags(properties.get("Tags", [])),
        loggingConfiguration=properties.get("LoggingConfiguration"),
        tracingConfiguration=properties.get("TracingConfiguration"),
        sm_type=properties.get("StateMachineType"),
    )


def _s3_definition(location: dict, account_id: str, region_name: str) -> str:
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    found = s3_backends[account_id][get_partition(region_name)].get_object(
        location["Bucket"], location["Key"], version_id=location.get("Version")
    )
    text = found.value.decode("utf-8")
    try:
        return json.dumps(json.loads(text))
    except ValueError:  # a YAML definition
        from jobgraph.localcloud.cloudformation.templates import parse_template

        return json.dumps(parse_template(text))


def enable_step_functions(port: int) -> None:
    """Let the in-process server execute state machines (undone by ``disable_step_functions``)."""
    from moto.core.config import default_user_config

    if _SFN["config"] is None:
        _SFN["config"] = dict(default_user_config.get("stepfunctions", {}))
    default_user_config["stepfunctions"] = {**_SFN["config"], "execute_state_machine": True}
    _SFN["port"] = port


def disable_step_functions() -> None:
    from moto.core.config import default_user_config

    if _SFN["config"] is not None:
        default_user_config["stepfunctions"] = _SFN["config"]
        _SFN["config"] = None
    _SFN["port"] = None
    _SFN["invoker"] = None


def apply() -> list[str]:
    """Patch moto's Step Functions engine; returns what it applied (nothing where moto has another shape)."""
    applied = []
    from moto.stepfunctions.models import StateMachine

    if hasattr(StateMachine, "create_from_cloudformation_json"):
        StateMachine.create_from_cloudformation_json = classmethod(create_state_machine_from_cloudformation)
        applied.append("CloudFormation state machines in the executing backend, with DefinitionSubstitutions")
    try:
        from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
        from moto.stepfunctions.parser.asl.utils import boto_client
    except ImportError:  # an engine of another shape: leave it alone
        return applied
    if callable(getattr(boto_client, "moto_server_port", None)):
        default_port = boto_client.moto_server_port
        boto_client.moto_server_port = lambda: str(_SFN["port"]) if _SFN["port"] else default_port()
        applied.append("Step Functions engine clients on the local server's port")
    if callable(getattr(lambda_eval_utils, "boto_client_for", None)):
        engine_client = lambda_eval_utils.boto_client_for

        def client_for(region, service, state_credentials=None):
            if service == "lambda" and _SFN["invoker"] is not None:
                return LocalLambdaClient(_SFN["invoker"])
            return engine_client(region=region, service=service, state_credentials=state_credentials)

        lambda_eval_utils.boto_client_for = client_for
        applied.append("Step Functions Lambda tasks on the local runtime")
    return applied
