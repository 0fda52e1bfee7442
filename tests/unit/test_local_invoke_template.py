"""sam.localinvoke: the template `sam local invoke` runs a nested application's function from.

Given a built parent whose nested application gets the parent's layers as parameters (the shape of
templates/shared/status-api.yaml), the written template holds the nested function with the parent's layer
resources beside it, paths into the build, and the parameters the parent passes as defaults.
"""

from __future__ import annotations

import json

import pytest

from jobgraph.sam.localinvoke import local_invoke_template

PARENT = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Architecture: {Type: String, Default: x86_64}
  Scenarios: {Type: String, Default: '1000'}
Resources:
  CoreLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: CoreLayer, CompatibleArchitectures: [!Ref Architecture]}
  ScientificLayer:
    Type: AWS::Serverless::LayerVersion
    Properties: {ContentUri: ScientificLayer}
  Table: {Type: AWS::DynamoDB::Table}
  ParentFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: ParentFunction, Handler: app.handler, Layers: [!Ref CoreLayer]}
  NestedStack:
    Type: AWS::Serverless::Application
    Properties:
      Location: NestedStack/template.yaml
      Parameters:
        CoreLayerArn: !Ref CoreLayer
        ScientificLayerArn: !Ref ScientificLayer
        Scenario: '1'
        Scenarios: !Sub '${Scenarios}'
        TableName: !Ref Table
        Architecture: !Ref Architecture
"""

CHILD = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  CoreLayerArn: {Type: String}
  ScientificLayerArn: {Type: String, Default: ''}
  Scenario: {Type: String}
  Scenarios: {Type: String, Default: '5'}
  TableName: {Type: String}
  Architecture: {Type: String, Default: arm64}
Conditions:
  HasScientificLayer: !Not [!Equals [!Ref ScientificLayerArn, '']]
Resources:
  NestedFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: NestedFunction
      Handler: app.lambda_handler
      Environment: {Variables: {TABLE_NAME: !Ref TableName}}
      Layers: !If [HasScientificLayer, [!Ref CoreLayerArn, !Ref ScientificLayerArn], [!Ref CoreLayerArn]]
"""


@pytest.fixture
def build_dir(tmp_path):
    build = tmp_path / "build"
    (build / "NestedStack").mkdir(parents=True)
    (build / "template.yaml").write_text(PARENT)
    (build / "NestedStack" / "template.yaml").write_text(CHILD)
    return build


def test_a_nested_function_sits_beside_the_parents_built_layers(build_dir, tmp_path):
    path = local_invoke_template(build_dir, "NestedFunction", tmp_path / "out")
    assert path == tmp_path / "out" / "NestedStack.local-invoke.json"
    written = json.loads(path.read_text())
    function = written["Resources"]["NestedFunction"]["Properties"]
    assert function["CodeUri"] == str(build_dir / "NestedStack" / "NestedFunction")
    assert function["Layers"] == [{"Ref": "CoreLayer"}, {"Ref": "ScientificLayer"}]
    assert function["Environment"] == {"Variables": {"TABLE_NAME": {"Ref": "TableName"}}}
    core = written["Resources"]["CoreLayer"]
    assert core["Type"] == "AWS::Serverless::LayerVersion"
    assert core["Properties"]["ContentUri"] == str(build_dir / "CoreLayer")
    assert written["Resources"]["ScientificLayer"]["Properties"]["ContentUri"] == str(build_dir / "ScientificLayer")
    defaults = {name: p.get("Default") for name, p in written["Parameters"].items()}
    assert defaults == {
        "CoreLayerArn": "CoreLayer",
        "ScientificLayerArn": "ScientificLayer",
        "Scenario": "1",  # a literal, as passed
        "Scenarios": "1000",  # the parent parameter's default, not the nested one's
        "TableName": "Table",  # a resource: its logical id, as SAM CLI reads a Ref
        "Architecture": "x86_64",
    }


def test_the_nested_templates_condition_decides_its_layers(build_dir, tmp_path):
    parent = (build_dir / "template.yaml").read_text()
    (build_dir / "template.yaml").write_text(parent.replace("        ScientificLayerArn: !Ref ScientificLayer\n", ""))
    written = json.loads(local_invoke_template(build_dir, "NestedFunction", tmp_path).read_text())
    assert written["Resources"]["NestedFunction"]["Properties"]["Layers"] == [{"Ref": "CoreLayer"}]
    assert "ScientificLayer" not in written["Resources"]


def test_a_parent_function_is_invoked_from_the_built_template(build_dir, tmp_path):
    assert local_invoke_template(build_dir, "ParentFunction", tmp_path) is None
    assert list(tmp_path.glob("*.json")) == []


def test_an_unknown_function_is_named(build_dir, tmp_path):
    with pytest.raises(KeyError, match="NoSuchFunction"):
        local_invoke_template(build_dir, "NoSuchFunction", tmp_path)
