"""Runtime stage: check each generated example against the task before it can enter the dataset.

An answer that passed the JSON Schema can still be a bad example: a value of the
right type but too long, a label that is not a class, an example that breaks a
constraint of the task. `ExampleValidator` checks field values with the
compiler's own `value_problem`, the label, and every constraint; a rejection
names the check and the offending value so `rejected.jsonl` explains itself.
An example whose label is not the class its generation cell asked for is
rejected as off target ("label:off_target"): the cell's prompt asked for that
class, so another label means the model did not follow it, and such examples
would shift the training set towards whatever the model prefers. A blank string
is rejected too ("empty:<field>") unless the field allows it with `min_length: 0`.
Accepted examples are also run through the rationales' rules as labeling
functions, and whether they agree with the generated label is recorded (it is
evidence about the rationale or the generator, not a reason to reject).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..compiler import ExpressionEvaluationError, InputField, TaskIR, value_problem
from .labeling import labeling_functions, rule_environment

_MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class Rejection:
    check: str  # "field", "empty", "label", "constraint", "shape"
    id: str  # field name, constraint id, "label" (not a class), "off_target" (not the cell's class)
    message: str
    value: Any = None

    @property
    def reason(self) -> str:
        """The key under which rejections are counted in stats.json."""
        return f"{self.check}:{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "id": self.id, "message": self.message, "value": _clip(self.value)}


@dataclass(frozen=True)
class RuleVotes:
    fired: tuple[str, ...]  # ids of the rationales whose rule holds for the example
    classes: tuple[str, ...]  # the classes those rules vote for
    agrees: bool | None  # None: no rule fired; else whether every vote matches the generated label
    errors: tuple[str, ...] = ()  # rules that could not be evaluated on this example

    def to_json(self) -> dict[str, Any]:
        return {"fired": list(self.fired), "votes": list(self.classes), "agrees": self.agrees,
                **({"errors": list(self.errors)} if self.errors else {})}


class ExampleValidator:
    """Validates generated examples of one task; built once, applied to every example."""

    def __init__(self, task: TaskIR) -> None:
        lexicons = task.lexicon_words()
        self.task = task
        self.fields = task.fields
        self.classes = frozenset(task.class_names)
        self.constraints = [(c, c.check.evaluator(lexicons)) for c in task.constraints if c.check.node is not None]
        self.labeling_functions = labeling_functions(task)  # the same voters `taskc run` applies to the pool

    def check(self, example: Any, target_class: str | None = None) -> Rejection | None:
        """The first reason ``example`` cannot be used, or None when it is valid. ``target_class`` is the class
        its generation cell asked for: an example labeled otherwise is off target and rejected."""
        if not isinstance(example, dict):
            return Rejection("shape", "example", "example is not a JSON object", example)
        for f in self.fields:
            if f.name not in example or example[f.name] is None:
                if f.optional:
                    continue
                return Rejection("field", f.name, f"field '{f.name}' is missing")
            problem = value_problem(f, example[f.name])
            if problem:
                return Rejection("field", f.name, problem, example[f.name])
            empty = _empty_problem(f, example[f.name])
            if empty:
                return Rejection("empty", f.name, empty, example[f.name])
        label = example.get("label")
        if label not in self.classes:
            return Rejection("label", "label", f"label must be one of {', '.join(sorted(self.classes))}", label)
        if target_class is not None and label != target_class:
            return Rejection("label", "off_target", f"labeled '{label}', but its cell asked for examples of "
                                                    f"'{target_class}'", label)
        env = self.environment(example) | {"label": label}
        for constraint, evaluate in self.constraints:
            try:
                holds = evaluate(env)
            except ExpressionEvaluationError as exc:
                return Rejection("constraint", constraint.id, f"could not be evaluated: {exc}")
            if not holds:
                message = constraint.message or f"constraint '{constraint.id}' does not hold"
                return Rejection("constraint", constraint.id, message, self.inputs(example))
        return None

    def environment(self, example: Mapping[str, Any]) -> dict[str, Any]:
        """The input fields of an example as an expression environment (absent optional fields are null)."""
        return rule_environment(self.task, example)

    def inputs(self, example: Mapping[str, Any]) -> dict[str, Any]:
        return {f.name: example[f.name] for f in self.fields if f.name in example}

    def votes(self, example: Mapping[str, Any], label: str) -> RuleVotes:
        env = self.environment(example)
        fired: list[str] = []
        classes: list[str] = []
        errors: list[str] = []
        for function in self.labeling_functions:
            try:
                if function.holds(env):
                    fired.append(function.rationale_id)
                    classes.append(function.class_name)
            except ExpressionEvaluationError:
                errors.append(function.rationale_id)
        agrees = None if not fired else all(c == label for c in classes)
        return RuleVotes(tuple(fired), tuple(classes), agrees, tuple(errors))


def _empty_problem(f: InputField, value: Any) -> str | None:
    """A blank string (or a blank item of a list) says nothing about the input: rejected, unless a string
    field allows it with `min_length: 0`."""
    if isinstance(value, str) and not value.strip() and f.min_length != 0:
        return f"field '{f.name}' is an empty string (set min_length: 0 on the field to allow it)"
    if isinstance(value, list) and any(isinstance(item, str) and not item.strip() for item in value):
        return f"field '{f.name}' has an empty item"
    return None


def _clip(value: Any) -> Any:
    """Keep rejected values readable: long strings are cut, structures kept as they are."""
    if isinstance(value, str) and len(value) > _MAX_VALUE_CHARS:
        return value[:_MAX_VALUE_CHARS] + "..."
    return value
