"""Emitter: the student's and the evaluation's configs (finetune.json, eval.json), typed.

`finetune_config` and `eval_config` turn the task's `finetune:` and `eval:`
sections into frozen `FinetuneConfig` / `EvalConfig` objects; the runtime reads
their fields, and their `to_json` renders the emitted files last (an emitted
file is never read back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import ir
from .expr_nodes import to_sexpr
from .pricing import builtin_prices, price_for


def default_system_message(task: ir.TaskIR) -> str:
    return f"Classify the input for task '{task.name}' as one of: {', '.join(task.class_names)}."


DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
EMBEDDING_TOKENS_PER_TEXT = 40  # a dish with its ingredient lines; estimates only


def student_config(task: ir.TaskIR) -> dict[str, Any]:
    """finetune.json of a student that trains anywhere: what it is, and (embeddings) what it costs."""
    settings = task.finetune
    if settings.provider == "embeddings":
        model = settings.base_model or DEFAULT_EMBEDDING_MODEL
        table = {**builtin_prices(), **dict(task.generate.prices)}
        price = price_for(table, model)
        per_thousand = None if price is None else round(1000 * EMBEDDING_TOKENS_PER_TEXT * price[0] / 1_000_000, 6)
        return {"provider": "embeddings", "model": model, "inputs_per_request": settings.inputs_per_request,
                "features": ["text embedding", "lexicon mentions", "rule votes"],
                "head": "class-balanced logistic regression",
                "texts": "every training example once (pool items, their field views, generated examples), "
                         "the gold items, and in taskc predict every new input; cached by content in the run",
                "estimate": {"estimate": True, "usd_per_1m_input_tokens": None if price is None else price[0],
                             "tokens_per_text": EMBEDDING_TOKENS_PER_TEXT, "usd_per_1000_texts": per_thousand},
                "classes": list(task.class_names)}
    return {"provider": "transformers", "model": settings.base_model, "epochs": settings.epochs or 3,
            "batch_size": settings.batch_size or 16, "learning_rate": settings.learning_rate or 5e-5,
            "max_length": settings.max_length or 128, "validation_split": settings.validation_split,
            "input": "the fields' text joined by ' | '", "classes": list(task.class_names)}


@dataclass(frozen=True)
class FinetuneConfig:
    """What the task says of its student, typed: the runtime reads these fields, and `to_json` renders
    finetune.json from them (the emitted file is never read back)."""

    provider: str  # openai | local | embeddings | transformers
    system_message: str  # the system message of every training example (train.jsonl, `taskc export`)
    validation_split: float
    input_fields: tuple[str, ...]  # the user message: the input as JSON, these fields in this order
    classes: tuple[str, ...]
    job: Mapping[str, Any] | None = None  # the hosted fine-tuning job (openai, local); None for the others
    student: Mapping[str, Any] | None = None  # a student that trains anywhere: its settings and price

    def to_json(self) -> dict[str, Any]:
        """finetune.json."""
        document: dict[str, Any] = {
            "provider": self.provider,
            "validation_split": self.validation_split,
            "system_message": self.system_message,
            "message_layout": [
                {"role": "system", "content": "system_message"},
                {"role": "user", "content": "the input as JSON, fields in declaration order: "
                                            + ", ".join(self.input_fields)},
                {"role": "assistant", "content": "the class name"},
            ],
            "classes": list(self.classes),
        }
        if self.job is not None:
            document["job"] = _plain(self.job)
        return document | _plain(self.student or {})


@dataclass(frozen=True)
class EvalConfig:
    """The task's evaluation, typed; `to_json` renders eval.json."""

    classes: tuple[str, ...]
    gold: str | None = None
    metrics: tuple[str, ...] = ()
    primary: str | None = None
    test_fraction: float | None = None
    split_seed: int | None = None
    criterion_source: str | None = None
    criterion_sexpr: str | None = None
    declared: bool = False  # the task has an eval section

    def to_json(self) -> dict[str, Any]:
        """eval.json."""
        if not self.declared:
            return {"gold": None, "metrics": [], "criterion": None, "classes": list(self.classes)}
        return {"gold": self.gold, "metrics": list(self.metrics), "primary": self.primary,
                "split": {"test_fraction": self.test_fraction, "seed": self.split_seed},
                "criterion": {"source": self.criterion_source, "compiled": self.criterion_sexpr},
                "classes": list(self.classes)}


def _plain(value: Any) -> Any:
    """A JSON-ready copy (mappings as dicts, tuples as lists), so the config's own values are never shared."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def finetune_config(task: ir.TaskIR) -> FinetuneConfig:
    """The student (finetune.json), and the chat layout of the training files (train.jsonl, `taskc export`)."""
    settings = task.finetune
    anywhere = settings.provider in ("embeddings", "transformers")  # no hosted job: it trains in `taskc run`
    return FinetuneConfig(
        provider=settings.provider, system_message=settings.system_message or default_system_message(task),
        validation_split=settings.validation_split, input_fields=tuple(task.field_names),
        classes=tuple(task.class_names), job=None if anywhere else _hosted_job(task),
        student=student_config(task) if anywhere else None)


def _hosted_job(task: ir.TaskIR) -> dict[str, Any]:
    settings = task.finetune
    hyperparameters = {key: value for key, value in (
        ("n_epochs", settings.epochs), ("batch_size", settings.batch_size),
        ("learning_rate_multiplier", settings.learning_rate_multiplier)) if value is not None}
    return {"model": settings.base_model or task.generate.model,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
            "seed": task.generate.seed, "suffix": settings.suffix or task.name[:18]}


def eval_config(task: ir.TaskIR) -> EvalConfig:
    if task.eval is None:
        return EvalConfig(classes=tuple(task.class_names))
    criterion = task.eval.criterion
    return EvalConfig(classes=tuple(task.class_names), gold=task.eval.gold, metrics=tuple(task.eval.metrics),
                      primary=task.eval.primary, test_fraction=task.eval.test_fraction,
                      split_seed=task.eval.split_seed, criterion_source=" ".join(criterion.source.split()),
                      criterion_sexpr=to_sexpr(criterion.node) if criterion.node else None, declared=True)
