"""Emitter helper: what an input reads as, in words, and its field views.

The text of an input is its fields' values joined by `FIELD_SEPARATOR`, in
declaration order (a list item by item, a number or a boolean as `name value`),
not its JSON: keys and brackets are not words. Every student reads an input this
way, and the call plan embeds exactly these texts, so both are defined here, in
the compiler, and the runtime imports them through the façade.

A *field view* of an input with two or more filled text fields is the same input
with one text field alone (the others emptied): a menu shows only the name, and
what the ingredients taught about a label should reach the name too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import ir

TEXT_TYPES = ("string", "list[string]", "enum")  # fields whose values are words
VIEW_TYPES = ("string", "list[string]")  # fields a field view keeps alone or empties
FIELD_SEPARATOR = " | "
EMPTY_TEXT = "(empty)"  # embeddings endpoints refuse an empty input: an input with no words is embedded as this


def item_text(task: ir.TaskIR, values: Mapping[str, Any]) -> str:
    """The words of an input: its text fields' values in declaration order (lists item by item)."""
    parts: list[str] = []
    for field in task.fields:
        value = values.get(field.name)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(str(v) for v in value)
        elif value is not None and field.type not in TEXT_TYPES:
            parts.append(f"{field.name} {value}")
    return FIELD_SEPARATOR.join(parts)


def embedded_text(task: ir.TaskIR, values: Mapping[str, Any]) -> str:
    """The text an embeddings request sends for an input: its `item_text`, or EMPTY_TEXT when that is blank."""
    text = item_text(task, values)
    return text if text.strip() else EMPTY_TEXT


def field_view_values(task: ir.TaskIR, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The field views of an input (none unless two or more text fields are filled), in field order."""
    text_fields = [f for f in task.fields if f.type in VIEW_TYPES]
    filled = [f for f in text_fields if values.get(f.name)]
    if len(filled) < 2:
        return []
    views = []
    for kept in filled:
        view = dict(values)
        for other in text_fields:
            if other.name != kept.name and other.name in view:
                view[other.name] = "" if other.type == "string" else []
        views.append(view)
    return views


def most_field_views(task: ir.TaskIR) -> int:
    """How many field views an input can have at most: one per text field, when there are two or more."""
    count = sum(f.type in VIEW_TYPES for f in task.fields)
    return count if count >= 2 else 0


__all__ = ["EMPTY_TEXT", "FIELD_SEPARATOR", "TEXT_TYPES", "VIEW_TYPES", "embedded_text", "field_view_values",
           "item_text", "most_field_views"]
