"""Patches to moto's server, applied in-process by the local cloud: two speed-ups that leave behaviour
unchanged, fixes for tagged KMS keys, function layers and nested stack outputs from CloudFormation; DynamoDB's
patches are in dynamodb/, what moto's Step Functions engine needs to run a deployed stack's state machine is in
stepfunctions/engine.py (apply() applies them all).

Profiling `jobgraph run` (py-spy, 100 sequences) showed the single-threaded moto server spending most
of its time on two things that do not depend on the request:

1. Routing: ``moto.backends.list_of_moto_modules()`` lists moto's package folder (``os.listdir`` and
   ``isdir`` of ~150 entries) for every request. The folder cannot change while the process runs, so
   the list is computed once.
2. SQS queue attributes: ``Queue.attributes`` builds *every* attribute, including three message counts
   that each scan the whole queue, and moto reads it up to four times per message sent just to look up
   ``ContentBasedDeduplication`` (and 2k+1 times per GetQueueAttributes of k names). That makes each
   send O(queue length), so the local cloud would slow down as a run gets bigger, which real SQS does
   not. ``LazyQueueAttributes`` is the same mapping, computing a value only when it is read.

The speed-ups change no behaviour. The fix:

3. KMS key tags: moto's CloudFormation model of ``AWS::KMS::Key`` hands the template's ``Tags``
   (``Key``/``Value``) to its KMS tagger, which reads ``TagKey``/``TagValue`` (the KMS API's shape), so a
   tagged key fails the whole stack with ``KeyError: 'TagKey'`` (moto 5.2.5). Each tag is passed in both
   shapes, which stays right if moto starts converting them itself.

5. Nested stacks: moto creates an ``AWS::CloudFormation::Stack`` resource from its TemplateURL, but its
   ``Fn::GetAtt [Child, Outputs.Name]`` resolves to nothing (moto's Stack has no ``get_cfn_attribute``), so
   a parent could not use what its nested stack made (the shared pieces' URLs, names and ARNs).
   ``_nested_stack_output`` answers it from the nested stack's outputs, as CloudFormation does (an output
   moto cannot resolve, of a resource type it does not model such as the HTTP API, is empty).

And one about correctness under the serialised server (server.py runs one request at a time):

4. SQS long polls: moto's ReceiveMessage with WaitTimeSeconds > 0 loops in the request until a message is
   deliverable, calling ``Queue.wait_for_messages`` between scans, which returns at once while the queue
   holds *any* message (say, one whose FIFO group is in flight). Under the server's lock that would be a
   hot loop blocking every other request for up to 20 s. ``ServerLock`` lets a request that holds it give it
   up while it waits: the long poll sleeps a short step with the lock released, then scans again under it,
   so the ECS worker's real long polls (scenario 2) work while other clients carry on.

6. DynamoDB: transactions that back up their items, not their tables, and update expressions parsed and
   checked once: localcloud/dynamodb/ (one module per patch; ``apply()`` applies them here).

7. No Docker: moto runs a function's code by pulling a Lambda image and starting a container, on every
   path that reaches ``LambdaFunction._invoke_lambda`` (Invoke with no controller attached, SNS and log
   subscriptions). The local cloud runs functions in its own runtime (servicehooks.py); where a Docker
   engine is up but no registry is reachable, each such call blocked the serialised server on an image pull
   (a stopping run's reset timed out behind them). ``_no_docker`` answers at once with Lambda's error
   document naming why, and starts nothing. moto's own SQS → Lambda trigger (in SendMessage: it receives
   the message, ignoring FIFO groups and ReportBatchItemFailures, GUIDE §7) is off in every local server,
   with a controller attached or not: ``_NoMappings`` shows it none, the controller's pollers do the work,
   and with no controller messages wait unreceived, as on AWS when no poller runs. The mapping still reads
   ``Enabled``.

All are applied only if moto still has the shape they replace (``apply()`` returns what it applied);
``tests/unit/test_motopatches.py`` checks that the lazy mapping equals moto's own property and that a
tagged key deploys with its tags.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

_APPLIED: list[str] = []
LONG_POLL_STEP_S = 0.02


class ServerLock:
    """The serial server's lock; the thread holding it (a request) can give it up for a while.

    Re-entrant: a request that calls back into the local cloud (a Lambda invoke resolving its function) may
    take it again. ``released()`` gives it up entirely, whatever the depth, and takes it back as deep.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._local = threading.local()

    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)

    def __enter__(self) -> ServerLock:
        if self._depth() == 0:
            self._lock.acquire()
        self._local.depth = self._depth() + 1
        return self

    def __exit__(self, *exc) -> None:
        self._local.depth = self._depth() - 1
        if self._local.depth == 0:
            self._lock.release()

    def held_here(self) -> bool:
        return self._depth() > 0

    @contextlib.contextmanager
    def released(self):
        """Let other requests run meanwhile; only call while held by this thread."""
        depth = self._depth()
        self._local.depth = 0
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()
            self._local.depth = depth


SERVER_LOCKS: list[ServerLock] = []  # the running server's (server.py registers it)


def _long_poll_wait(original):
    def wait_for_messages(self, timeout: int) -> None:
        lock = next((lock for lock in SERVER_LOCKS if lock.held_here()), None)
        if lock is None:  # not inside a server request (e.g. the local runtime's queue signal)
            return original(self, timeout)
        with lock.released():
            busy = bool(self.messages)  # moto's wait would return at once: sleep a step instead of spinning
            original(self, min(timeout, LONG_POLL_STEP_S))
            if busy:
                time.sleep(LONG_POLL_STEP_S)
        return None

    wait_for_messages.moto_original = original
    return wait_for_messages


class LazyQueueAttributes(Mapping):
    """moto's ``Queue.attributes`` dict, with each value computed on access."""

    def __init__(self, queue):
        self._queue = queue

    def _names(self) -> list[str]:
        queue = self._queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        if queue.policy:
            names.append("Policy")
        if queue.redrive_policy:
            names.append("RedrivePolicy")
        return list(dict.fromkeys(names))

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names():
            raise KeyError(name)
        queue = self._queue
        if name == "Policy" and queue.policy:
            value = queue.policy
        elif name == "RedrivePolicy" and queue.redrive_policy:
            value = json.dumps(queue.redrive_policy)
        else:
            value = getattr(queue, camelcase_to_underscores(name))
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def _kms_key_with_cloudformation_tags(create):
    """Wraps moto's ``Key.create_from_cloudformation_json`` (a bound classmethod) to pass tags in both shapes."""

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json.get("Properties", {})
        tags = properties.get("Tags")
        if tags:
            both = [{**tag, "TagKey": tag["Key"], "TagValue": tag["Value"]} if "Key" in tag else tag for tag in tags]
            cloudformation_json = {**cloudformation_json, "Properties": {**properties, "Tags": both}}
        return create(resource_name, cloudformation_json, account_id, region_name, **kwargs)

    return classmethod(create_from_cloudformation_json)


def apply() -> list[str]:
    """Install the speed-ups once per process; returns the names of those in effect."""
    if _APPLIED:
        return list(_APPLIED)
    from moto import backends
    from moto.sqs import models as sqs_models

    if callable(getattr(backends, "list_of_moto_modules", None)):
        modules = tuple(backends.list_of_moto_modules())
        backends.list_of_moto_modules = lambda: modules
        _APPLIED.append("cached moto module list")
    queue_class = sqs_models.Queue
    if isinstance(queue_class.__dict__.get("attributes"), property) and all(
        hasattr(queue_class, name) for name in ("BASE_ATTRIBUTES", "FIFO_ATTRIBUTES", "KMS_ATTRIBUTES")
    ):
        queue_class.moto_attributes = queue_class.__dict__["attributes"]  # kept for the equality test
        queue_class.attributes = property(LazyQueueAttributes)
        _APPLIED.append("lazy SQS queue attributes")
    if callable(queue_class.__dict__.get("wait_for_messages")):
        queue_class.wait_for_messages = _long_poll_wait(queue_class.__dict__["wait_for_messages"])
        _APPLIED.append("SQS long polls release the server lock while waiting")
    from moto.kms import models as kms_models

    if isinstance(kms_models.Key.__dict__.get("create_from_cloudformation_json"), classmethod):
        kms_models.Key.create_from_cloudformation_json = _kms_key_with_cloudformation_tags(
            kms_models.Key.create_from_cloudformation_json
        )
        _APPLIED.append("KMS key tags from CloudFormation")
    from moto.awslambda import models as lambda_models

    function_class = lambda_models.LambdaFunction
    if callable(function_class.__dict__.get("_get_layers_data")):
        function_class._get_layers_data = _layers_by_arn(function_class._get_layers_data)
        _APPLIED.append("function layers updated by CloudFormation")
    if isinstance(function_class.__dict__.get("create_from_cloudformation_json"), classmethod):
        function_class.create_from_cloudformation_json = _function_created_with_layers(
            function_class.create_from_cloudformation_json
        )
        _APPLIED.append("function layers created by CloudFormation")
    if callable(function_class.__dict__.get("_invoke_lambda")):
        function_class._invoke_lambda = _no_docker
        _APPLIED.append("functions never run in moto's Docker")
    if callable(queue_class.__dict__.get("__init__")):
        queue_class.__init__ = _queue_without_moto_trigger(queue_class.__init__)
        _APPLIED.append("moto's own SQS trigger off")
    if isinstance(function_class.__dict__.get("update_from_cloudformation_json"), classmethod) and hasattr(
        function_class, "_create_zipfile_from_plaintext_code"
    ):
        function_class.update_from_cloudformation_json = _inline_code_zipped(
            function_class.update_from_cloudformation_json
        )
        _APPLIED.append("inline function code updated by CloudFormation")
    from moto.cloudformation import models as cloudformation_models

    if "get_cfn_attribute" not in cloudformation_models.Stack.__dict__:
        cloudformation_models.Stack.get_cfn_attribute = _nested_stack_output
        _APPLIED.append("nested stack outputs for Fn::GetAtt")
    from jobgraph.localcloud import dynamodb

    _APPLIED.extend(dynamodb.apply())
    from jobgraph.localcloud.stepfunctions import engine

    _APPLIED.extend(engine.apply())
    return list(_APPLIED)


NO_DOCKER = "the local cloud runs functions in its own runtime, not in moto's Docker containers"


def _no_docker(self, event=None) -> tuple[str, bool, str]:
    """moto's ``LambdaFunction._invoke_lambda``: (response, errored, log tail) — an error at once, no container."""
    document = {"errorType": "Runtime.Unavailable", "errorMessage": f"{self.function_name}: {NO_DOCKER}"}
    return json.dumps(document), True, ""


class _NoMappings(dict):
    """A queue's event source mappings as moto's own trigger (in SendMessage) sees them: none."""

    def items(self):
        return []


def _queue_without_moto_trigger(original):
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.lambda_event_source_mappings = _NoMappings(self.lambda_event_source_mappings)

    return __init__


def _inline_code_zipped(update):
    """moto zips a function's ``Code: {ZipFile: <source>}`` (SAM's InlineCode) when CloudFormation creates it, but
    stores the bare source when a stack update changes it; zipped as on create, as Lambda does."""

    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, *args, **kw):
        import base64

        code = cloudformation_json.get("Properties", {}).get("Code", {})
        if isinstance(code.get("ZipFile"), str):
            zipped = base64.b64encode(cls._create_zipfile_from_plaintext_code(code["ZipFile"])).decode()
            properties = {**cloudformation_json["Properties"], "Code": {**code, "ZipFile": zipped}}
            cloudformation_json = {**cloudformation_json, "Properties": properties}
        return update(original_resource, new_resource_name, cloudformation_json, *args, **kw)

    return classmethod(update_from_cloudformation_json)


def _function_created_with_layers(create):
    """moto's CloudFormation creates a function without its ``Layers`` (its create reads neither them nor a
    layer's ARN; only an update does): the local runtime then ran every function on the interpreter's own
    packages — for a template of another checkout, on this jobgraph instead of the layer it deployed. The
    layers are attached as the Lambda API would on CreateFunction (an unknown one fails the resource)."""

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, *args, **kw):
        function = create.__func__(cls, resource_name, cloudformation_json, *args, **kw)
        layers = cloudformation_json.get("Properties", {}).get("Layers")
        if layers and not function.layers:
            function.layers = function._get_layers_data(layers)
        return function

    return classmethod(create_from_cloudformation_json)


def _layers_by_arn(original):
    """moto resolves a function's ``Layers: [!Ref Layer]`` to the LayerVersion object on a stack update (its
    ARN on create) and then fails on ``.replace``; the update of any function with a layer failed. ARNs it is."""

    def _get_layers_data(self, layers_versions_arns):
        return original(self, [getattr(layer, "arn", layer) for layer in layers_versions_arns])

    return _get_layers_data


def _nested_stack_output(self, attribute_name: str):
    """``Fn::GetAtt [NestedStack, Outputs.Name]``: the nested stack's output ``Name``."""
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

    name = attribute_name.removeprefix("Outputs.")
    if name == attribute_name or name not in (self.template_dict.get("Outputs") or {}):
        raise UnformattedGetAttTemplateException()
    output = self.output_map[name]
    # None: an output of a resource type moto does not model (the HTTP API's id): empty, as its Ref is
    return output.value if output is not None and output.value is not None else ""
