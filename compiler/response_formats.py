"""Emitter: the JSON Schemas an LLM's answers must follow (OpenAI structured outputs).

A generation call answers with a list of examples (the task's fields and a
label), a classification call with a label and the rationales it cites; both
schemas are strict, so an answer either parses into the task's types or is
refused by the runtime's validator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import ir


def _field_schema(f: ir.InputField) -> dict[str, Any]:
    by_type: dict[str, dict[str, Any]] = {
        "string": {"type": "string"}, "integer": {"type": "integer"}, "number": {"type": "number"},
        "boolean": {"type": "boolean"}, "list[string]": {"type": "array", "items": {"type": "string"}},
        "enum": {"type": "string", "enum": list(f.values)},
    }
    base = by_type[f.type]
    if f.description:
        base = {**base, "description": f.description}
    if f.optional:
        base = {**base, "type": [base["type"], "null"]}
    return base


def generation_response_format(task: ir.TaskIR) -> dict[str, Any]:
    properties = {f.name: _field_schema(f) for f in task.fields}
    properties["label"] = {"type": "string", "enum": list(task.class_names)}
    example = {"type": "object", "properties": properties, "required": list(properties),
               "additionalProperties": False}
    schema = {"type": "object", "properties": {"examples": {"type": "array", "items": example}},
              "required": ["examples"], "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": "generated_examples", "strict": True, "schema": schema}}


def classification_response_format(task: ir.TaskIR) -> dict[str, Any]:
    schema = {"type": "object", "properties": {
        "label": {"type": "string", "enum": list(task.class_names)},
        "rationales": {"type": "array", "items": {"type": "string", "enum": [r.id for r in task.rationales]}},
    }, "required": ["label", "rationales"], "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": "classification", "strict": True, "schema": schema}}


def label_only_format(classes: Sequence[str]) -> dict[str, Any]:
    """The fine-tuned model's answer: it learnt to answer with a label, so it is asked for one only."""
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": list(classes)}},
              "required": ["label"], "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": "label", "strict": True, "schema": schema}}
