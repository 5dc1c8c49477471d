"""Runtime stage: check each generated example against the task before it can enter the dataset.

An answer that passed the JSON Schema can still be a bad example: a value of the
right type but too long, a label that is not a class, an example that breaks a
constraint of the task. `ExampleValidator` checks field values with the
compiler's own `value_problem`, the label, and every constraint; a rejection
names the check and the offending value so `rejected.jsonl` explains itself.
Accepted examples are also run through the rationales' rules as labeling
functions, and whether they agree with the generated label is recorded (it is
evidence about the rationale or the generator, not a reason to reject).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..compiler.expr_eval import ExpressionEvaluationError
from ..compiler.ir import TaskIR
from ..compiler.passes import value_problem
from .labeling import labeling_functions, rule_environment

_MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class Rejection:
    check: str  # "field", "label", "constraint", "shape"
    id: str  # field name, constraint id, "label"
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

    def check(self, example: Any) -> Rejection | None:
        """The first reason ``example`` cannot be used, or None when it is valid."""
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
        label = example.get("label")
        if label not in self.classes:
            return Rejection("label", "label", f"label must be one of {', '.join(sorted(self.classes))}", label)
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


def _clip(value: Any) -> Any:
    """Keep rejected values readable: long strings are cut, structures kept as they are."""
    if isinstance(value, str) and len(value) > _MAX_VALUE_CHARS:
        return value[:_MAX_VALUE_CHARS] + "..."
    return value
