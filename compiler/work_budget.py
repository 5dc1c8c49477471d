"""Stage 3e: the work budget of an untrusted task file, checked before the work is done.

A task file from a pull request is checked and compiled in CI, so a small file
must not buy unbounded time or memory. The budget caps what a task file can ask
for, each cap reported as diagnostic E038 at the setting or expression that
exceeds it, before any of that work starts:

- planned LLM calls and generated examples (the generation matrix: classes ×
  rationales × counts / per_call), so `per_rationale: 10**18` is an error in
  microseconds, not a plan that never finishes;
- rendered prompt bytes, per prompt and over all prompts (a big description
  copied into every generation prompt), counted while rendering, which stops at
  the cap;
- the steps an expression may take on one input, bounded statically: a lambda
  over a lexicon costs the lexicon's size times its body, over a list field its
  `max_length` (or DEFAULT_LIST_ITEMS) times its body, so nested lambdas over a
  2,000-word lexicon are refused instead of run 8e9 times on a worked example
  (and again on every pool item).

The caps belong to whoever runs taskc, not to the task file: each can be raised
by an environment variable `TASKC_LIMIT_<NAME>` (e.g. TASKC_LIMIT_PLANNED_CALLS).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from . import expr_nodes as n
from . import ir

DEFAULT_LIST_ITEMS = 1_000  # items assumed in a list field without max_length (the cost bound only)
DEFAULT_TEXT_WORDS = 2_000  # words assumed in words(text) of a text without max_length


@dataclass(frozen=True)
class WorkLimits:
    planned_calls: int = 10_000
    generated_examples: int = 200_000
    prompt_bytes: int = 512 * 1024  # one rendered prompt
    total_prompt_bytes: int = 32 * 1024 * 1024  # every rendered prompt of a compile
    expression_steps: int = 2_000_000  # one expression on one input

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkLimits:
        """The defaults, each overridden by TASKC_LIMIT_<NAME> when set to a positive integer."""
        env = os.environ if environ is None else environ
        given: dict[str, int] = {}
        for f in fields(cls):
            raw = env.get(f"TASKC_LIMIT_{f.name.upper()}")
            if raw is not None and raw.strip().isdigit() and int(raw) > 0:
                given[f.name] = int(raw)
        return cls(**given)


def env_name(limit: str) -> str:
    return f"TASKC_LIMIT_{limit.upper()}"


@dataclass(frozen=True)
class PlannedWork:
    calls: int
    examples: int


def planned_work(task: ir.TaskIR) -> PlannedWork:
    """Calls and examples of the generation matrix, counted without building it."""
    settings = task.generate
    classes, rationales = len(task.classes), len(task.rationales)
    per_call = max(1, settings.per_call)
    own = rationales * settings.per_rationale  # each rationale, in its own class
    near = rationales * max(0, classes - 1) * settings.near_misses
    per_class = classes * settings.per_class
    calls = (rationales * math.ceil(settings.per_rationale / per_call)
             + rationales * max(0, classes - 1) * math.ceil(settings.near_misses / per_call)
             + classes * math.ceil(settings.per_class / per_call))
    return PlannedWork(calls, own + near + per_class)


def expression_steps(node: n.Expr | n.Lambda, lexicon_sizes: Mapping[str, int],
                     list_items: Mapping[str, int]) -> int:
    """An upper bound of the steps ``node`` takes on one input (nodes visited, lambda bodies once per item)."""
    if isinstance(node, n.Call) and node.function in n.LIST_FUNCTIONS and len(node.arguments) == 2 \
            and isinstance(body := node.arguments[1], n.Lambda):
        over = node.arguments[0]
        items = _items(over, lexicon_sizes, list_items)
        return 1 + expression_steps(over, lexicon_sizes, list_items) \
            + items * (1 + expression_steps(body.body, lexicon_sizes, list_items))
    return 1 + sum(expression_steps(child, lexicon_sizes, list_items) for child in n.children(node))


def _items(node: n.Expr | n.Lambda, lexicon_sizes: Mapping[str, int], list_items: Mapping[str, int]) -> int:
    if isinstance(node, n.LexiconRef):
        return lexicon_sizes.get(node.name, 0)
    if isinstance(node, n.ListLiteral):
        return len(node.items)
    if isinstance(node, n.Name):
        return list_items.get(node.name, DEFAULT_LIST_ITEMS)
    if isinstance(node, n.Call) and node.function == "words":
        return DEFAULT_TEXT_WORDS
    return DEFAULT_LIST_ITEMS


def list_sizes(task: ir.TaskIR) -> dict[str, int]:
    """Items a list field can hold (its max_length), for the cost bound."""
    return {f.name: f.max_length if f.max_length is not None else DEFAULT_LIST_ITEMS
            for f in task.fields if f.type == "list[string]"}


__all__ = ["DEFAULT_LIST_ITEMS", "PlannedWork", "WorkLimits", "env_name", "expression_steps", "list_sizes",
           "planned_work"]
