"""Runtime stage: a fast yes/no check of answers against the plan's response schema.

Every answer is checked against the JSON Schema the plan sent as ``response_format``. The
`jsonschema` library does it right but slowly (about 0.13 ms for a one-example answer, a twentieth
of the CPU a whole call costs at high concurrency). The schemas the compiler emits use a small
subset of JSON Schema (the subset OpenAI's strict structured outputs accept): ``type``,
``properties``, ``required``, ``additionalProperties: false``, ``items``, ``enum`` of strings and
annotations. This module compiles such a schema once into nested closures that answer "valid or
not" in a few microseconds. It only says yes or no: on "no", the caller asks `jsonschema` for the
message, and `jsonschema` has the last word. A schema with any other keyword is not compiled
(``compile_schema_check`` returns None) and `jsonschema` does all the work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset({"description", "title", "$comment", "examples", "default"})
_KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties", "items", "enum"}) | _ANNOTATIONS


def _is_integer(value: Any) -> bool:
    # JSON Schema: 1 and 1.0 are integers; true is not a number at all.
    if type(value) is int:
        return True
    return type(value) is float and value.is_integer()


_TYPE_TESTS: dict[str, Check] = {
    "object": lambda value: type(value) is dict,
    "array": lambda value: type(value) is list,
    "string": lambda value: type(value) is str,
    "integer": _is_integer,
    "number": lambda value: type(value) in (int, float),
    "boolean": lambda value: type(value) is bool,
    "null": lambda value: value is None,
}


class _Unsupported(Exception):
    """The schema uses something outside the subset; leave it to jsonschema."""


def compile_schema_check(schema: Any) -> Check | None:
    """A function telling whether a parsed JSON value satisfies ``schema``, or None if the schema is
    outside the subset this module understands."""
    try:
        return _compile(schema)
    except _Unsupported:
        return None


def _compile(schema: Any) -> Check:
    if not isinstance(schema, Mapping) or not set(schema) <= _KEYWORDS:
        raise _Unsupported
    checks = [check for check in (_type_check(schema), _enum_check(schema), _properties_check(schema),
                                  _items_check(schema)) if check is not None]
    if not checks:
        return lambda value: True
    if len(checks) == 1:
        return checks[0]
    return lambda value: all(check(value) for check in checks)


def _type_check(schema: Mapping[str, Any]) -> Check | None:
    if "type" not in schema:
        return None
    names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if not names or not all(isinstance(name, str) and name in _TYPE_TESTS for name in names):
        raise _Unsupported
    tests = [_TYPE_TESTS[name] for name in names]
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


def _enum_check(schema: Mapping[str, Any]) -> Check | None:
    if "enum" not in schema:
        return None
    allowed = schema["enum"]
    # Only strings: JSON Schema's equality differs from Python's for numbers and booleans (1 vs true).
    if not isinstance(allowed, list) or not all(isinstance(item, str) for item in allowed):
        raise _Unsupported
    members = frozenset(allowed)
    return lambda value: type(value) is str and value in members


def _properties_check(schema: Mapping[str, Any]) -> Check | None:
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    closed = schema.get("additionalProperties", True)
    if not isinstance(properties, Mapping) or not isinstance(required, list) or closed not in (True, False):
        raise _Unsupported
    if not all(isinstance(name, str) for name in required):
        raise _Unsupported
    if not properties and not required and closed:
        return None
    property_checks = {name: _compile(sub) for name, sub in properties.items()}
    required_names = tuple(required)
    allowed_names = frozenset(properties)

    def check(value: Any) -> bool:
        if type(value) is not dict:
            return True  # properties, required and additionalProperties apply to objects only
        for name in required_names:
            if name not in value:
                return False
        if not closed and not allowed_names.issuperset(value):
            return False
        for name, item in value.items():
            property_check = property_checks.get(name)
            if property_check is not None and not property_check(item):
                return False
        return True

    return check


def _items_check(schema: Mapping[str, Any]) -> Check | None:
    if "items" not in schema:
        return None
    item_check = _compile(schema["items"])

    def check(value: Any) -> bool:
        if type(value) is not list:
            return True  # items applies to arrays only
        return all(item_check(item) for item in value)

    return check
