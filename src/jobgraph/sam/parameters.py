"""Template parameter values, checked as CloudFormation checks them before it creates anything.

Local deploys call these before anything is created, so a local run refuses what a deploy to AWS would.

``check_parameters(template, values) -> list[str]``
    What CloudFormation would refuse in these parameter values (AllowedValues, AllowedPattern, Min/MaxValue,
    Min/MaxLength, Number, unknown names, missing values), one line each; empty when valid.

``check_rules(template, values) -> list[str]``
    The template's ``Rules`` (RuleCondition, Assertions) that fail for these values, one line each.

``parameter_values(template, overrides) -> dict``
    Overrides over the defaults, checked (``check_parameters``, then ``check_rules``); ValueError with one
    line otherwise.
"""

from __future__ import annotations

import re

_LIST_TYPES = ("CommaDelimitedList", "List<Number>")


def _is_number(text: str) -> bool:
    # CloudFormation's Number: an integer or a float, written plainly ("1", "-2.5", "1e3"); not nan/inf
    return bool(re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text.strip()))


def parameter_values(template: dict, overrides: dict[str, str]) -> dict[str, str]:
    """Every parameter's value as CloudFormation would take it: ``overrides`` over the template's defaults;
    ValueError, one line, naming every problem :func:`check_parameters` finds."""
    declared = template.get("Parameters") or {}
    values = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
    values.update(overrides)
    problems = check_parameters(template, values) or check_rules(template, values)
    if problems:
        raise ValueError("; ".join(problems))
    return values


class _Unknown(Exception):
    """A rule function this checker does not evaluate (CloudFormation will judge the rule on AWS)."""


def _rule_value(node, values: dict[str, str]):
    if isinstance(node, str | int | float | bool):
        return str(node).lower() if isinstance(node, bool) else str(node)
    if isinstance(node, list):
        return [_rule_value(item, values) for item in node]
    if isinstance(node, dict) and len(node) == 1:
        ((name, argument),) = node.items()
        if name == "Ref" and argument in values:
            return values[argument]
        if name == "Fn::Equals":
            left, right = (_rule_value(a, values) for a in argument)
            return left == right
        if name == "Fn::Not":
            return not _rule_value(argument[0], values)
        if name == "Fn::And":
            return all(_rule_value(a, values) for a in argument)
        if name == "Fn::Or":
            return any(_rule_value(a, values) for a in argument)
        if name == "Fn::Contains":
            choices, value = (_rule_value(a, values) for a in argument)
            return value in choices
    raise _Unknown(node)


def check_rules(template: dict, values: dict[str, str]) -> list[str]:
    """The template's ``Rules`` as CloudFormation applies them before it creates anything: for each rule
    whose RuleCondition holds (or that has none), every Assert must hold, else its AssertDescription.
    Rules using functions beyond Ref, Equals, Not, And, Or and Contains are left to CloudFormation."""
    problems = []
    for name, rule in (template.get("Rules") or {}).items():
        try:
            if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], values):
                continue
            for assertion in rule.get("Assertions") or []:
                if not _rule_value(assertion["Assert"], values):
                    problems.append(f"rule {name}: {assertion.get('AssertDescription') or 'an assertion fails'}")
        except (_Unknown, KeyError, TypeError, ValueError):
            continue
    return problems


def check_parameters(template: dict, values: dict[str, str]) -> list[str]:
    """The problems CloudFormation would report for these parameter values, one line each (empty: valid).

    ``values``: every parameter's value as CloudFormation receives it (overrides over the template's
    defaults, all strings). Checked as CloudFormation documents: names the template declares, a value for
    each parameter without a Default; Number (and each List<Number> item) a number within MinValue/MaxValue;
    String within MinLength/MaxLength; AllowedValues and AllowedPattern (the whole value must match) on a
    String, or on each item of a CommaDelimitedList. A NoEcho parameter's value is never quoted.
    """
    from jobgraph.core.bounds import quote

    declared = template.get("Parameters") or {}
    problems = [
        f"parameter {quote(name)}: the template declares no such parameter" for name in values if name not in declared
    ]
    for name, spec in declared.items():
        if name not in values:
            problems.append(f"parameter {name}: must have a value (it has no Default)")
            continue
        value, kind = str(values[name]), str(spec.get("Type", "String"))
        shown = "(NoEcho value)" if str(spec.get("NoEcho", "false")).lower() == "true" else quote(value)
        hint = f" ({spec['ConstraintDescription']})" if spec.get("ConstraintDescription") else ""
        items = [item.strip() if kind == "List<Number>" else item for item in value.split(",")]
        items = items if kind in _LIST_TYPES else [value]
        for item in items:
            what = f"parameter {name}: {shown}" + (f" item {quote(item)}" if kind in _LIST_TYPES else "")
            if kind in ("Number", "List<Number>"):
                if not _is_number(item):
                    problems.append(f"{what} is not a number")
                    continue
                number = float(item)
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    problems.append(f"{what} is less than MinValue {spec['MinValue']}{hint}")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    problems.append(f"{what} is greater than MaxValue {spec['MaxValue']}{hint}")
            if kind == "String":
                if "MinLength" in spec and len(item) < int(spec["MinLength"]):
                    problems.append(f"{what} is shorter than MinLength {spec['MinLength']}{hint}")
                if "MaxLength" in spec and len(item) > int(spec["MaxLength"]):
                    problems.append(f"{what} is longer than MaxLength {spec['MaxLength']}{hint}")
            allowed = spec.get("AllowedValues")
            if allowed is not None and item not in [str(a) for a in allowed]:
                problems.append(f"{what} is not one of AllowedValues {[str(a) for a in allowed]}{hint}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and kind in ("String", "CommaDelimitedList"):
                try:
                    matched = re.fullmatch(str(pattern), item) is not None
                except re.error:
                    matched = True  # a Java-only construct: CloudFormation will judge it
                if not matched:
                    problems.append(f"{what} does not match AllowedPattern {quote(str(pattern))}{hint}")
    return problems
