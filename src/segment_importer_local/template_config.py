"""Read template.yaml: the one source of the stack's names and settings.

The local runner and the tests build their moto resources and function environments from
the template through this module, resolving the intrinsic functions the template uses
(Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split) with local values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_SHORT_TAGS = ("Ref", "Condition")
_FN_TAGS = (
    "Sub", "Join", "Select", "Split", "If", "Equals", "Not", "And", "Or", "FindInMap",
    "Base64", "Cidr", "ImportValue", "GetAZs", "GetAtt",
)  # fmt: skip
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template lacks something the caller expected, or uses an unsupported function."""


class _TemplateLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags into their long form."""


def _construct(loader: yaml.SafeLoader, tag_name: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_name == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    key = tag_name if tag_name in _SHORT_TAGS else f"Fn::{tag_name}"
    return {key: value}


for _tag in (*_SHORT_TAGS, *_FN_TAGS):
    _TemplateLoader.add_constructor(f"!{_tag}", lambda loader, node, _t=_tag: _construct(loader, _t, node))


def find_template() -> Path:
    """The template installed with this package: the checkout's own (src/../template.yaml).
    Never one found from the working folder: the local stack runs the code it names."""
    package = Path(__file__).resolve().parent
    for path in (package / "template.yaml", package.parent.parent / "template.yaml"):
        if path.is_file():
            return path
    raise TemplateError(f"no template.yaml installed with {package}; pass --template")


@dataclass
class StackTemplate:
    document: dict[str, Any]
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> StackTemplate:
        path = path or find_template()
        with path.open(encoding="utf-8") as stream:
            return cls(yaml.load(stream, Loader=_TemplateLoader), path)  # noqa: S506 - SafeLoader subclass

    @property
    def root(self) -> Path:
        if self.path is None:
            raise TemplateError("template has no path")
        return self.path.parent

    def parameter_defaults(self) -> dict[str, str]:
        return {
            name: str(spec.get("Default", "")) for name, spec in self.document.get("Parameters", {}).items()
        }

    def parameter_problem(self, name: str, value: str) -> str | None:
        """Why `value` is not allowed for parameter `name` by the template's own constraints
        (Type, MinValue/MaxValue, MinLength/MaxLength, AllowedPattern, AllowedValues), or None."""
        spec = self.document.get("Parameters", {}).get(name)
        if spec is None:
            return f"the template has no parameter {name}; it has {', '.join(self.parameter_defaults())}"
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(item) for item in allowed]:
            return f"{name} must be one of {', '.join(str(item) for item in allowed)}"
        if spec.get("Type") == "Number":
            return _number_problem(name, value, spec)
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            return f"{name} must match {pattern}"
        if len(value) < int(spec.get("MinLength", 0)) or len(value) > int(spec.get("MaxLength", 1 << 30)):
            return f"{name} must be {spec.get('MinLength', 0)} to {spec.get('MaxLength', 'any')} characters"
        return None

    def resource(self, logical_id: str) -> dict[str, Any]:
        try:
            return self.document["Resources"][logical_id]
        except KeyError:
            raise TemplateError(f"template has no resource {logical_id}") from None

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            name: resource
            for name, resource in self.document["Resources"].items()
            if resource.get("Type") == resource_type
        }

    def function_property(self, logical_id: str, name: str) -> Any:
        """A function property, falling back to Globals.Function; a list in both is the two
        joined, Globals' first (as SAM merges them: a function's Layers add to the global ones)."""
        properties = self.resource(logical_id).get("Properties", {})
        global_value = self.document.get("Globals", {}).get("Function", {}).get(name)
        if name in properties:
            own = properties[name]
            if isinstance(own, list) and isinstance(global_value, list):
                return [*global_value, *own]
            return own
        return global_value

    def function_environment(self, logical_id: str) -> dict[str, Any]:
        global_env = self.document.get("Globals", {}).get("Function", {}).get("Environment", {})
        own_env = self.resource(logical_id).get("Properties", {}).get("Environment", {})
        return {**global_env.get("Variables", {}), **own_env.get("Variables", {})}

    def function_events(self, logical_id: str, event_type: str) -> dict[str, dict[str, Any]]:
        events = self.resource(logical_id).get("Properties", {}).get("Events", {})
        return {
            name: event["Properties"] for name, event in events.items() if event.get("Type") == event_type
        }


def _number_problem(name: str, value: str, spec: dict[str, Any]) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return f"{name} must be a number, not {value!r}"
    if number != number or number in (float("inf"), float("-inf")):
        return f"{name} must be a finite number"
    if isinstance(spec.get("Default"), int) and not number.is_integer():  # a count or a size
        return f"{name} must be a whole number, not {value!r}"
    low, high = spec.get("MinValue"), spec.get("MaxValue")
    if (low is not None and number < float(low)) or (high is not None and number > float(high)):
        bounds = f"{low if low is not None else '-inf'} and {high if high is not None else 'inf'}"
        return f"{name} must be between {bounds} (the template's MinValue/MaxValue)"
    return None


@dataclass
class Resolver:
    """Resolves intrinsic functions against parameter values and local resource values."""

    parameters: Mapping[str, str]
    pseudo: Mapping[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # logical id -> what Ref returns
    attributes: dict[str, str] = field(default_factory=dict)  # "LogicalId.Attr" -> value
    conditions: Mapping[str, Any] = field(default_factory=dict)  # the template's Conditions section

    def define(self, logical_id: str, ref: str, **attributes: str) -> None:
        """Record a created resource's Ref value and attributes."""
        self.refs[logical_id] = ref
        for name, value in attributes.items():
            self.attributes[f"{logical_id}.{name}"] = value

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            handler = _INTRINSICS.get(key)
            if handler:
                return handler(self, value)
        return {key: self.resolve(value) for key, value in node.items()}

    def lookup(self, name: str) -> str:
        for table in (self.parameters, self.pseudo, self.refs, self.attributes):
            if name in table:
                return str(table[name])
        raise TemplateError(f"cannot resolve {name!r} locally")

    def condition(self, name: str) -> bool:
        """A named condition of the template, evaluated against the parameter values."""
        if name not in self.conditions:
            raise TemplateError(f"no condition {name!r} in the template")
        return bool(self.resolve(self.conditions[name]))

    def _sub(self, value: Any) -> str:
        text, variables = (value, {}) if isinstance(value, str) else (value[0], self.resolve(value[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            return str(variables[name]) if name in variables else self.lookup(name)

        return _SUB_VARIABLE.sub(replace, text)


_INTRINSICS: dict[str, Any] = {
    "Ref": lambda r, v: r.lookup(v),
    "Fn::GetAtt": lambda r, v: r.lookup(".".join(v)),
    "Fn::Sub": lambda r, v: r._sub(v),
    "Fn::Join": lambda r, v: str(v[0]).join(str(item) for item in r.resolve(v[1])),
    "Fn::Select": lambda r, v: r.resolve(v[1])[int(r.resolve(v[0]))],
    "Fn::Split": lambda r, v: str(r.resolve(v[1])).split(v[0]),
    "Fn::If": lambda r, v: r.resolve(v[1] if r.condition(v[0]) else v[2]),
    "Fn::Equals": lambda r, v: str(r.resolve(v[0])) == str(r.resolve(v[1])),
    "Fn::Not": lambda r, v: not r.resolve(v[0]),
    "Fn::And": lambda r, v: all(r.resolve(item) for item in v),
    "Fn::Or": lambda r, v: any(r.resolve(item) for item in v),
    "Condition": lambda r, v: r.condition(v),
}
