"""Stage 2: the structural check of a loaded task file against the JSON Schema in `spec/`.

The schema is the single description of the file's shape: the compiler checks
with it, `taskc schema` prints it and editors complete keys from it. Every
jsonschema error becomes a located diagnostic; unknown keys get a "did you
mean" drawn from the keys the schema allows at that place.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from .diagnostics import DiagnosticBag, did_you_mean
from .loader import JsonPath, SourceDocument


@lru_cache(maxsize=1)
def task_schema() -> dict[str, Any]:
    text = resources.files("taskc.spec").joinpath("task.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(task_schema())


def check_structure(doc: SourceDocument, bag: DiagnosticBag) -> bool:
    """Report every structural error of ``doc``; True when the file has the right shape."""
    if not isinstance(doc.data, dict):
        bag.error(doc.span_of(()), "E012", "a task file is a mapping of sections (task, input, classes, ...)")
        return False
    errors = sorted(_validator().iter_errors(doc.data), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    before = len(bag.items)
    for error in errors:
        _report(doc, error, bag)
    for path in _non_finite_numbers(doc.data, ()):
        # YAML's .nan / .inf pass JSON Schema's "number" (every comparison with NaN is false) and would be
        # written into plan.json as NaN, which is not JSON
        bag.error(doc.span_of(path), "E012", f"{_describe(path)} must be a finite number, not {_doc_value(doc, path)}")
    return len(bag.items) == before


def _non_finite_numbers(value: object, path: JsonPath) -> list[JsonPath]:
    if isinstance(value, float) and not math.isfinite(value):
        return [path]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _non_finite_numbers(item, path + (key,))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in _non_finite_numbers(item, path + (index,))]
    return []


def _doc_value(doc: SourceDocument, path: JsonPath) -> str:
    value: object = doc.data
    for key in path:
        value = value[key]  # type: ignore[index]
    return str(value)


def _report(doc: SourceDocument, error: jsonschema.ValidationError, bag: DiagnosticBag) -> None:
    path: JsonPath = tuple(error.absolute_path)
    where = _describe(path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        for key in _unexpected_keys(error.instance, allowed):
            hint = did_you_mean(key, allowed)
            expected = ", ".join(allowed)
            bag.error(doc.key_span_of(path + (key,)), "E010", f"unknown key '{key}' in {where}",
                      hint or f"allowed keys: {expected}")
        return
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        bag.error(doc.span_of(path), "E011", f"{where} is missing required key '{missing}'")
        return
    if error.validator == "oneOf" and path[:1] == ("lexicons",):
        bag.error(doc.span_of(path), "E012",
                  f"{where} must be a list of words or a mapping with a 'file' key")
        return
    if error.validator == "propertyNames":
        bad = error.instance if isinstance(error.instance, str) else str(error.instance)
        span = doc.key_span_of(path + (bad,)) if isinstance(bad, str) else doc.span_of(path)
        bag.error(span, "E012", f"'{bad}' is not a valid name in {where}",
                  "names start with a letter or '_' and contain letters, digits and '_'")
        return
    if error.validator == "enum":
        options = [str(o) for o in error.validator_value]
        hint = did_you_mean(str(error.instance), options) if isinstance(error.instance, str) else None
        bag.error(doc.span_of(path), "E012", f"{where} must be one of: {', '.join(options)}",
                  hint)
        return
    if error.validator == "type":
        expected = error.validator_value
        got = _json_type(error.instance)
        hint = None
        if expected == "string" and isinstance(error.instance, (bool, int, float)) or error.instance is None:
            hint = "quote the value to make it a string"
        bag.error(doc.span_of(path), "E012", f"{where} must be {_article(expected)}, not {got}", hint)
        return
    message = error.message
    if len(message) > 160:
        message = message[:157] + "..."
    bag.error(doc.span_of(path), "E012", f"{where}: {message}")


def _unexpected_keys(instance: Any, allowed: list[str]) -> list[str]:
    if not isinstance(instance, dict):
        return []
    return [key for key in instance if key not in allowed]


def _describe(path: JsonPath) -> str:
    if not path:
        return "the task file"
    parts = [f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path)]
    return "'" + "".join(parts) + "'"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _article(expected: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
             "number": "a number", "boolean": "a boolean"}
    if isinstance(expected, list):
        return " or ".join(names.get(str(e), str(e)) for e in expected)
    return names.get(expected, str(expected))
