"""Stage 5: semantic passes over the IR, run in the order of `SEMANTIC_PASSES`.

Each pass does one thing and reports diagnostics into the bag instead of
raising; all of them run even after errors, so one `taskc check` shows every
problem of a file. Warnings flag what is legal but suspicious.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import ir
from .diagnostics import DiagnosticBag, did_you_mean
from .expr_check import ExpressionChecker
from .expr_eval import ExpressionEvaluationError
from .expr_nodes import lexicons_used
from .expr_types import Scope, field_type, metric_types
from .functions import FUNCTIONS
from .lexicon_coverage import knowledge_gaps, sample_records
from .loader import SourceDocument
from .work_budget import WorkLimits, env_name, expression_steps, list_sizes, planned_work

RESERVED_NAMES = frozenset({"label", "lexicon", "and", "or", "not", "in", "implies", "true", "false"})


@dataclass
class PassContext:
    doc: SourceDocument
    bag: DiagnosticBag


def scope_for(task: ir.TaskIR, context: str) -> Scope:
    """The names an expression may use in ``context`` (rule, constraint or criterion)."""
    lexicons = frozenset(lexicon.name for lexicon in task.lexicons)
    if context == "criterion":
        return Scope(context, classes=task.class_names, metrics=metric_types(task.class_names),
                     hidden_fields=frozenset(task.field_names))
    fields = {f.name: field_type(f.type, f.values) for f in task.fields}
    return Scope(context, fields, lexicons, task.class_names, allows_label=context == "constraint")


def check_field_names(task: ir.TaskIR, ctx: PassContext) -> None:
    for f in task.fields:
        if f.name in RESERVED_NAMES or f.name in FUNCTIONS:
            ctx.bag.error(f.span, "E031", f"'{f.name}' cannot name an input field: it is reserved in expressions")
        if f.type == "enum" and not f.values:
            ctx.bag.error(f.span, "E011", f"enum field '{f.name}' needs 'values'")
        if f.type != "enum" and f.values:
            ctx.bag.warning(f.span, "W106", f"'values' is ignored for a field of type {f.type}")
        if f.min_length is not None and f.max_length is not None and f.min_length > f.max_length:
            ctx.bag.error(f.span, "E012", f"field '{f.name}' has min_length > max_length")


def check_unique_ids(task: ir.TaskIR, ctx: PassContext) -> None:
    for kind, items in (("rationale", task.rationales), ("constraint", task.constraints)):
        seen: dict[str, Any] = {}
        for item in items:
            if item.id in seen:
                ctx.bag.error(item.span, "E030", f"duplicate {kind} id '{item.id}'",
                              f"first used at line {seen[item.id].span.line}")
            else:
                seen[item.id] = item


def resolve_classes(task: ir.TaskIR, ctx: PassContext) -> None:
    known = task.class_names
    for index, rationale in enumerate(task.rationales):
        if rationale.class_name not in known:
            ctx.bag.error(ctx.doc.span_of(("rationales", index, "class")), "E024",
                          f"unknown class '{rationale.class_name}'",
                          did_you_mean(rationale.class_name, known) or "classes: " + ", ".join(known))
        for i, example in enumerate(rationale.examples):
            if example.label not in known:
                ctx.bag.error(ctx.doc.span_of(("rationales", index, "examples", i, "label")), "E024",
                              f"unknown class '{example.label}'",
                              did_you_mean(example.label, known) or "classes: " + ", ".join(known))


def check_expressions(task: ir.TaskIR, ctx: PassContext) -> None:
    jobs: list[tuple[ir.Expression, str, str]] = []
    jobs += [(r.rule, "rule", "a rule") for r in task.rationales if r.rule is not None]
    jobs += [(c.check, "constraint", "a constraint") for c in task.constraints]
    if task.eval is not None:
        jobs.append((task.eval.criterion, "criterion", "the pass criterion"))
    scopes = {context: scope_for(task, context) for context in ("rule", "constraint", "criterion")}
    for expression, context, what in jobs:
        if expression.node is None:
            continue
        path = expression.path

        def locate(start: int, end: int, path: Any = path) -> Any:
            return ctx.doc.offset_span(path, start, end)

        ExpressionChecker(scopes[context], locate, ctx.bag).check_boolean(expression.node, what)


def check_work_budget(task: ir.TaskIR, ctx: PassContext) -> None:
    """E038: a task file that asks for more work than the budget allows (work_budget.py), before any of it."""
    limits = WorkLimits.from_env()
    planned = planned_work(task)
    where = ctx.doc.span_of(("generate", "per_rationale")) if "per_rationale" in (ctx.doc.data.get("generate") or {}) \
        else ctx.doc.span_of(("generate",))
    if planned.calls > limits.planned_calls:
        ctx.bag.error(where, "E038", f"the generation plan would make {planned.calls:,} LLM calls, over the cap of "
                                     f"{limits.planned_calls:,}",
                      f"lower the generation counts or raise per_call; whoever runs taskc can raise the cap with "
                      f"{env_name('planned_calls')}")
    if planned.examples > limits.generated_examples:
        ctx.bag.error(where, "E038", f"the generation plan asks for {planned.examples:,} examples, over the cap of "
                                     f"{limits.generated_examples:,}",
                      f"lower the generation counts; whoever runs taskc can raise the cap with "
                      f"{env_name('generated_examples')}")
    lexicon_sizes = {lexicon.name: len(lexicon.words) for lexicon in task.lexicons}
    lists = list_sizes(task)
    expressions = [r.rule for r in task.rationales if r.rule is not None] + [c.check for c in task.constraints]
    if task.eval is not None:
        expressions.append(task.eval.criterion)
    for expression in expressions:
        if expression.node is None:
            continue
        steps = expression_steps(expression.node, lexicon_sizes, lists)
        if steps > limits.expression_steps:
            ctx.bag.error(expression.span, "E038",
                          f"this expression could take {steps:,} steps on one input, over the cap of "
                          f"{limits.expression_steps:,} (a lambda costs its body once per item of its list: "
                          "per lexicon word, per list item)",
                          "avoid nesting lambdas over lexicons (mentions(x, lexicon.L) tests a whole lexicon in "
                          f"one step), or give the list field a max_length; the cap: {env_name('expression_steps')}")


def check_worked_examples(task: ir.TaskIR, ctx: PassContext) -> None:
    fields = {f.name: f for f in task.fields}
    for index, rationale in enumerate(task.rationales):
        for i, example in enumerate(rationale.examples):
            base = ("rationales", index, "examples", i, "input")
            for key, value in example.input.items():
                if key not in fields:
                    ctx.bag.error(ctx.doc.key_span_of(base + (key,)), "E032",
                                  f"worked example has unknown input field '{key}'",
                                  did_you_mean(key, fields) or "fields: " + ", ".join(fields))
                    continue
                problem = value_problem(fields[key], value)
                if problem:
                    ctx.bag.error(ctx.doc.span_of(base + (key,)), "E032", f"worked example: {problem}")
            for name, f in fields.items():
                if name not in example.input and not f.optional:
                    ctx.bag.error(ctx.doc.span_of(base), "E032", f"worked example is missing input field '{name}'")


_is_string = str.__instancecheck__  # isinstance(v, str) without a Python frame per list item


def value_problem(f: ir.InputField, value: Any) -> str | None:
    """Why ``value`` is not a valid value of input field ``f``, or None. Shared with the runtime."""
    kind = f.type
    if kind in ("string", "enum"):
        if not isinstance(value, str):
            return f"field '{f.name}' must be a string"
        if kind == "enum" and value not in f.values:
            return f"field '{f.name}' must be one of {', '.join(f.values)}, not {value!r}"
        size = len(value)
    elif kind == "list[string]":
        if not isinstance(value, list) or not all(map(_is_string, value)):
            return f"field '{f.name}' must be a list of strings"
        size = len(value)
    elif kind == "boolean":
        return None if isinstance(value, bool) else f"field '{f.name}' must be true or false"
    elif kind == "integer":
        is_integer = isinstance(value, int) and not isinstance(value, bool)
        return None if is_integer else f"field '{f.name}' must be an integer"
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"field '{f.name}' must be a number"
    if f.max_length is not None and size > f.max_length:
        return f"field '{f.name}' is longer than {f.max_length}"
    if f.min_length is not None and size < f.min_length:
        return f"field '{f.name}' is shorter than {f.min_length}"
    return None


def check_rules_on_examples(task: ir.TaskIR, ctx: PassContext) -> None:
    """A rule that does not fire on its own worked examples is probably wrong (or the example is)."""
    if ctx.bag.has_errors:
        return  # evaluating needs a fully checked task
    lexicons = task.lexicon_words()
    for rationale in task.rationales:
        if rationale.rule is None or rationale.rule.node is None:
            continue
        evaluate = rationale.rule.evaluator(lexicons)
        for example in rationale.examples:
            if example.label != rationale.class_name:
                continue
            try:
                fired = bool(evaluate(example.input))
            except ExpressionEvaluationError:
                continue
            if not fired:
                ctx.bag.warning(example.span, "W104",
                                f"the rule of rationale '{rationale.id}' does not hold on this worked example",
                                "fix the rule, or move the example to the rationale that explains it")


def warn_suspicious(task: ir.TaskIR, ctx: PassContext) -> None:
    argued = Counter(r.class_name for r in task.rationales)
    for task_class in task.classes:
        if argued[task_class.name] == 0:
            ctx.bag.warning(task_class.span, "W101", f"no rationale argues for class '{task_class.name}'",
                            "the model will learn this class from its description only")
    for rationale in task.rationales:
        if rationale.rule is None:
            ctx.bag.warning(rationale.span, "W102", f"rationale '{rationale.id}' has no rule",
                            "without a rule it cannot label the pool or be checked against the gold set")
    used: set[str] = set()
    expressions = [r.rule for r in task.rationales if r.rule] + [c.check for c in task.constraints]
    for expression in expressions:
        if expression.node is not None:
            used |= lexicons_used(expression.node)
    for lexicon in task.lexicons:
        if lexicon.name not in used:
            ctx.bag.warning(lexicon.span, "W103", f"lexicon '{lexicon.name}' is never used")
    settings = task.generate
    if settings.per_rationale == settings.per_class == settings.near_misses == 0:
        ctx.bag.warning(settings.span, "W105", "generation is switched off: every count is 0")
    dedupe_fields = set(task.field_names)
    for name in settings.dedupe.key:
        if name not in dedupe_fields:
            ctx.bag.error(ctx.doc.span_of(("generate", "dedupe", "key")), "E021",
                          f"unknown input field '{name}' in dedupe key", did_you_mean(name, dedupe_fields))


def warn_lexicon_in_unread_field(task: ir.TaskIR, ctx: PassContext) -> None:
    """W107: on a sample of the pool and gold files, a lexicon's words in a field no rule reads against it."""
    if ctx.bag.has_errors:
        return  # the rules must have parsed; the files must be the project's own (E033/E034 above)
    pool = sample_records(task.data_path(task.pool.path)) if task.pool else None
    gold = sample_records(task.data_path(task.eval.gold)) if task.eval else None
    for gap in knowledge_gaps(task, gold, pool):
        lexicon = next(lexicon for lexicon in task.lexicons if lexicon.name == gap.lexicon)
        ctx.bag.warning(lexicon.span, "W107", gap.message().replace("`", "'") + " (in a sample of the data files)",
                        gap.hint())


OPENAI_FINETUNING_SUNSET = ("OpenAI's fine-tuning platform is winding down: it is closed to new users, existing "
                            "users can create jobs only until early January 2027 (2027-01-06 by public reports), "
                            "and fine-tuned models work only until their base models are retired")
OPENAI_FINETUNING_ALTERNATIVES = ("train the student anywhere instead: finetune.provider: embeddings (any "
                                  "OpenAI-compatible /v1/embeddings endpoint), transformers (a local Hugging Face "
                                  "model), local (offline), or `taskc export RUN_DIR -o DIR` for any other trainer")


def check_student(task: ir.TaskIR, ctx: PassContext) -> None:
    """E037: a `transformers` student names no model; W108: the `openai` student's platform is winding down."""
    settings = task.finetune
    if settings.provider == "transformers" and not settings.base_model:
        ctx.bag.error(ctx.doc.span_of(("finetune", "provider")), "E037",
                      "finetune.provider 'transformers' needs base_model: the Hugging Face model to fine-tune",
                      "e.g. base_model: distilbert-base-uncased, or the path of a local model directory")
    if settings.provider == "openai":
        ctx.bag.warning(ctx.doc.span_of(("finetune", "provider")), "W108", OPENAI_FINETUNING_SUNSET,
                        OPENAI_FINETUNING_ALTERNATIVES)


Pass = Callable[[ir.TaskIR, PassContext], None]

SEMANTIC_PASSES: tuple[Pass, ...] = (
    check_field_names,
    check_unique_ids,
    resolve_classes,
    check_expressions,
    check_work_budget,
    check_worked_examples,
    warn_suspicious,
    check_rules_on_examples,
    check_student,
    warn_lexicon_in_unread_field,  # last: it needs a task without errors
)


def run_passes(task: ir.TaskIR, doc: SourceDocument, bag: DiagnosticBag) -> None:
    context = PassContext(doc, bag)
    for semantic_pass in SEMANTIC_PASSES:
        semantic_pass(task, context)
