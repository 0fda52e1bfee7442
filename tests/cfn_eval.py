"""Evaluate a (transformed) CloudFormation template for a set of parameter values, as CloudFormation would.

Only what the template tests need: parameter defaults and validation, conditions, and the intrinsics
Ref / Fn::FindInMap / Fn::If / Fn::Sub / Fn::Join / Fn::Split / Fn::GetAtt. References resolve to the
physical values given in ``refs`` (logical id / pseudo parameter → value) and ``attributes``
("Logical.Attribute" → value) if any, else to readable placeholders (``<Logical>`` / ``<Logical.Attribute>``);
unknown functions raise.

Nested stacks (``Stack.from_tree``, the shared pieces under templates/shared/): each nested stack is a
``Stack`` of its own whose parameters are what its parent passes, and ``Fn::GetAtt [Child, Outputs.Name]``
in the parent evaluates that output of the child, as CloudFormation does. ``walk()`` visits them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PSEUDO = {
    "AWS::StackName": "scenario-1-dev",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
NO_VALUE = object()


@dataclass
class Stack:
    template: dict
    overrides: dict = field(default_factory=dict)
    refs: dict = field(default_factory=dict)
    attributes: dict = field(default_factory=dict)
    children: dict = field(default_factory=dict)  # logical id of a nested stack -> its sam.template.TemplateTree

    @classmethod
    def from_tree(cls, tree, overrides: dict | None = None, refs: dict | None = None, attributes: dict | None = None):
        """The stack of ``tree`` (sam.template.transform_tree) with its nested stacks (evaluated lazily)."""
        return cls(tree.transformed, dict(overrides or {}), dict(refs or {}), dict(attributes or {}), tree.children)

    def nested(self, logical_id: str) -> Stack:
        """The nested stack ``logical_id``, its parameters as this stack passes them."""
        cache = self.__dict__.setdefault("_nested", {})
        if logical_id not in cache:
            passed = self.properties(logical_id).get("Parameters", {})
            child = self.children[logical_id]
            overrides = {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in passed.items()}
            cache[logical_id] = Stack(child.transformed, overrides, self.refs, self.attributes, child.children)
        return cache[logical_id]

    def walk(self):
        """(logical-id path, stack) of this stack and every nested one."""
        yield (), self
        for logical_id in self.children:
            for trail, stack in self.nested(logical_id).walk():
                yield (logical_id, *trail), stack

    def __post_init__(self):
        declared = self.template.get("Parameters", {})
        unknown = set(self.overrides) - set(declared)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        self.parameters = {}
        for name, spec in declared.items():
            value = str(self.overrides.get(name, spec.get("Default")))
            self._validate(name, spec, value)
            self.parameters[name] = value

    @staticmethod
    def _validate(name: str, spec: dict, value: str) -> None:
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            raise ValueError(f"{name}={value!r} not in {spec['AllowedValues']}")
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            raise ValueError(f"{name}={value!r} does not match {spec['AllowedPattern']}")
        if spec.get("Type") == "Number":
            number = float(value)
            if not spec.get("MinValue", number) <= number <= spec.get("MaxValue", number):
                raise ValueError(f"{name}={value} outside {spec.get('MinValue')}..{spec.get('MaxValue')}")

    # --------------------------------------------------------------------------------- conditions
    def condition(self, name: str) -> bool:
        return bool(self._evaluate_condition(self.template["Conditions"][name]))

    def _evaluate_condition(self, value):
        if isinstance(value, dict) and len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if fn == "Fn::Not":
                return not self._evaluate_condition(arg[0])
            if fn == "Fn::Or":
                return any(self._evaluate_condition(a) for a in arg)
            if fn == "Fn::And":
                return all(self._evaluate_condition(a) for a in arg)
            if fn == "Condition":
                return self.condition(arg)
        return self.resolve(value)

    def active(self, logical_id: str) -> bool:
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or self.condition(condition)

    # --------------------------------------------------------------------------------- intrinsics
    def resolve(self, value):
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                return self._ref(arg)
            if fn == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._attribute(f"{logical}.{attribute}")
            if fn == "Fn::FindInMap":
                mapping, top, second = (self.resolve(a) for a in arg)
                return self.template["Mappings"][mapping][str(top)][str(second)]
            if fn == "Fn::If":
                name, if_true, if_false = arg
                return self.resolve(if_true if self.condition(name) else if_false)
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                local = {k: self.resolve(v) for k, v in variables.items()}

                def substitute(match: re.Match) -> str:
                    name = match.group(1)
                    if name in local:
                        return str(local[name])
                    if "." in name:
                        return str(self._attribute(name))
                    return str(self._ref(name))

                return re.sub(r"\$\{([^}!]+)\}", substitute, text)
            if fn == "Fn::Join":
                separator, parts = arg
                return separator.join(str(p) for p in self.resolve(parts))
            if fn == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
            if fn.startswith("Fn::"):
                raise AssertionError(f"{fn} is not modelled by tests/cfn_eval.py")
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def _ref(self, name: str):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.refs:
            return self.refs[name]
        if name in self.parameters:
            if self.template["Parameters"][name].get("Type") == "CommaDelimitedList":
                return self.parameters[name].split(",")
            return self.parameters[name]
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.template["Resources"]:
            return f"<{name}>"
        raise AssertionError(f"Ref to unknown {name!r}")

    def _attribute(self, name: str):
        logical, _, attribute = name.partition(".")
        if logical in self.children and attribute.startswith("Outputs.") and name not in self.attributes:
            child = self.nested(logical)
            return child.resolve(child.template["Outputs"][attribute.removeprefix("Outputs.")]["Value"])
        return self.attributes.get(name, f"<{name}>")

    def properties(self, logical_id: str) -> dict:
        return self.resolve(self.template["Resources"][logical_id].get("Properties", {}))

    def resources_of_type(self, resource_type: str) -> list[str]:
        return sorted(
            logical_id
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == resource_type and self.active(logical_id)
        )
