"""Emitter: the student's and the evaluation's configs (finetune.json, eval.json), typed.

`finetune_config` and `eval_config` turn the task's `finetune:` and `eval:`
sections into frozen `FinetuneConfig` / `EvalConfig` objects; the runtime reads
their fields, and their `to_json` renders the emitted files last (an emitted
file is never read back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import ir
from .expr_nodes import to_sexpr
from .pricing import builtin_prices, price_for


def default_system_message(task: ir.TaskIR) -> str:
    return f"Classify the input for task '{task.name}' as one of: {', '.join(task.class_names)}."


DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
EMBEDDING_TOKENS_PER_TEXT = 40  # a dish with its ingredient lines; estimates only


@dataclass(frozen=True)
class HostedJob:
    """The hosted fine-tuning job's request (finetune.provider openai, local): `request()` is its body."""

    model: str
    hyperparameters: tuple[tuple[str, Any], ...]  # (name, value) of those the task gives, in the API's order
    seed: int | None
    suffix: str

    def request(self) -> dict[str, Any]:
        """The body of POST /v1/fine_tuning/jobs (without the files), and finetune.json's `job`."""
        return {"model": self.model,
                "method": {"type": "supervised", "supervised": {"hyperparameters": dict(self.hyperparameters)}},
                "seed": self.seed, "suffix": self.suffix}


@dataclass(frozen=True)
class EmbeddingsStudentConfig:
    """finetune.provider embeddings: the embedding model, its requests and its price."""

    model: str
    inputs_per_request: int
    usd_per_1m_input_tokens: float | None  # None: the model is not in the price table

    @property
    def usd_per_1000_texts(self) -> float | None:
        price = self.usd_per_1m_input_tokens
        return None if price is None else round(1000 * EMBEDDING_TOKENS_PER_TEXT * price / 1_000_000, 6)

    def to_json(self) -> dict[str, Any]:
        return {"provider": "embeddings", "model": self.model, "inputs_per_request": self.inputs_per_request,
                "features": ["text embedding", "lexicon mentions", "rule votes"],
                "head": "class-balanced logistic regression",
                "texts": "every training example once (pool items, their field views, generated examples), "
                         "the gold items, and in taskc predict every new input; cached by content in the run",
                "estimate": {"estimate": True, "usd_per_1m_input_tokens": self.usd_per_1m_input_tokens,
                             "tokens_per_text": EMBEDDING_TOKENS_PER_TEXT,
                             "usd_per_1000_texts": self.usd_per_1000_texts}}


@dataclass(frozen=True)
class TransformersStudentConfig:
    """finetune.provider transformers: the Hugging Face model and its training settings, defaults filled in."""

    model: str | None
    epochs: int
    batch_size: int
    learning_rate: float
    max_length: int
    validation_split: float

    def to_json(self) -> dict[str, Any]:
        return {"provider": "transformers", "model": self.model, "epochs": self.epochs,
                "batch_size": self.batch_size, "learning_rate": self.learning_rate, "max_length": self.max_length,
                "validation_split": self.validation_split, "input": "the fields' text joined by ' | '"}


StudentConfig = EmbeddingsStudentConfig | TransformersStudentConfig


def student_config(task: ir.TaskIR) -> StudentConfig:
    """The student that trains anywhere: what it is, and (embeddings) what it costs."""
    settings = task.finetune
    if settings.provider == "embeddings":
        model = settings.base_model or DEFAULT_EMBEDDING_MODEL
        price = price_for({**builtin_prices(), **dict(task.generate.prices)}, model)
        return EmbeddingsStudentConfig(model, settings.inputs_per_request, None if price is None else price[0])
    return TransformersStudentConfig(settings.base_model, settings.epochs or 3, settings.batch_size or 16,
                                     settings.learning_rate or 5e-5, settings.max_length or 128,
                                     settings.validation_split)


@dataclass(frozen=True)
class FinetuneConfig:
    """What the task says of its student, typed: the runtime reads these fields, and `to_json` renders
    finetune.json from them (the emitted file is never read back)."""

    provider: str  # openai | local | embeddings | transformers
    system_message: str  # the system message of every training example (train.jsonl, `taskc export`)
    validation_split: float
    input_fields: tuple[str, ...]  # the user message: the input as JSON, these fields in this order
    classes: tuple[str, ...]
    job: HostedJob | None = None  # the hosted fine-tuning job (openai, local); None for the others
    student: StudentConfig | None = None  # a student that trains anywhere (embeddings, transformers)

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
            document["job"] = self.job.request()
        if self.student is not None:
            document |= self.student.to_json() | {"classes": list(self.classes)}
        return document


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


def finetune_config(task: ir.TaskIR) -> FinetuneConfig:
    """The student (finetune.json), and the chat layout of the training files (train.jsonl, `taskc export`)."""
    settings = task.finetune
    anywhere = settings.provider in ("embeddings", "transformers")  # no hosted job: it trains in `taskc run`
    return FinetuneConfig(
        provider=settings.provider, system_message=settings.system_message or default_system_message(task),
        validation_split=settings.validation_split, input_fields=tuple(task.field_names),
        classes=tuple(task.class_names), job=None if anywhere else _hosted_job(task),
        student=student_config(task) if anywhere else None)


def _hosted_job(task: ir.TaskIR) -> HostedJob:
    settings = task.finetune
    hyperparameters = tuple((key, value) for key, value in (
        ("n_epochs", settings.epochs), ("batch_size", settings.batch_size),
        ("learning_rate_multiplier", settings.learning_rate_multiplier)) if value is not None)
    return HostedJob(settings.base_model or task.generate.model, hyperparameters, task.generate.seed,
                     settings.suffix or task.name[:18])


def eval_config(task: ir.TaskIR) -> EvalConfig:
    if task.eval is None:
        return EvalConfig(classes=tuple(task.class_names))
    criterion = task.eval.criterion
    return EvalConfig(classes=tuple(task.class_names), gold=task.eval.gold, metrics=tuple(task.eval.metrics),
                      primary=task.eval.primary, test_fraction=task.eval.test_fraction,
                      split_seed=task.eval.split_seed, criterion_source=" ".join(criterion.source.split()),
                      criterion_sexpr=to_sexpr(criterion.node) if criterion.node else None, declared=True)
