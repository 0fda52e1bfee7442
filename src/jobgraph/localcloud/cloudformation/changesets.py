"""CloudFormation as the real SAM CLI uses it, on moto's server (patched in-process, like motopatches).

A probe showed `sam deploy` against a plain moto server uploads its artifacts, then fails in CreateChangeSet
(moto reads the bucket of the path-style TemplateURL `http://127.0.0.1:<port>/<bucket>/<key>` from the host
name) and that moto applies no `AWS::Serverless-2016-10-31` transform. What CloudFormation does and moto does
not, done here:

1. **Template locations** (templates.py): a TemplateURL (and a nested stack's) in every form S3 is addressed by —
   ``s3://bucket/key``, path style on any endpoint (``http://127.0.0.1:4566/bucket/key``,
   ``https://s3.eu-west-1.amazonaws.com/bucket/key``, ``https://s3-eu-west-1.amazonaws.com/...``), virtual-hosted
   (``https://bucket.s3.amazonaws.com/key``, ``bucket.s3.eu-west-1.amazonaws.com``, ``bucket.localhost``),
   ``?versionId=`` — is read from the local S3.
2. **Transforms** (templates.py): a template declaring ``AWS::Serverless-2016-10-31`` is transformed with samtranslator (the
   library CloudFormation's own SAM transform is built from) when the change set or stack is created, with the
   stack's parameter values; a failing transform fails the change set with CloudFormation's StatusReason. Other
   transforms are refused the same way. GetTemplate answers ``Original`` and ``Processed`` stages (the original
   with the local endpoint's S3 URLs in AWS's form, so `sam delete` can read a nested application's Location).
3. **Outputs after a change set**: moto builds a stack's outputs when the stack object is made, which for a
   change set is before any resource exists; they are rebuilt when it is executed.
4. **Events and failures**: each resource of an executed change set gets its IN_PROGRESS/COMPLETE events (what
   `sam deploy` prints); an exception while creating resources ends the stack in ROLLBACK_COMPLETE (created
   resources deleted) and an update in UPDATE_ROLLBACK_FAILED, with the reason, instead of an HTTP 500.
5. **Stabilisation**: CloudFormation reports ``*_COMPLETE`` once resources are ready. A listener (the local
   cloud's controller) can claim every create, update and delete: the stack then stays ``*_IN_PROGRESS`` until
   the listener has attached (or, on delete, stopped) what runs the stack's functions and services, and says so
   with :func:`complete` / :func:`finish_delete`. Without a listener everything completes at once, as before.

``apply()`` installs the patches once per process and returns what it applied (like motopatches.apply).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

from jobgraph.localcloud.cloudformation.templates import (
    TransformFailed,
    canonical_s3_urls,
    process_template,
    read_s3_template,
)

_APPLIED: list[str] = []


# --- the listener: who stabilises stacks -------------------------------------------------------------------
@dataclass(frozen=True)
class StackOperation:
    """A create/update/delete handed to the listener; it calls complete() or finish_delete() when done."""

    kind: str  # CREATE | UPDATE | DELETE
    account_id: str
    region: str
    stack_id: str
    stack_name: str


_LISTENER: list[Callable[[StackOperation], None]] = []
_LOCK = threading.Lock()


def set_listener(listener: Callable[[StackOperation], None] | None) -> None:
    """Route stack operations to ``listener`` (None: complete them at once)."""
    with _LOCK:
        _LISTENER.clear()
        if listener is not None:
            _LISTENER.append(listener)


def has_listener() -> bool:
    """Whether a listener stabilises stacks (it then also makes their alarms: the controller's MetricsControl)."""
    return bool(_LISTENER)


def _backend(account_id: str, region: str):
    from moto.cloudformation.models import cloudformation_backends

    return cloudformation_backends[account_id][region]


def _stack_by_id(account_id: str, region: str, stack_id: str):
    backend = _backend(account_id, region)
    return backend.stacks.get(stack_id) or backend.deleted_stacks.get(stack_id)


def _hand_over(stack, kind: str) -> None:
    operation = StackOperation(kind, stack.account_id, stack.region_name, stack.stack_id, stack.name)
    listener = _LISTENER[0] if _LISTENER else None
    if listener is None:
        if kind == "DELETE":
            finish_delete(operation)
        else:
            complete(operation)
        return
    listener(operation)


def complete(operation: StackOperation, failure: str | None = None) -> None:
    """End a create/update: ``*_COMPLETE``, or with ``failure`` the stack's failed state and reason.

    The caller holds the server's lock (moto's backends are not thread-safe)."""
    stack = _stack_by_id(operation.account_id, operation.region, operation.stack_id)
    if stack is None:
        return
    if failure is None:
        stack.status = f"{operation.kind}_COMPLETE"
        stack._add_stack_event(stack.status)
    elif operation.kind == "CREATE":
        _roll_back_creation(stack, failure)
    else:
        stack.status = "UPDATE_ROLLBACK_FAILED"
        stack._add_stack_event("UPDATE_FAILED", resource_status_reason=failure)
        stack._add_stack_event("UPDATE_ROLLBACK_FAILED", resource_status_reason=failure)
    for change_set in _backend(operation.account_id, operation.region).change_sets.values():
        if change_set.stack_id == stack.stack_id and change_set.execution_status == "EXECUTE_IN_PROGRESS":
            change_set.execution_status = "EXECUTE_COMPLETE" if failure is None else "EXECUTE_FAILED"


def finish_delete(operation: StackOperation) -> None:
    """Delete the stack's resources and the stack (moto's delete); the caller holds the server's lock."""
    backend = _backend(operation.account_id, operation.region)
    stack = backend.stacks.get(operation.stack_id)
    if stack is None:
        return
    services = [r for r in list(stack.stack_resources) if getattr(r, "cf_resource_type", "") == "AWS::ECS::Service"]
    try:
        _ORIGINAL["delete_stack"](backend, operation.stack_id)
    except Exception as exc:  # a resource moto cannot delete: DELETE_FAILED, as CloudFormation reports it
        stack.status = "DELETE_FAILED"
        stack._add_stack_event("DELETE_FAILED", resource_status_reason=f"{type(exc).__name__}: {exc}")
        return
    _delete_services(services, operation)


def _delete_services(services, operation: StackOperation) -> None:
    """moto's CloudFormation leaves a stack's ECS services ACTIVE when it deletes the stack; CloudFormation
    deletes them (the local cloud would otherwise keep running their tasks)."""
    from moto.ecs.models import ecs_backends

    ecs = ecs_backends[operation.account_id][operation.region]
    for service in services:
        with contextlib.suppress(Exception):  # already gone
            ecs.delete_service(service.cluster_name, service.name, force=True)


def _roll_back_creation(stack, reason: str) -> None:
    stack._add_stack_event("CREATE_FAILED", resource_status_reason=reason)
    stack.status = "ROLLBACK_IN_PROGRESS"
    stack._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=reason)
    # what could not be deleted stays; the stack still ends rolled back
    with contextlib.suppress(Exception):
        stack.resource_map.delete()
    stack.status = "ROLLBACK_COMPLETE"
    stack._add_stack_event("ROLLBACK_COMPLETE")


def _resource_events(stack, changes) -> None:
    """IN_PROGRESS/COMPLETE per changed resource, as CloudFormation reports them (sam deploy prints them)."""
    from moto.cloudformation.models import Event

    status = {"Add": "CREATE", "Modify": "UPDATE", "Remove": "DELETE"}
    for change in changes:
        verb = status.get(change.action, "UPDATE")
        resource = stack.resource_map._parsed_resources.get(change.logical_resource_id)
        physical = getattr(resource, "physical_resource_id", "") or ""
        for phase in ("IN_PROGRESS", "COMPLETE"):
            stack.events.append(
                Event(
                    stack_id=stack.stack_id,
                    stack_name=stack.name,
                    logical_resource_id=change.logical_resource_id,
                    physical_resource_id=physical if phase == "COMPLETE" else "",
                    resource_type=change.resource_type,
                    resource_status=f"{verb}_{phase}",
                    resource_status_reason=None,
                    resource_properties=None,
                )
            )


# --- the patches ------------------------------------------------------------------------------------------
_ORIGINAL: dict[str, Callable] = {}


def _processed(template, parameters: dict, region: str):
    """(template moto deploys, failure reason or None)."""
    try:
        return process_template(template, parameters, region), None
    except TransformFailed as exc:
        return json.dumps({"Resources": {}}), str(exc)


def _create_change_set(self, stack_name, change_set_name, template, parameters, description, change_set_type, **kw):
    processed, failure = _processed(template, parameters, self.region_name)
    change_set_id, stack_id = _ORIGINAL["create_change_set"](
        self, stack_name, change_set_name, processed, parameters, description, change_set_type, **kw
    )
    change_set = self.change_sets[change_set_id]
    change_set.original_template = template
    if failure is not None:
        change_set.status, change_set.execution_status, change_set.status_reason = "FAILED", "UNAVAILABLE", failure
    return change_set_id, stack_id


def _find_change_set(backend, change_set_name: str, stack_name: str | None):
    from moto.cloudformation.exceptions import ValidationError

    if change_set_name in backend.change_sets:
        return backend.change_sets[change_set_name]
    for change_set in backend.change_sets.values():
        if change_set.change_set_name == change_set_name and stack_name in (None, change_set.stack_name):
            return change_set
    raise ValidationError(stack_name, message=f"ChangeSet [{change_set_name}] does not exist")


def _execute_change_set(self, change_set_name, stack_name=None):
    from moto.cloudformation.exceptions import ValidationError

    change_set = _find_change_set(self, change_set_name, stack_name)
    if change_set.execution_status != "AVAILABLE":
        raise ValidationError(
            stack_name, message=f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current status"
        )
    stack = self.stacks[change_set.stack_id]
    kind = change_set.change_set_type
    stack.status = f"{kind}_IN_PROGRESS"
    stack._add_stack_event(stack.status, resource_status_reason="User Initiated")
    change_set.execution_status = "EXECUTE_IN_PROGRESS"
    operation = StackOperation(kind, stack.account_id, stack.region_name, stack.stack_id, stack.name)
    try:
        change_set.apply()
    except Exception as exc:  # moto raised while creating a resource: the stack fails, it does not vanish
        complete(operation, failure=f"{type(exc).__name__}: {exc}")
        return
    stack.template = change_set.template
    stack.original_template = getattr(change_set, "original_template", change_set.template)
    stack._parse_template()
    stack.description = stack.template_dict.get("Description")
    if change_set.parameters:
        stack.parameters = change_set.parameters
    stack.output_map = stack._create_output_map()
    _resource_events(stack, change_set.changes)
    _hand_over(stack, kind)


def _create_stack(self, name, template, parameters, *args, **kwargs):
    from moto.cloudformation.exceptions import ValidationError

    processed, failure = _processed(template, parameters, self.region_name)
    if failure is not None:
        raise ValidationError(name, message=failure)
    stack = _ORIGINAL["create_stack"](self, name, processed, parameters, *args, **kwargs)
    stack.original_template = template
    return stack


def _create_resources(self):
    """moto's Stack.create_resources, failing into ROLLBACK_COMPLETE, completing through the listener."""
    operation = StackOperation("CREATE", self.account_id, self.region_name, self.stack_id, self.name)
    try:
        _ORIGINAL["create_resources"](self)
    except Exception as exc:
        self.status = "CREATE_IN_PROGRESS"
        complete(operation, failure=f"{type(exc).__name__}: {exc}")
        return
    if self.status == "CREATE_COMPLETE":  # moto completed it at once: let the listener stabilise it first
        self.status = "CREATE_IN_PROGRESS"
        if self.events and self.events[-1].resource_status == "CREATE_COMPLETE":
            self.events.pop()
        _hand_over(self, "CREATE")


def _update_stack(self, name, template, role_arn, parameters, tags):
    from moto.cloudformation.exceptions import ValidationError

    stack = self.get_stack(name)
    given = {p["ParameterKey"]: p.get("ParameterValue") for p in parameters if "ParameterValue" in p}
    processed, failure = _processed(template, {**stack.parameters, **given}, self.region_name)
    if failure is not None:
        raise ValidationError(name, message=failure)
    operation = StackOperation("UPDATE", stack.account_id, stack.region_name, stack.stack_id, stack.name)
    try:
        stack = _ORIGINAL["update_stack"](self, name, processed, role_arn, parameters, tags)
    except Exception as exc:
        complete(operation, failure=f"{type(exc).__name__}: {exc}")
        return stack
    stack.original_template = template
    stack.output_map = stack._create_output_map()
    stack.status = "UPDATE_IN_PROGRESS"
    if stack.events and stack.events[-1].resource_status == "UPDATE_COMPLETE":
        stack.events.pop()
    _hand_over(stack, "UPDATE")
    return stack


def _delete_stack(self, name_or_stack_id):
    stacks = [s for s in self.stacks.values() if name_or_stack_id in (s.stack_id, s.name)]
    for stack in stacks:
        if stack.status == "DELETE_IN_PROGRESS":
            continue  # already being deleted: CloudFormation accepts the repeat and does nothing more
        stack.status = "DELETE_IN_PROGRESS"
        stack._add_stack_event("DELETE_IN_PROGRESS", resource_status_reason="User Initiated")
        _hand_over(stack, "DELETE")


def _stack_delete(self):
    """moto's Stack.delete adds DELETE_IN_PROGRESS itself; ours was added when the delete was accepted."""
    if self.events and self.events[-1].resource_status == "DELETE_IN_PROGRESS":
        self.events.pop()
    _ORIGINAL["stack_delete"](self)


def _modelled_resources(self):
    """A stack's resources moto created; moto keeps None for a type it does not model (an alarm, an HTTP API),
    on which DescribeStackResource failed with an HTTP 500 (`sam delete` reads nested stacks with it)."""
    return [resource for resource in self.resource_map.values() if resource is not None]


def _get_template(self):
    """GetTemplate with TemplateStage (Original: as submitted, before transforms) and ChangeSetName."""
    from moto.core.responses import ActionResult

    stage = self._get_param("TemplateStage") or "Original"
    change_set_name = self._get_param("ChangeSetName")
    if change_set_name:
        change_set = _find_change_set(self.cloudformation_backend, change_set_name, self._get_param("StackName"))
        body = getattr(change_set, "original_template", None) if stage == "Original" else None
        body = body or change_set.template
    else:
        stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
        body = getattr(stack, "original_template", None) if stage == "Original" else None
        body = body or stack.template
    if isinstance(body, dict):
        body = json.dumps(body)
    if stage == "Original":
        body = canonical_s3_urls(body, self.region)
    return ActionResult({"TemplateBody": body, "StagesAvailable": ["Original", "Processed"]})


def apply() -> list[str]:
    """Install the patches once per process; returns their names."""
    if _APPLIED:
        return list(_APPLIED)
    from moto.cloudformation import models, responses
    from moto.cloudformation.models import CloudFormationBackend, Stack

    def read(template_url: str, account_id: str, partition: str) -> str:
        return read_s3_template(template_url, account_id, partition)

    models.get_stack_from_s3_url = read
    responses.get_stack_from_s3_url = read
    _APPLIED.append("TemplateURL in every S3 URL form")
    for name, replacement in (
        ("create_change_set", _create_change_set),
        ("execute_change_set", _execute_change_set),
        ("create_stack", _create_stack),
        ("update_stack", _update_stack),
        ("delete_stack", _delete_stack),
    ):
        _ORIGINAL[name] = getattr(CloudFormationBackend, name)
        setattr(CloudFormationBackend, name, replacement)
    _ORIGINAL["create_resources"] = Stack.create_resources
    Stack.create_resources = _create_resources
    _ORIGINAL["stack_delete"] = Stack.delete
    Stack.delete = _stack_delete
    Stack.stack_resources = property(_modelled_resources)
    responses.CloudFormationResponse.get_template = _get_template
    _APPLIED.extend(
        [
            "SAM transform on change sets and stacks",
            "outputs, resource events and failure states of executed change sets",
            "stacks stabilised by the local cloud's controller",
            "GetTemplate stages",
            "stack resources without the types moto does not model",
        ]
    )
    return list(_APPLIED)
