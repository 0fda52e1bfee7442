"""Local parameter values are checked as CloudFormation checks them (issue 17.2), and --template must be a
SAM template: one line per problem, before anything is deployed."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobgraph.sam.parameters import check_parameters, check_rules, parameter_values
from jobgraph.sam.template import check_sam_template, load_sam_template, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ["template.yaml", "templates/scenario-2.yaml", "templates/scenario-3.yaml"]

TEMPLATE = {
    "Parameters": {
        "Stage": {"Type": "String", "Default": "dev", "AllowedValues": ["dev", "prod"]},
        "Prefix": {"Type": "String", "Default": "jg", "AllowedPattern": "[a-z][a-z0-9-]{0,31}", "MaxLength": 10},
        "Name": {"Type": "String", "Default": "abc", "MinLength": 2, "ConstraintDescription": "two letters or more"},
        "Memory": {"Type": "Number", "Default": 512, "MinValue": 128, "MaxValue": 10240},
        "Timeout": {"Type": "Number", "Default": "30", "AllowedValues": [30, 60]},
        "Arns": {"Type": "CommaDelimitedList", "Default": "", "AllowedPattern": "^$|^arn:aws:[a-z]+:.*$"},
        "Sizes": {"Type": "List<Number>", "Default": "1, 2"},
        "Secret": {"Type": "String", "NoEcho": True, "AllowedPattern": "[A-Z]+"},
    }
}


def values(**overrides: str) -> dict[str, str]:
    base = {name: str(spec["Default"]) for name, spec in TEMPLATE["Parameters"].items() if "Default" in spec}
    return {**base, "Secret": "ABC", **overrides}


@pytest.mark.parametrize("path", TEMPLATES)
def test_the_shipped_defaults_are_valid(path):
    template = load_template(ROOT / path)
    defaults = {k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v}
    assert check_parameters(template, defaults) == []


def test_valid_values_pass():
    assert check_parameters(TEMPLATE, values(Stage="prod", Memory="1024.0", Arns="arn:aws:sqs:x,arn:aws:sns:y")) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"Stage": "../../x"}, "parameter Stage: '../../x' is not one of AllowedValues ['dev', 'prod']"),
        ({"Stage": "Dev"}, "is not one of AllowedValues"),
        ({"Prefix": "Jg"}, "parameter Prefix: 'Jg' does not match AllowedPattern '[a-z][a-z0-9-]{0,31}'"),
        ({"Prefix": "jg\n"}, "does not match AllowedPattern"),  # the whole value must match
        ({"Prefix": "abcdefghijk"}, "is longer than MaxLength 10"),
        ({"Name": "a"}, "is shorter than MinLength 2 (two letters or more)"),
        ({"Memory": "abc"}, "parameter Memory: 'abc' is not a number"),
        ({"Memory": "nan"}, "is not a number"),
        ({"Memory": ""}, "is not a number"),
        ({"Memory": "64"}, "is less than MinValue 128"),
        ({"Memory": "99999"}, "is greater than MaxValue 10240"),
        ({"Timeout": "45"}, "parameter Timeout: '45' is not one of AllowedValues ['30', '60']"),
        ({"Arns": "arn:aws:sqs:x,http://evil"}, "parameter Arns: 'arn:aws:sqs:x,http://evil' item 'http://evil'"),
        ({"Sizes": "1,x"}, "item 'x' is not a number"),
        ({"Colour": "red"}, "parameter 'Colour': the template declares no such parameter"),
    ],
)
def test_what_cloudformation_refuses_is_refused(overrides, expected):
    (problem,) = check_parameters(TEMPLATE, values(**overrides))
    assert expected in problem
    assert len(problem) < 300


def test_a_parameter_without_default_needs_a_value():
    given = values()
    del given["Secret"]
    assert check_parameters(TEMPLATE, given) == ["parameter Secret: must have a value (it has no Default)"]


def test_no_echo_values_are_never_quoted():
    (problem,) = check_parameters(TEMPLATE, values(Secret="hunter2"))
    assert "hunter2" not in problem and "(NoEcho value)" in problem


def test_long_values_are_cut():
    (problem,) = check_parameters(TEMPLATE, values(Stage="x" * 100_000))
    assert len(problem) < 300 and "(100000 characters)" in problem


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("root:x:0:0:root:/root:/bin/bash\n", "the file holds a YAML str, not a mapping"),
        ("Resources: {}\n", "no `Transform: AWS::Serverless-2016-10-31`"),
        ("Transform: AWS::Serverless-2016-10-31\nResources: []\n", "no Resources mapping"),
        ("Transform: AWS::Serverless-2016-10-31\nResources: {A: 1}\n", "every resource needs a mapping with a Type"),
        ("key: [unclosed\n", ": not valid YAML or JSON: "),
    ],
)
def test_a_template_that_is_not_sam_is_refused_in_one_line(tmp_path, content, expected):
    path = tmp_path / "t.yaml"
    path.write_text(content)
    with pytest.raises(ValueError) as caught:
        load_sam_template(path)
    (line,) = str(caught.value).splitlines()
    assert line.startswith(f"{path}: ") and expected in line


@pytest.mark.parametrize(("make", "expected"), [("dir", "not a file"), ("none", "no such file"), ("big", "larger")])
def test_a_template_path_must_be_a_small_file(tmp_path, make, expected):
    path = tmp_path / "t.yaml"
    if make == "dir":
        path.mkdir()
    elif make == "big":
        path.write_text("#" * 1_000_001)
    with pytest.raises(ValueError, match=expected):
        load_sam_template(path)


@pytest.mark.parametrize("path", TEMPLATES)
def test_the_shipped_templates_are_sam_templates(path):
    assert check_sam_template(load_template(ROOT / path)) == []


@pytest.mark.parametrize("path", TEMPLATES)
def test_prod_keeps_point_in_time_recovery(path):
    """PITR is on by default; a throwaway dev stack may turn it off, prod may not (the templates' Rules, checked
    locally as CloudFormation checks them before it creates anything)."""
    template = load_template(ROOT / path)
    assert template["Parameters"]["EnablePointInTimeRecovery"]["Default"] == "true"
    assert parameter_values(template, {"EnablePointInTimeRecovery": "false"})["EnablePointInTimeRecovery"] == "false"
    assert parameter_values(template, {"Stage": "prod"})["Stage"] == "prod"
    with pytest.raises(ValueError) as caught:
        parameter_values(template, {"Stage": "prod", "EnablePointInTimeRecovery": "false"})
    assert str(caught.value) == (
        'rule ProdKeepsPointInTimeRecovery: Stage prod keeps point-in-time recovery on (EnablePointInTimeRecovery "true")'
    )


RULES = {
    "Rules": {
        "Both": {"Assertions": [{"Assert": {"Fn::And": [{"Fn::Not": [{"Fn::Equals": [{"Ref": "A"}, "x"]}]},
                                                        {"Fn::Contains": [["1", "2"], {"Ref": "B"}]}]},
                                 "AssertDescription": "A is not x and B is 1 or 2"}]},
        "Either": {"RuleCondition": {"Fn::Or": [{"Fn::Equals": [{"Ref": "A"}, "y"]}, {"Fn::Equals": ["z", {"Ref": "A"}]}]},
                   "Assertions": [{"Assert": {"Fn::Equals": [{"Ref": "B"}, "1"]}}]},
        # a function this checker does not evaluate: CloudFormation judges it on AWS
        "Other": {"Assertions": [{"Assert": {"Fn::EachMemberIn": [{"Fn::ValueOfAll": ["AWS::EC2::Subnet::Id", "VpcId"]},
                                                                  {"Fn::RefAll": "AWS::EC2::VPC::Id"}]}}]},
    }
}  # fmt: skip


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("w", "1", []),
        ("x", "1", ["rule Both: A is not x and B is 1 or 2"]),
        ("w", "3", ["rule Both: A is not x and B is 1 or 2"]),
        ("y", "2", ["rule Either: an assertion fails"]),
        ("z", "1", []),
    ],
)
def test_rules_are_checked_as_cloudformation_checks_them(a, b, expected):
    assert check_rules(RULES, {"A": a, "B": b}) == expected
