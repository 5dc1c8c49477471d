"""The intermediate representation of a task: what every stage after lowering reads.

Frozen dataclasses, each carrying the `Span` it came from. Nothing downstream of
`lowering` reads the raw YAML data; the runtime receives this IR (inside a
`CompiledTask`) and never re-reads the task file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .diagnostics import Span
from .expr_eval import Evaluator, build_evaluator
from .expr_nodes import Expr
from .loader import JsonPath


@dataclass(frozen=True)
class Expression:
    """An expression of the task file: its source text, where it is, and its parsed form."""

    source: str
    span: Span
    path: JsonPath
    node: Expr | None  # None when the text did not parse (a diagnostic was reported)

    def evaluator(self, lexicons: Mapping[str, tuple[str, ...]]) -> Evaluator:
        if self.node is None:
            raise ValueError(f"expression at {self.span.line}:{self.span.column} did not compile")
        return build_evaluator(self.node, lexicons)


@dataclass(frozen=True)
class InputField:
    name: str
    type: str  # string | integer | number | boolean | list[string] | enum
    description: str
    span: Span
    values: tuple[str, ...] = ()
    min_length: int | None = None
    max_length: int | None = None
    optional: bool = False


@dataclass(frozen=True)
class TaskClass:
    name: str
    description: str
    span: Span


@dataclass(frozen=True)
class Lexicon:
    name: str
    words: tuple[str, ...]
    span: Span
    file: str | None = None  # project-relative path when the words came from a file


@dataclass(frozen=True)
class WorkedExample:
    input: Mapping[str, Any]
    label: str
    note: str | None
    span: Span


@dataclass(frozen=True)
class Rationale:
    id: str
    class_name: str
    text: str
    span: Span
    rule: Expression | None = None
    examples: tuple[WorkedExample, ...] = ()
    author: str | None = None  # who wrote it (several experts sign their rationales)


@dataclass(frozen=True)
class Constraint:
    id: str
    check: Expression
    message: str | None
    span: Span


@dataclass(frozen=True)
class DedupePolicy:
    normalize: bool = True
    near_duplicate_threshold: float = 1.0
    key: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerateSettings:
    model: str
    span: Span
    temperature: float = 1.0
    top_p: float | None = None
    max_tokens: int | None = None
    per_rationale: int = 20
    near_misses: int = 0
    per_class: int = 0
    per_call: int = 10
    seed: int = 0
    dedupe: DedupePolicy = DedupePolicy()
    templates: Mapping[str, str] = field(default_factory=dict)  # kind -> project-relative path
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class FinetuneSettings:
    provider: str
    span: Span
    base_model: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None
    learning_rate: float | None = None  # transformers
    max_length: int | None = None  # transformers: tokens per input
    inputs_per_request: int = 64  # embeddings: texts per /v1/embeddings request
    validation_split: float = 0.1
    suffix: str | None = None
    system_message: str | None = None


@dataclass(frozen=True)
class EvalSettings:
    gold: str
    criterion: Expression
    span: Span
    metrics: tuple[str, ...] = ("accuracy", "macro_f1", "precision", "recall", "f1")
    primary: str = "rules_then_model"
    test_fraction: float = 0.5  # share of each class's gold items held out as the test half
    split_seed: int = 0


@dataclass(frozen=True)
class PoolSettings:
    path: str
    span: Span
    limit: int | None = None
    answers: str | None = None  # project-relative JSONL of the expert's answers to `taskc ask`


@dataclass(frozen=True)
class TaskIR:
    name: str
    description: str
    instructions: str | None
    source: str  # the task file as the user named it (used in diagnostics)
    project_dir: str  # absolute directory of the task file; never written into outputs
    fields: tuple[InputField, ...]
    classes: tuple[TaskClass, ...]
    lexicons: tuple[Lexicon, ...]
    rationales: tuple[Rationale, ...]
    constraints: tuple[Constraint, ...]
    generate: GenerateSettings
    finetune: FinetuneSettings
    eval: EvalSettings | None
    pool: PoolSettings | None
    span: Span
    # the files the task names (lexicons, templates, pool, gold, answers) as lowering resolved and confined
    # them: project-relative name -> absolute path; never written into outputs
    resolved_files: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def lexicon_words(self) -> dict[str, tuple[str, ...]]:
        return {lexicon.name: lexicon.words for lexicon in self.lexicons}

    def data_path(self, relative: str) -> Path:
        """The file a project-relative name of the task file names, as lowering resolved it (the path is
        confined to the project, or allowed outside it, once, there)."""
        return Path(self.resolved_files[relative])

    def rationale(self, rationale_id: str) -> Rationale:
        for rationale in self.rationales:
            if rationale.id == rationale_id:
                return rationale
        raise KeyError(rationale_id)
