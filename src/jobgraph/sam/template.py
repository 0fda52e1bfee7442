"""Load template.yaml and run the SAM transform offline (no AWS, no network, no Docker).

Used by the template tests (IAM, tags, queues) and by the local cloud, which deploys the transformed
template into moto's CloudFormation. Nothing here imports boto3 at import time.

API (keep stable, other modules rely on it):

``load_template(path) -> dict``
    Parse a CloudFormation/SAM YAML (or JSON) file, short tags included (``!Ref``, ``!Sub``,
    ``!GetAtt``, ``!If`` …, expanded to their ``Fn::``/``Ref`` long form), with cfn-lint's parser.
    Returns plain ``dict``/``list``/``str`` values, so the result can be deep-copied, JSON-dumped
    and mutated freely.

``transform_template(template, parameters, region) -> (transformed, code_locations)``
    Apply ``AWS::Serverless-2016-10-31`` to a copy of ``template`` (the input is not modified) and
    return the plain CloudFormation template. Before transforming, every local ``CodeUri`` of an
    ``AWS::Serverless::Function`` (its own, or inherited from ``Globals.Function.CodeUri``) and every
    local ``ContentUri`` of an ``AWS::Serverless::LayerVersion`` is rewritten to
    ``s3://jobgraph-local-artifacts/<relative path>`` (the transform only accepts S3 locations), where
    ``<relative path>`` is the URI as written, normalised (``functions/processor/`` →
    ``functions/processor``; ``.`` → ``root``). ``code_locations`` maps each such resource's logical
    id to that local path (relative to the template's directory, e.g. ``"functions/processor"``;
    ``"ProcessorFunction"`` for the built template in ``.aws-sam/build``). URIs that are already
    ``s3://`` or ``{Bucket, Key}`` are left alone and not listed. In the transformed template those
    resources become ``AWS::Lambda::Function`` (``Code: {S3Bucket: jobgraph-local-artifacts,
    S3Key: <relative path>}``) and ``AWS::Lambda::LayerVersion`` (``Content: {S3Bucket, S3Key}``);
    upload the zipped local directory under that key before creating the stack.

    ``parameters`` are template parameter values (strings, as CloudFormation passes them); omitted
    ones take the template defaults. ``region`` sets ``AWS::Region``/``AWS::Partition`` for the
    transform. AWS managed policies named by the template (e.g. ``AWSXrayWriteOnlyAccess``) are
    resolved from the map bundled with samtranslator; a name missing from it raises ``ValueError``
    instead of calling IAM.

    With ``root`` (the template's folder), each ``AWS::Serverless::StateMachine`` whose
    ``DefinitionUri`` is a local file gets that file inlined as ``Definition`` first (``sam package``
    would upload it to S3; moto's CloudFormation understands only ``DefinitionString``), so the transformed
    state machine has ``DefinitionString`` plus ``DefinitionSubstitutions``, as on AWS.

``inline_definitions(template, root) -> dict[str, str]``
    That inlining on its own (in place); returns logical id → the definition file's path relative to ``root``.

``load_sam_template(path) -> dict``
    ``load_template`` for a user's ``--template``: a file, at most 1 MB, UTF-8, YAML/JSON, a mapping with the
    SAM Transform and Resources (``check_sam_template``); ValueError with one line naming the file otherwise.

``transform_tree(path, parameters, region) -> TemplateTree``
    The template at ``path`` transformed, and every nested application it declares
    (``AWS::Serverless::Application`` whose ``Location`` is a local file, as the scenario templates nest
    templates/shared/*.yaml) transformed too, recursively. Code artifact keys of nested templates are
    relative to the *root* template's folder (``functions/api``, not ``../../functions/api``), so one
    upload serves every template. In the parent, each nested application becomes an
    ``AWS::CloudFormation::Stack`` whose ``TemplateURL`` is still the local path as written: whoever
    deploys uploads the child's transformed template and points ``TemplateURL`` at it
    (``sam package`` does the same with the untransformed child). Children are transformed with their
    own defaults; their real parameter values are the parent's ``Parameters`` of that stack resource.

``ARTIFACT_BUCKET`` is ``"jobgraph-local-artifacts"``. Parameter values are checked in ``jobgraph.sam.parameters``.
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ARTIFACT_BUCKET = "jobgraph-local-artifacts"

_CODE_PROPERTY = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


def load_template(path: str | Path) -> dict:
    """Parse a CloudFormation/SAM template file (YAML with short tags, or JSON) into plain Python values."""
    path = Path(path)
    return parse_template_text(path.read_text(encoding="utf-8"), path)


def parse_template_text(text: str, path: str | Path) -> dict:
    """A template's text (``path`` names it in cfn-lint's errors) as plain Python values."""
    from cfnlint.decode.cfn_yaml import loads

    parsed = loads(text, str(path))
    # cfn-lint returns dict/str subclasses carrying line marks; a JSON round trip makes them plain.
    return json.loads(json.dumps(parsed))


def _artifact_key(local_path: str) -> str:
    normalised = posixpath.normpath(local_path.replace("\\", "/")).lstrip("/")
    return "root" if normalised in ("", ".") else normalised


def _is_local(uri: Any) -> bool:
    return isinstance(uri, str) and not uri.startswith("s3://")


def rewrite_code_uris(template: dict, prefix: str = "") -> dict[str, str]:
    """Rewrite local CodeUri/ContentUri values of ``template`` in place; return logical id → local path.

    ``prefix``: the template's folder relative to the folder artifact keys are relative to ("" for itself)."""
    locations: dict[str, str] = {}
    global_function = (template.get("Globals") or {}).get("Function") or {}
    global_code_uri = global_function.get("CodeUri")
    for logical_id, resource in (template.get("Resources") or {}).items():
        prop = _CODE_PROPERTY.get(resource.get("Type", ""))
        if prop is None:
            continue
        properties = resource.setdefault("Properties", {})
        if prop == "CodeUri" and "InlineCode" in properties:
            continue
        uri = properties.get(prop, global_code_uri if prop == "CodeUri" else None)
        if not _is_local(uri):
            continue
        key = _artifact_key(posixpath.join(prefix, uri))
        locations[logical_id] = key if key != "root" else "."
        properties[prop] = f"s3://{ARTIFACT_BUCKET}/{key}"
    if _is_local(global_code_uri):
        global_function["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/{_artifact_key(posixpath.join(prefix, global_code_uri))}"
    return locations


def inline_definitions(template: dict, root: str | Path) -> dict[str, str]:
    """Replace local ``DefinitionUri`` files of state machines by their content (``Definition``), in place."""
    inlined: dict[str, str] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::StateMachine":
            continue
        properties = resource.get("Properties") or {}
        uri = properties.get("DefinitionUri")
        if not _is_local(uri):
            continue
        path = Path(root) / uri
        text = path.read_text(encoding="utf-8")
        properties["Definition"] = json.loads(text) if path.suffix == ".json" else load_template(path)
        del properties["DefinitionUri"]
        inlined[logical_id] = posixpath.normpath(uri)
    return inlined


def transform_template(
    template: dict, parameters: dict, region: str, root: str | Path | None = None, code_prefix: str = ""
) -> tuple[dict, dict[str, str]]:
    """SAM → CloudFormation offline; see the module docstring for the contract (``code_prefix``: see
    ``rewrite_code_uris``; transform_tree passes a nested template's folder relative to the root's)."""
    import boto3
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template

    sam_template = copy.deepcopy(template)
    if root is not None:
        inline_definitions(sam_template, root)
    code_locations = rewrite_code_uris(sam_template, code_prefix)
    parameter_values = {key: value for key, value in parameters.items()}
    parameter_values.setdefault("AWS::Region", region)
    partition = ArnGenerator.get_partition_name(region)
    parameter_values.setdefault("AWS::Partition", partition)

    def managed_policy_map() -> dict[str, str]:
        # Called only for a policy name the bundled map lacks; the online transform would ask IAM.
        raise ValueError(
            "a managed policy in Policies is not in samtranslator's bundled map; "
            "use its full ARN (offline transform cannot call IAM)"
        )

    if get_bundled_managed_policy_map(partition) is None:
        raise ValueError(f"samtranslator bundles no managed policies for partition {partition!r}")
    # A session only names the region (no credentials or calls needed); Translator reads region_name.
    session = boto3.session.Session(region_name=region)
    to_py27_compatible_template(sam_template, parameter_values)
    # samtranslator records metrics per transform and, if nobody publishes them, warns on stderr when they are
    # garbage-collected ("There are unpublished metrics", once per template of every `jobgraph run`): offline,
    # published to its dummy publisher, which drops them
    metrics = Metrics(metrics_publisher=DummyMetricsPublisher())
    try:
        transformed = Translator(None, Parser(), boto_session=session, metrics=metrics).translate(
            sam_template, parameter_values=parameter_values, get_managed_policy_map=managed_policy_map
        )
    finally:
        metrics.publish()
    return undo_mark_unicode_str_in_template(transformed), code_locations


SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
MAX_TEMPLATE_BYTES = 1_000_000  # CloudFormation's limit for a template read from S3 (51 200 inline)


def check_sam_template(template: object) -> list[str]:
    """What makes a parsed file unusable as a SAM template (empty: usable), one line each."""
    if not isinstance(template, dict):
        return [f"not a SAM template: the file holds a YAML {type(template).__name__}, not a mapping"]
    problems = []
    transforms = template.get("Transform")
    transforms = transforms if isinstance(transforms, list) else [transforms]
    if SAM_TRANSFORM not in transforms:
        problems.append(f"not a SAM template: no `Transform: {SAM_TRANSFORM}`")
    resources = template.get("Resources")
    if not isinstance(resources, dict) or not resources:
        problems.append("not a SAM template: no Resources mapping")
    elif any(not isinstance(r, dict) or not isinstance(r.get("Type"), str) for r in resources.values()):
        problems.append("Resources: every resource needs a mapping with a Type")
    for section in ("Parameters", "Outputs", "Conditions", "Globals"):
        if section in template and not isinstance(template[section], dict):
            problems.append(f"{section}: must be a mapping")
    parameters = template.get("Parameters")
    if isinstance(parameters, dict) and any(not isinstance(p, dict) for p in parameters.values()):
        problems.append("Parameters: every parameter needs a mapping (Type, Default, ...)")
    return problems


def load_sam_template(path: str | Path) -> dict:
    """load_template with the checks a user's ``--template`` needs; ValueError with one line otherwise."""
    from jobgraph.core.bounds import read_user_file

    path = Path(path)
    template = read_user_file(
        path,
        lambda text: parse_template_text(text, path),
        max_bytes=MAX_TEMPLATE_BYTES,
        limit="CloudFormation's template limit",
        syntax="YAML or JSON",
        parse_errors=(Exception,),  # cfn-lint's decoder: YAML/JSON syntax, duplicate keys, bad tags
        error=ValueError,
    )
    problems = check_sam_template(template)
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return template


# --------------------------------------------------------------------------- nested applications
def nested_locations(template: dict) -> dict[str, str]:
    """Logical id → local template path of every ``AWS::Serverless::Application`` with a local Location."""
    found = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Application":
            continue
        location = (resource.get("Properties") or {}).get("Location")
        if isinstance(location, str) and not location.startswith(("s3://", "https://", "http://")):
            found[logical_id] = location
    return found


def nested_function_layers(layers: Any, passed: dict, condition_holds: Callable[[str], bool]) -> list:
    """A function's ``Layers`` in a nested template, as its parent's layer references: an ``Fn::If`` decided by
    ``condition_holds`` (called with the nested template's condition name), then each ``Ref`` to a parameter
    the parent passes replaced by what it passes (``CoreLayerArn: !Ref CoreLayer`` -> ``{"Ref": "CoreLayer"}``).
    A template's own functions (nothing passed) keep their references. The one reading of a nested function's
    layers, for `sam build`'s output (sam/build.py, sam/localinvoke.py) and a stack deployed locally."""
    if isinstance(layers, dict) and "Fn::If" in layers:
        name, when_true, when_false = layers["Fn::If"]
        layers = when_true if condition_holds(name) else when_false
    return [passed.get(ref["Ref"], ref) if isinstance(ref, dict) and "Ref" in ref else ref for ref in layers]


@dataclass
class TemplateTree:
    """A transformed template and its transformed nested templates (see the module docstring)."""

    path: Path
    template: dict  # as written (SAM), parsed
    transformed: dict
    code_locations: dict[str, str]
    children: dict[str, TemplateTree] = field(default_factory=dict)  # logical id of the stack resource -> child

    def walk(self, trail: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], TemplateTree]]:
        """(logical-id path from the root, node) for this node and every nested one, parents first."""
        yield trail, self
        for logical_id, child in self.children.items():
            yield from child.walk((*trail, logical_id))


def transform_tree(
    path: str | Path, parameters: dict, region: str, *, _root: Path | None = None, _seen: tuple[Path, ...] = ()
) -> TemplateTree:
    """``path`` and its nested applications, transformed (see the module docstring)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"{path}: nested applications form a cycle ({' -> '.join(p.name for p in _seen)})")
    root = _root or path.parent
    template = load_template(path)
    prefix = Path(os.path.relpath(path.parent, root)).as_posix()
    transformed, locations = transform_template(
        template, parameters, region, path.parent, code_prefix="" if prefix == "." else prefix
    )
    tree = TemplateTree(path=path, template=template, transformed=transformed, code_locations=locations)
    for logical_id, location in nested_locations(template).items():
        child_path = path.parent / location
        if not child_path.is_file():
            raise ValueError(f"{path}: {logical_id}'s Location {location} is not a file")
        tree.children[logical_id] = transform_tree(child_path, {}, region, _root=root, _seen=(*_seen, path))
    return tree
