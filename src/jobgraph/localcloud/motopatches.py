"""Two speed-ups and one fix for moto's server, applied in-process by the local cloud.

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

All are applied only if moto still has the shape they replace (``apply()`` returns what it applied);
``tests/unit/test_motopatches.py`` checks that the lazy mapping equals moto's own property and that a
tagged key deploys with its tags.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

_APPLIED: list[str] = []


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
    from moto.kms import models as kms_models

    if isinstance(kms_models.Key.__dict__.get("create_from_cloudformation_json"), classmethod):
        kms_models.Key.create_from_cloudformation_json = _kms_key_with_cloudformation_tags(
            kms_models.Key.create_from_cloudformation_json
        )
        _APPLIED.append("KMS key tags from CloudFormation")
    return list(_APPLIED)
