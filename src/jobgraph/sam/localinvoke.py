"""A template `sam local invoke` can run a nested application's function from (SAM CLI's nested-layer gap).

The shared pieces (templates/shared/status-api.yaml, triggers.yaml) are nested applications whose functions
get the parent's layers as parameters (``CoreLayerArn: !Ref CoreLayer``). SAM CLI resolves such a parameter to
the bare logical id and stops: ``Error: CoreLayer is an Invalid Layer Arn`` (aws/aws-sam-cli#2820, also
#3306, #3003, #1698: a layer passed from a parent into a nested stack is not supported by local invoke or
start-api). The deployed templates stay as they are; for local invoke only,
``local_invoke_template(build_dir, function, dest)`` writes the function's built nested template with the
parent's built layers beside it:

- each function's ``CodeUri`` and each layer's ``ContentUri`` an absolute path into ``build_dir`` (what
  ``sam build`` produced: nothing is rebuilt or copied);
- each function's ``Layers`` the parent's layer resources it gets through parameters (after the nested
  template's own conditions, as ``sam.build.built_functions`` reads them), as ``Ref``s SAM follows locally;
- the nested template's parameters defaulted to what the parent passes it: a literal as is, a parent
  parameter's default, else (a resource) its logical id, as SAM CLI itself resolves a ``Ref``.

It returns None for a function of the parent template (invoke that one as built).
"""

from __future__ import annotations

import json
from pathlib import Path

from jobgraph.sam.build import built_functions
from jobgraph.sam.template import load_template, nested_locations


def _passed_default(value: object, parent: dict, own: object) -> object:
    """What a parameter the parent passes resolves to locally: a literal as is, a parent parameter's default,
    a resource's logical id (SAM CLI's reading of a Ref); other expressions keep the nested default."""
    if isinstance(value, dict) and list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
        name = value["Fn::Sub"].removeprefix("${").removesuffix("}")
        value = {"Ref": name} if value["Fn::Sub"] == f"${{{name}}}" else value
    if isinstance(value, dict) and "Ref" in value:
        given = (parent.get("Parameters") or {}).get(value["Ref"], {}).get("Default")
        return str(given) if given is not None else value["Ref"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        attribute = value["Fn::GetAtt"]
        return ".".join(attribute) if isinstance(attribute, list) else str(attribute)
    return own if isinstance(value, dict) else str(value)


def local_invoke_template(build_dir: str | Path, function: str, dest: str | Path) -> Path | None:
    """Write ``dest/<NestedLogicalId>.local-invoke.json`` for ``function`` if it is nested; None if not."""
    build_dir = Path(build_dir).resolve()
    parent = load_template(build_dir / "template.yaml")
    if function in parent["Resources"]:
        return None
    children = {app_id: load_template(build_dir / location) for app_id, location in nested_locations(parent).items()}
    app_id = next((app_id for app_id, child in children.items() if function in child.get("Resources", {})), None)
    if app_id is None:
        raise KeyError(f"{function}: not a resource of {build_dir / 'template.yaml'} nor of its nested templates")
    child = children[app_id]
    built = built_functions(build_dir)
    passed = parent["Resources"][app_id]["Properties"].get("Parameters") or {}
    for name, value in passed.items():
        if name in child.get("Parameters", {}):
            declared = child["Parameters"][name]
            resolved = _passed_default(value, parent, declared.get("Default"))
            if resolved is not None:
                declared["Default"] = resolved
    for logical_id, resource in list(child["Resources"].items()):
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        function_built = built[logical_id]
        resource["Properties"]["CodeUri"] = str(function_built.code_dir)
        resource["Properties"]["Layers"] = [{"Ref": layer_id} for layer_id, _ in function_built.layers]
        for layer_id, folder in function_built.layers:
            layer = json.loads(json.dumps(parent["Resources"][layer_id]))
            layer["Properties"]["ContentUri"] = str(folder)
            child["Resources"][layer_id] = layer
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{app_id}.local-invoke.json"
    path.write_text(json.dumps(child, indent=1) + "\n", encoding="utf-8")
    return path
